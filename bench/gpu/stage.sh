#!/usr/bin/env bash
# Stages what bench/gpu/device_run.sh needs into DEST (default: the session checkout's
# git-ignored .device/gpu), under the device tool's 64 MiB limit: the source tree, wheels the
# GPU image lacks (cp312), PyNvVideoCodec without its bundled FFmpeg sources, Triton 2.51 with
# the Python 3.12 backend stub (scripts/install_triton.py), and the 1080p clip.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:-/work/main/.device/gpu}
CACHE=${VIGIL_CACHE_DIR:-$HOME/.cache/vigil}/gpu-stage
PY312=${PY312:-python3.12}
mkdir -p "$DEST" "$CACHE/whl"
rm -rf "$DEST/src" && mkdir -p "$DEST/src"
git -C "$ROOT" ls-files -co --exclude-standard | tar -C "$ROOT" -cf - -T - | tar -C "$DEST/src" -xf -
PIP=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux_2_5_x86_64
  -d "$CACHE/whl")
"${PIP[@]}" tritonclient==2.73.0 pydantic==2.14.3 pydantic-core==2.50.4 pydantic-settings==2.16.3 \
  annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 python-dotenv==1.2.4 \
  aiokafka==0.14.0 async-timeout==5.0.1 grpcio==1.85.1 protobuf==6.33.6 python-rapidjson==1.25 \
  pytest-asyncio==1.5.0 pynvvideocodec==2.2.4 py-spy==0.4.3
if [ "${WITH_PYAV:-0}" = 1 ]; then
  # PyAV for tests/gpu/test_nvdec_packets.py (RTSP/HTTP demuxing); ~35 MB: stage it for a
  # call without the Triton tarball (SKIP_TRITON=1), the carry is 64 MiB.
  "${PIP[@]}" av==18.1.0
fi
rm -rf "$DEST/whl" && mkdir -p "$DEST/whl"
cp "$CACHE"/whl/*.whl "$DEST/whl/" && rm "$DEST"/whl/pynvvideocodec-*.whl
# the cache may hold PyAV from an earlier WITH_PYAV=1 staging: it does not fit beside Triton
[ "${WITH_PYAV:-0}" = 1 ] || rm -f "$DEST"/whl/av-*.whl
if [ ! -f "$CACHE/pnvc.tar.xz" ]; then
  tmp=$(mktemp -d) && unzip -q "$CACHE"/whl/pynvvideocodec-*.whl -d "$tmp"
  (cd "$tmp/PyNvVideoCodec" && rm -f libavformat.so libavformat.so.63.1.101 libavutil.so \
     libavutil.so.61.1.101 PyNvVideoCodec_121*.so)
  tar -C "$tmp" -cJf "$CACHE/pnvc.tar.xz" PyNvVideoCodec "pynvvideocodec." && rm -rf "$tmp"
fi
cp "$CACHE/pnvc.tar.xz" "$DEST/"
if [ "${SKIP_TRITON:-0}" = 1 ]; then
  rm -f "$DEST/tritonserver.tar.xz"
elif [ ! -f "$CACHE/tritonserver.tar.xz" ]; then
  tmp=$(mktemp -d)
  "$PY312" "$ROOT/scripts/install_triton.py" "${VIGIL_CACHE_DIR:-$HOME/.cache/vigil}"/wheels/nvidia_pytriton-0.7.0-*.whl "$tmp/tritonserver"
  tar -C "$tmp" -cJf "$CACHE/tritonserver.tar.xz" tritonserver && rm -rf "$tmp"
fi
[ "${SKIP_TRITON:-0}" = 1 ] || cp "$CACHE/tritonserver.tar.xz" "$DEST/"
[ -f "$CACHE/street_1080p30.mp4" ] || "${PYTHON:-$ROOT/.venv/bin/python}" "$ROOT/bench/gpu/make_clip.py" "$CACHE/street_1080p30.mp4"
cp "$CACHE/street_1080p30.mp4" "$DEST/"
du -sh "$DEST"
