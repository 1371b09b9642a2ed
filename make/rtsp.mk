# make/rtsp.mk -- `make rtsp-deps`: GStreamer's RTSP server from Debian, for tests.
#
# The integration tests start a real RTSP camera (tests/support/rtsp_server.py), run by
# Debian's /usr/bin/python3 (python3-gi), not by the project venv. This fragment installs
# the Debian packages it needs, only those that are missing; with everything installed it
# runs one `dpkg -s` and returns.
#
# Included by the top-level Makefile; also works standalone:
#   make -f make/rtsp.mk rtsp-deps
#
#   python3-gi, gir1.2-gst-rtsp-server-1.0   GstRtspServer from Python (pulls libgstrtspserver)
#   gstreamer1.0-plugins-base                videotestsrc, videoconvert, decodebin, videoscale
#   gstreamer1.0-plugins-good                rtph264pay/rtph265pay/rtpjpegpay, jpegenc, matroska/mp4
#   gstreamer1.0-plugins-ugly                x264enc
#   gstreamer1.0-plugins-bad                 x265enc, h264parse/h265parse
#   gstreamer1.0-libav                       avdec_* (decoding FILE sources)
#   gstreamer1.0-rtsp                        the RTSP client/sink elements (rtspclientsink)

RTSP_DEBS := \
	python3-gi \
	gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-ugly \
	gstreamer1.0-plugins-bad \
	gstreamer1.0-libav \
	gstreamer1.0-rtsp

# Repo root, from this file's location, so the fragment also works standalone.
VIGIL_MK_ROOT := $(patsubst %/,%,$(dir $(abspath $(dir $(lastword $(MAKEFILE_LIST))))))

.PHONY: rtsp-deps

rtsp-deps:
	@$(VIGIL_MK_ROOT)/scripts/apt-install-missing.sh $(RTSP_DEBS)
