# syntax=docker/dockerfile:1
# The Vigil image: REST API + pipeline (`vigil serve`), two targets:
#
#   vigil   talks to a Triton of its own container (compose's `triton`, Helm's sidecar):
#             docker build -f docker/vigil.Dockerfile --target vigil -t vigil/vigil .
#   cpu     the same plus the embedded Triton server (CPU, onnxruntime), for hosts without
#           a GPU or a Triton container (compose profile `cpu`):
#             docker build -f docker/vigil.Dockerfile --target cpu -t vigil/vigil:cpu .
#
# GPU path: --build-arg VIGIL_EXTRAS=gpu --build-arg BASE=<a CUDA runtime image with python3>.
# The builder stage makes a venv from binary wheels (no compiler needed, none shipped); the
# final stages copy only that venv. BASE must provide python3 (>= 3.11) or apt to install
# it: a locally made base (`debootstrap --variant=minbase bookworm` + `docker import`) stands
# in where no registry is reachable (`make compose-smoke`).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS builder
ARG VIGIL_EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Plain Debian bases have no python; python:* images have it (then apt is skipped).
RUN if ! command -v python3 >/dev/null; then \
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi
# A host whose traffic goes through an inspecting proxy puts its CA bundle in
# docker/build-ca/ (make compose-smoke does): used by this stage only, never shipped.
COPY docker/build-ca/ /tmp/build-ca/
RUN if [ -f /tmp/build-ca/ca.crt ]; then printf '[global]\ncert = /tmp/build-ca/ca.crt\n' > /etc/pip.conf; fi
RUN python3 -m venv /opt/vigil && /opt/vigil/bin/pip install -q --upgrade pip
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY clients /src/clients
RUN /opt/vigil/bin/pip install -q "/src${VIGIL_EXTRAS:+[$VIGIL_EXTRAS]}"

# The embedded Triton 2.51 server, extracted from PyPI's nvidia-pytriton wheel (as `make
# triton` does), with the packages its Python-backend models need beside it.
FROM builder AS triton-embedded
ARG TRITON_WHEEL_VERSION=0.7.0
COPY scripts/install_triton.py /src/scripts/
RUN /opt/vigil/bin/pip download -q --no-deps "nvidia-pytriton==${TRITON_WHEEL_VERSION}" -d /tmp/wheels \
    && /opt/vigil/bin/python /src/scripts/install_triton.py /tmp/wheels/nvidia_pytriton-*.whl /opt/triton \
    && /opt/vigil/bin/pip install -q --no-warn-conflicts --target /opt/triton/python-env \
        numpy==1.26.4 onnxruntime==1.32.0 \
    && rm -rf /tmp/wheels

FROM ${BASE} AS vigil
RUN if ! command -v python3 >/dev/null; then \
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends python3 ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid vigil --home-dir /var/lib/vigil --create-home vigil \
    && mkdir -p /etc/vigil /models \
    && install -d -o vigil -g vigil /var/lib/vigil/run /var/lib/vigil/state /var/lib/vigil/cache
COPY --from=builder /opt/vigil /opt/vigil
COPY docker/vigil/vigil.yaml /etc/vigil/vigil.yaml
ENV PATH=/opt/vigil/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VIGIL_DATA_DIR=/var/lib/vigil/state \
    VIGIL_CACHE_DIR=/var/lib/vigil/cache
USER 10001:10001
WORKDIR /var/lib/vigil
EXPOSE 8080
# Liveness only (the process answers); readiness, which needs Triton and the model, is
# /api/v1/ready for orchestrators.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/api/v1/live' % os.environ.get('VIGIL_API__PORT', '8080'), timeout=2)"]
ENTRYPOINT ["vigil"]
CMD ["serve", "--config", "/etc/vigil/vigil.yaml"]

FROM vigil AS cpu
USER root
# The Python backend's stub links against the system libpython (python:* images have it).
RUN if ! ldconfig -p | grep -q 'libpython3\.11\.so\.1\.0'; then \
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends libpython3.11 \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=triton-embedded /opt/triton /opt/triton
ENV VIGIL_TRITON__SERVER_DIR=/opt/triton
USER 10001:10001
