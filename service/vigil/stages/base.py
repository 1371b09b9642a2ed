"""The stage chain: per-frame work after the parser, in order, with per-stream state.

A :class:`FrameResult` carries one frame and what the stages found in it; each :class:`Stage`
reads and extends the results of a whole inference batch (frames of many streams, in frame
order per stream). The chain runs in one worker thread of the pipeline, never on the event
loop that serves the REST API, and it is the only thread that touches a stage's state, so
stages need no locks.

Stages keep per-stream state (tracks, counts). The chain tells them when a stream goes
(:meth:`Stage.stream_removed`), after every frame of that stream already queued has passed,
so state never outlives its stream. A frame of a stream the chain does not know (detached
while its frames were in flight) skips the stages: its detections still become events.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from vigil.detections import Detections
from vigil.frame import Frame
from vigil.specs import StreamSpec

if TYPE_CHECKING:
    from vigil.analytics import AnalyticsResult, ObjectAnalytics
    from vigil.infer.model import ModelInfo
    from vigil.track import TrackChange

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a stage wants reported about a frame: it becomes an event of type
    ``alert`` whose ``object.analytics.rule`` is :attr:`name`.

    Attributes:
        name: The rule that fired (``no_helmet``).
        track_id: The object it is about (its row's ``tracker_id``), or None for the frame
            as a whole.
        class_id: The object's class when it is not a row of the frame's detections.
        attributes: Extra details, as strings (``object.attributes`` of the event).
    """

    name: str
    track_id: int | None = None
    class_id: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class FrameResult:
    """One frame and what the stages found in it.

    Attributes:
        frame: The decoded frame.
        detections: Objects in the frame, in source pixels. Stages may replace it (the
            tracker keeps only confirmed tracks and sets ``tracker_id``; ROI filtering
            drops rows).
        inferred: False for a frame the model did not see (inference interval): its boxes
            are the tracker's predictions.
        track_changes: Track lifecycle changes on this frame (entry, exit, moving, stopped).
        moving: Motion state per row of ``detections`` (None when untracked).
        analytics: ROI, line, zone and direction results for this frame, with the
            analytics events (None when the stream has no analytics).
        object_analytics: Per row of ``detections`` (after ROI filtering): the ROIs, lines,
            zones and direction of that object (None when the stream has no analytics).
        alerts: What plugin stages raised on this frame; each becomes an ``alert`` event.
        model: The model that produced the detections (its labels name the class ids).
    """

    frame: Frame
    detections: Detections
    inferred: bool = True
    track_changes: list[TrackChange] = field(default_factory=list)
    moving: np.ndarray | None = None
    analytics: AnalyticsResult | None = None
    object_analytics: list[ObjectAnalytics] | None = None
    alerts: list[Alert] = field(default_factory=list)
    model: ModelInfo | None = None

    @property
    def stream_id(self) -> str:
        """The frame's stream."""
        return self.frame.stream_id

    @property
    def time_s(self) -> float:
        """The frame's time in seconds, for motion and durations: the media timestamp when
        the source has one (right for files played faster than real time), else the capture
        clock."""
        pts = self.frame.pts_s
        return self.frame.capture_time_s if pts is None else pts


class Stage(ABC):
    """One step of the chain.

    Implementations keep per-stream state keyed by stream id and free it in
    :meth:`stream_removed`. All methods are called from the chain's one thread.
    """

    #: Short name for logs and metrics.
    name: ClassVar[str] = "stage"
    #: Whether the stage predicts objects on frames the model skips (a tracker): streams
    #: then send those frames through the chain instead of dropping them.
    predicts: ClassVar[bool] = False

    @abstractmethod
    def process(self, results: list[FrameResult]) -> None:
        """Read and extend the results of one batch, in place (frame order per stream)."""

    def stream_added(self, spec: StreamSpec) -> None:  # noqa: B027 (optional hook)
        """A stream joined (or restarted); called before its first frame, with its spec
        (per-stream settings such as ``spec.analytics``)."""

    def stream_removed(self, stream_id: str) -> None:  # noqa: B027 (optional hook)
        """A stream is gone: free everything kept for it."""

    def inference_resumed(self, outage_s: float) -> None:  # noqa: B027 (optional hook)
        """Inference stopped for ``outage_s`` (Triton was down) and resumes with the next
        frame; frames of live streams in between were lost."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """The pipeline is stopping."""


class FrameStage:
    """A stage that sees one frame at a time: the interface for plugins.

    Subclass it, override :meth:`process_frame` and any hook you need, and name the class
    in the settings (``stages``) or a stream's ``stages`` (see docs/plugins.md). Keyword
    options given there go to ``__init__``. Every method runs on the chain's one thread,
    frames of a stream in order. A call that raises loses only that frame's output of
    this stage (counted, logged); the stream goes on.
    """

    def start(self) -> None:
        """The pipeline starts (or the stream, for a per-stream stage): open resources."""

    def process_frame(self, result: FrameResult) -> None:
        """Read and extend one frame's result in place (add :class:`Alert` items to
        ``result.alerts``, columns to ``result.detections.data``, ...)."""

    def stream_added(self, spec: StreamSpec) -> None:
        """A stream joined (or restarted); called before its first frame."""

    def stream_removed(self, stream_id: str) -> None:
        """A stream is gone: free everything kept for it."""

    def stop(self) -> None:
        """The pipeline stops (or the stream, for a per-stream stage): release resources."""


class StageChain:
    """Runs stages in order over each batch and forwards stream arrivals and removals.

    Args:
        stages: The stages, in the order they run.
    """

    def __init__(self, stages: Sequence[Stage] = ()) -> None:
        self.stages = list(stages)
        self.streams: set[str] = set()
        self.tracks = any(stage.predicts for stage in self.stages)
        #: Stage name → batches it failed on.
        self.failures: dict[str, int] = {}
        self._logged: dict[str, float] = {}

    def stream_added(self, spec: StreamSpec) -> None:
        """Start keeping state for the stream ``spec`` describes."""
        self.streams.add(spec.id)
        for stage in self.stages:
            stage.stream_added(spec)

    def stream_removed(self, stream_id: str) -> None:
        """Free every stage's state of ``stream_id``."""
        self.streams.discard(stream_id)
        for stage in self.stages:
            stage.stream_removed(stream_id)

    def inference_resumed(self, outage_s: float) -> None:
        """Tell every stage inference resumes after an outage of ``outage_s``."""
        for stage in self.stages:
            stage.inference_resumed(outage_s)

    def process(self, results: list[FrameResult]) -> None:
        """Run every stage over one batch.

        A stage that raises loses only its own work on this batch (counted in
        :attr:`failures`, logged with the traceback at most once a minute per stage); the
        later stages and the events still run.
        """
        known = [r for r in results if r.stream_id in self.streams]
        if not known:
            return
        for stage in self.stages:
            try:
                stage.process(known)
            except Exception:
                self.failures[stage.name] = self.failures.get(stage.name, 0) + 1
                now = time.monotonic()
                if now - self._logged.get(stage.name, -math.inf) >= 60:
                    self._logged[stage.name] = now
                    log.exception(
                        "stage %s failed on a batch (%d failures so far); its output for "
                        "that batch is lost",
                        stage.name,
                        self.failures[stage.name],
                    )

    def close(self) -> None:
        """Tell every stage the pipeline stops."""
        for stage in self.stages:
            stage.close()
