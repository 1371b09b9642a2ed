"""Prometheus metrics fed from the hot path: the pipeline's histograms and counters.

One observation per batch or frame, from the pipeline and the model lifecycle. Figures that
already live elsewhere (per-stream counters, Kafka, analytics) are not copied here: the
collectors of :mod:`vigil.collectors` read them at scrape time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class PipelineMetrics:
    """The pipeline's histograms, in their own registry (one per service instance).

    Attributes:
        registry: Where every Vigil metric is registered.
        batch_size: Frames per inference request.
        request_seconds: Triton request latency (sent → outputs in shared memory).
        frame_latency_seconds: Capture → events handed to the sinks.
        frames_by_version: Frames inferred, per model and version (versions are few, and a
            swap's series are what shows it happened).
        swaps: Model swaps by result (ok, failed, rejected).
        swap_seconds: Swap duration, request → first frame emitted on the new version.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.batch_size = Histogram(
            "vigil_batch_size",
            "Frames per inference request",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "vigil_triton_request_seconds",
            "Triton inference request latency",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.frame_latency_seconds = Histogram(
            "vigil_frame_latency_seconds",
            "End-to-end latency, frame capture to events",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.frames_by_version = Counter(
            "vigil_model_frames",
            "Frames inferred, per model version",
            ["model", "version"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "vigil_model_swaps", "Model swaps by result", ["result"], registry=self.registry
        )
        self.swap_seconds = Histogram(
            "vigil_model_swap_seconds",
            "Model swap duration, request to first frame on the new version",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120),
            registry=self.registry,
        )
