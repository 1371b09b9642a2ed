# Tracking accuracy benchmark (docs/benchmarks.md). PyPI `trackers` (the peer it is compared
# with) needs NumPy 2 and opencv-python, so it gets an environment of its own.
BENCH_TRACKING_VENV := .venv-bench-tracking
BENCH_TRACKING_PINS := motmetrics==1.4.0 trackers==2.6.1 pydantic scipy
BENCH_TRACKING_STAMP := $(BENCH_TRACKING_VENV)/.installed-$(shell echo '$(BENCH_TRACKING_PINS)' | sha256sum | cut -c1-12)

$(BENCH_TRACKING_STAMP):
	rm -rf $(BENCH_TRACKING_VENV)
	$(PYTHON) -m venv $(BENCH_TRACKING_VENV)
	$(BENCH_TRACKING_VENV)/bin/pip install -q $(BENCH_TRACKING_PINS)
	touch $@

.PHONY: bench-tracking
bench-tracking: $(BENCH_TRACKING_STAMP)
	$(BENCH_TRACKING_VENV)/bin/python bench/tracking_bench.py
