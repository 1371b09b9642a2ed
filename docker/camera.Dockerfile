# syntax=docker/dockerfile:1
# A camera simulator: GStreamer's RTSP server looping the sample video (Debian's opencv-doc
# vtest.avi), re-encoded to H.264 with a key frame every second. The same server the
# integration tests use (tests/support/rtsp_server.py).
#
#   docker build -f docker/camera.Dockerfile -t vigil/camera .
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# Slim images drop /usr/share/doc at install time, where opencv-doc keeps the sample video.
RUN rm -f /etc/dpkg/dpkg.cfg.d/docker /etc/dpkg/dpkg.cfg.d/excludes \
    && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends python3 python3-gi gir1.2-gst-rtsp-server-1.0 \
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
        gstreamer1.0-plugins-bad gstreamer1.0-libav opencv-doc \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10002 camera
COPY tests/support/rtsp_server.py /opt/camera/rtsp_server.py
USER 10002
EXPOSE 8554
ENTRYPOINT ["python3", "/opt/camera/rtsp_server.py"]
CMD ["--port", "8554", "--mount", "/sample", "--source", "/usr/share/doc/opencv-doc/examples/data/vtest.avi", "--width", "768", "--height", "576", "--fps", "10"]
