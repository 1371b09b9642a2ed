# syntax=docker/dockerfile:1
# Triton for Vigil: NVIDIA's NGC server image plus what Vigil's Python-backend models need
# (an ONNX model without a GPU backend runs through onnxruntime in the Python backend; its
# stub was built against NumPy 1.x). Used by compose's `triton` service and Helm's sidecar.
#
#   docker build -f docker/triton.Dockerfile -t vigil/triton .
ARG BASE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${BASE}
RUN pip install --no-cache-dir -q "numpy==1.26.4" "onnxruntime==1.20.1" \
    && (id triton-server >/dev/null 2>&1 || useradd --system --uid 1000 triton-server)
USER triton-server
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8000/v2/health/live"]
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models", "--model-control-mode=explicit", "--strict-model-config=false"]
