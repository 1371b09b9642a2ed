#!/usr/bin/env bash
# Runs on the GPU machine of the device tool, from the staging folder made by
# bench/gpu/stage.sh (wheels, trimmed PyNvVideoCodec, Triton for Python 3.12, the clip, the
# source tree). Usage: bash bench/gpu/device_run.sh PHASE...   (phases: probe tests bench
# decode open content hunt engine bench2)
# Logs and results go to $OUT. Run from the staged copy of the tree (.device/gpu/src), or from
# the checkout itself with GPU_STAGE_DIR naming the staging folder (its src/ may then be
# removed, which keeps the device tool's carry under its 64 MiB limit).
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
STAGE=${GPU_STAGE_DIR:-$(dirname "$SRC")}
OUT=${OUT:-/tmp/vigil-out}
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "$STAGE"/whl/*.whl || exit 1
tar -C /tmp/site -xJf "$STAGE/pnvc.tar.xz"
[ -x /tmp/tritonserver/bin/tritonserver ] || tar -C /tmp -xJf "$STAGE/tritonserver.tar.xz"
export PYTHONPATH=/tmp/site:$SRC/service:$SRC
export PATH=/tmp/site/bin:$PATH
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export VIGIL_TRITON__SERVER_DIR=/tmp/tritonserver
export GPU_TEST_CLIP=$STAGE/street_1080p30.mp4
export PYTHONUNBUFFERED=1
ulimit -c 0  # a crashed CUDA process's core dump can take minutes to write
if [ "${CRASH_TRACE:-0}" = 1 ]; then
  # the crashing thread's native frames (bench/gpu/crash_trace.c; the device has no gdb)
  cc -O1 -shared -fPIC -o /tmp/crash_trace.so "$SRC/bench/gpu/crash_trace.c" &&
    export LD_PRELOAD=/tmp/crash_trace.so
fi
if [ "${MPS:-0}" = 1 ]; then
  # CUDA MPS (the device has nvidia-cuda-mps-control): every process's kernels in one shared
  # context instead of contexts the GPU time-slices. It changes no GPU setting; the daemon
  # stops when this script ends.
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d && trap 'echo quit | nvidia-cuda-mps-control' EXIT
fi
cd "$SRC"
for phase in "$@"; do
  case $phase in
    probe)
      {
        nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv
        python3 --version; which python3; command -v gdb || echo "no gdb"
        ldconfig -p | grep -E "nvcuvid|nvidia-encode|libpython3" || true
        python3 - <<'PY'
import importlib, sys, time
for name in ["torch", "numpy", "grpc", "google.protobuf", "cuda.bindings", "cv2", "pydantic",
             "tritonclient.utils.cuda_shared_memory", "pynvml", "PyNvVideoCodec"]:
    try:
        m = importlib.import_module(name)
        print("ok  ", name, getattr(m, "__version__", ""))
    except Exception as e:
        print("FAIL", name, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0))
from vigil.accel import choose_acceleration, probe_gpu
from vigil.config import GpuSettings
print("probe", probe_gpu(0))
print(choose_acceleration(GpuSettings()).describe())
PY
      } 2>&1 | tee "$OUT/probe.log"
      ;;
    tests)
      timeout ${TESTS_TIMEOUT:-300} python3 -m pytest ${TESTS:-tests/gpu tests/unit/test_shm.py tests/unit/test_accel.py} \
        -v -ra -p no:cacheprovider -o addopts="" 2>&1 | tee "$OUT/gpu-tests.log"
      ;;
    bench)
      # (a crash's native stack: CRASH_TRACE=1 above; the device has no gdb)
      timeout -k 5 ${BENCH_TIMEOUT:-320} python3 bench/gpu/bench.py --clip "$GPU_TEST_CLIP" --out "$OUT" ${BENCH_ARGS:-} \
        2>&1 | tee "$OUT/bench.log"
      ;;
    decode)  # NVDEC alone at several stream counts (bench/gpu/decode_scaling.py)
      timeout 300 python3 bench/gpu/decode_scaling.py "$GPU_TEST_CLIP" ${DECODE_ARGS:-} \
        2>&1 | tee "$OUT/decode.log"
      ;;
    open)  # how long an NVDEC open takes, and whether it holds the GIL (bench/gpu/nvdec_open.py)
      timeout 120 python3 bench/gpu/nvdec_open.py "$GPU_TEST_CLIP" 2>&1 | tee "$OUT/open.log"
      ;;
    content)  # the stand-in detector's detections along the clip (bench/gpu/content_profile.py)
      timeout -k 5 ${CONTENT_TIMEOUT:-90} python3 bench/gpu/content_profile.py "$GPU_TEST_CLIP" \
        ${CONTENT_ARGS:-} 2>&1 | tee "$OUT/content.log"
      ;;
    hunt)  # fresh processes doing (c)'s decode and preprocessing, to catch the native crash
      timeout 400 python3 bench/gpu/crash_hunt.py "$GPU_TEST_CLIP" ${HUNT_ARGS:-} \
        2>&1 | tee "$OUT/hunt.log"
      ;;
    engine)  # the engine's ceiling on this host's CPU, both hand-overs (no GPU used)
      for overlap in "" --overlap; do
        timeout 120 python3 bench/engine_overhead_bench.py --model-fps 8000 --runs 3 \
          ${ENGINE_ARGS:-} $overlap 2>&1 | tee -a "$OUT/engine.log"
      done
      ;;
    bench2)  # a second configuration in the same call (results in $OUT/b2)
      mkdir -p "$OUT/b2"
      timeout -k 5 320 python3 bench/gpu/bench.py --clip "$GPU_TEST_CLIP" --out "$OUT/b2" \
        ${BENCH_ARGS2:-} 2>&1 | tee "$OUT/b2/bench.log"
      ;;
  esac
done
