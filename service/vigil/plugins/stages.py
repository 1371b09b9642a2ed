"""Plugin stages on the chain: global ones and per-stream ones, each call isolated.

Plugin stages (:class:`~vigil.stages.base.FrameStage`) run after the built-in stages, so
they see tracks and analytics: first those of the settings (every stream), then the
stream's own (``stages`` of its spec), in the order given. Each call is isolated: a stage
that raises loses that frame's output of that stage (its alerts are dropped and the
detections put back), is counted and logged with the traceback at most once a minute, and
the stream goes on. A call slower than the stage's ``budget_ms`` is counted and logged the
same way. Per-plugin latency goes to ``vigil_plugin_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as CounterMetric

from vigil.plugins.discovery import PluginError, PluginInfo, instantiate
from vigil.retry import FailureRun
from vigil.specs import StageRef, StreamSpec
from vigil.stages.base import FrameResult, FrameStage, Stage

log = logging.getLogger(__name__)


@dataclass
class _Loaded:
    """A constructed plugin stage."""

    stage: FrameStage
    info: PluginInfo
    budget_s: float


class PluginMetrics:
    """Per-plugin figures in Prometheus (label ``plugin``: the name it was given by)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "vigil_plugin_seconds",
            "Time of one plugin stage call on one frame",
            ["plugin"],
            buckets=(20e-6, 50e-6, 1e-4, 2.5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.1, 0.5),
            registry=registry,
        )
        self.failures = CounterMetric(
            "vigil_plugin_failures", "Plugin stage calls that raised", ["plugin"], registry=registry
        )
        self.over_budget = CounterMetric(
            "vigil_plugin_over_budget",
            "Plugin stage calls slower than the stage's budget_ms",
            ["plugin"],
            registry=registry,
        )


class PluginStages(Stage):
    """Runs the plugin stages of the settings and of each stream.

    Args:
        refs: The stages every stream runs (settings ``stages``).
        metrics: Where per-plugin figures go (None: counted here only).

    Raises:
        PluginError: a global stage cannot be loaded (the service does not start).
    """

    name = "plugins"

    def __init__(self, refs: Sequence[StageRef] = (), metrics: PluginMetrics | None = None):
        self.metrics = metrics
        self.shared: list[_Loaded] = []
        for i, ref in enumerate(refs):
            try:
                self.shared.append(self._load(ref))
            except PluginError as e:
                raise PluginError(f"stages[{i}]: {e}") from e
        self.per_stream: dict[str, list[_Loaded]] = {}
        # Stages made for a stream being added, waiting for its first call on the chain.
        self._prepared: dict[str, list[_Loaded]] = {}
        #: Plugin name → calls that raised / calls over budget.
        self.failures: Counter[str] = Counter()
        self.over_budget: Counter[str] = Counter()
        # Per plugin and kind of trouble: when to log loudly (the first, then once a minute).
        self._runs: dict[tuple[str, str], FailureRun] = {}

    @staticmethod
    def _load(ref: StageRef) -> _Loaded:
        stage, info = instantiate("stage", ref)
        return _Loaded(stage, info, ref.budget_ms / 1000)

    def start(self) -> None:
        """Start the shared stages (before the pipeline runs)."""
        for loaded in self.shared:
            self._call(loaded, "start", loaded.stage.start)

    def check(self, spec: StreamSpec) -> None:
        """Load the stages ``spec`` names, ready for the stream's first frame.

        Raises:
            PluginError: a stage cannot be loaded (the message names ``stages[i]``).
        """
        if not spec.stages:
            return
        loaded = []
        for i, ref in enumerate(spec.stages):
            try:
                loaded.append(self._load(ref))
            except PluginError as e:
                raise PluginError(f"stages[{i}]: {e}") from e
        self._prepared[spec.id] = loaded

    def forget(self, stream_id: str) -> None:
        """Drop what :meth:`check` loaded for a stream that is not starting after all."""
        self._prepared.pop(stream_id, None)

    def plugins(self) -> list[dict[str, Any]]:
        """Every loaded plugin stage, for the health endpoint."""
        seen: dict[str, dict[str, Any]] = {}
        everything = [*self.shared, *(x for xs in self.per_stream.values() for x in xs)]
        for loaded in everything:
            info = loaded.info
            entry = seen.setdefault(
                info.name,
                {
                    "kind": info.kind,
                    "name": info.name,
                    "class": info.cls,
                    "version": info.version,
                    "instances": 0,
                    "failures": self.failures[info.name],
                    "over_budget": self.over_budget[info.name],
                },
            )
            entry["instances"] += 1
        return list(seen.values())

    # --- the chain's calls (its one thread) -------------------------------------------------

    def process(self, results: list[FrameResult]) -> None:
        """Run the shared stages, then the stream's own, on every frame, each call isolated."""
        if not self.shared and not self.per_stream:  # the usual case: no plugin, no cost
            return
        for result in results:
            for loaded in self.shared:
                self._run(loaded, result)
            for loaded in self.per_stream.get(result.stream_id, ()):
                self._run(loaded, result)

    def stream_added(self, spec: StreamSpec) -> None:
        """Tell the shared stages; start the stream's own (a restart keeps them)."""
        for loaded in self.shared:
            self._call(loaded, "stream_added", lambda s=loaded.stage: s.stream_added(spec))
        prepared = self._prepared.pop(spec.id, None)
        if prepared is not None:
            self._stop_stream(spec.id)
            self.per_stream[spec.id] = prepared
            for loaded in prepared:
                self._call(loaded, "start", loaded.stage.start)
        for loaded in self.per_stream.get(spec.id, ()):
            self._call(loaded, "stream_added", lambda s=loaded.stage: s.stream_added(spec))

    def stream_removed(self, stream_id: str) -> None:
        """Tell the shared stages; stop and drop the stream's own."""
        for loaded in self.shared:
            self._call(loaded, "stream_removed", lambda s=loaded.stage: s.stream_removed(stream_id))
        self._stop_stream(stream_id)

    def close(self) -> None:
        """Stop every plugin stage."""
        for stream_id in list(self.per_stream):
            self._stop_stream(stream_id)
        for loaded in self.shared:
            self._call(loaded, "stop", loaded.stage.stop)

    def _stop_stream(self, stream_id: str) -> None:
        for loaded in self.per_stream.pop(stream_id, ()):
            self._call(loaded, "stream_removed", lambda s=loaded.stage: s.stream_removed(stream_id))
            self._call(loaded, "stop", loaded.stage.stop)

    # --- isolation ---------------------------------------------------------------------------

    def _run(self, loaded: _Loaded, result: FrameResult) -> None:
        alerts, detections = len(result.alerts), result.detections
        start = time.perf_counter()
        try:
            loaded.stage.process_frame(result)
        except Exception:
            del result.alerts[alerts:]  # the frame keeps no half-made output of this stage
            result.detections = detections
            self._failed(loaded, "process_frame")
        elapsed = time.perf_counter() - start
        name = loaded.info.name
        if self.metrics is not None:
            self.metrics.seconds.labels(name).observe(elapsed)
        if elapsed > loaded.budget_s:
            self.over_budget[name] += 1
            if self.metrics is not None:
                self.metrics.over_budget.labels(name).inc()
            if self._due(name, "slow"):
                log.warning(
                    "stage plugin %s took %.1f ms on a frame of %s (budget %.1f ms; %d calls "
                    "over budget so far)",
                    name,
                    elapsed * 1000,
                    result.stream_id,
                    loaded.budget_s * 1000,
                    self.over_budget[name],
                )

    def _call(self, loaded: _Loaded, what: str, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception:
            self._failed(loaded, what)

    def _failed(self, loaded: _Loaded, what: str) -> None:
        """Count a call that raised; log it with the traceback (call from an except block)."""
        name = loaded.info.name
        self.failures[name] += 1
        if self.metrics is not None:
            self.metrics.failures.labels(name).inc()
        if self._due(name, "failed"):
            log.exception(
                "stage plugin %s raised in %s (%d failures so far); that frame's output of "
                "this stage is lost, the stream goes on",
                name,
                what,
                self.failures[name],
            )

    def _due(self, name: str, trouble: str) -> bool:
        return self._runs.setdefault((name, trouble), FailureRun()).failed()
