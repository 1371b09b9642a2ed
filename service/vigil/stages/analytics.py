"""The analytics stage: ROI filtering, line crossing, crowding, dwell and direction per stream."""

from __future__ import annotations

from vigil.analytics import AnalyticsConfig, AnalyticsCounts, StreamAnalytics
from vigil.specs import StreamSpec
from vigil.stages.base import FrameResult, Stage
from vigil.track import TrackChangeKind


class AnalyticsStage(Stage):
    """Runs each configured stream's analytics over its (tracked) objects.

    Rows that an ROI filter rejects leave the frame's detections here, so no later stage and
    no event sees them. Counts are cumulative per stream; a reconfiguration keeps the counts
    of rules that keep their name unless asked to reset them.

    All methods run in the chain's thread (the pipeline's :meth:`in_chain` gets there from
    the event loop); :attr:`snapshot` is what other threads (metrics, REST) read.
    """

    name = "analytics"

    def __init__(self) -> None:
        self._engines: dict[str, StreamAnalytics] = {}
        #: Stream id → cumulative counts, replaced (never mutated) after each batch.
        self.snapshot: dict[str, AnalyticsCounts] = {}

    def configure(
        self, stream_id: str, config: AnalyticsConfig | None, reset_counts: bool = False
    ) -> None:
        """Set, change (hot) or remove (None) a stream's analytics."""
        if config is None:
            self._engines.pop(stream_id, None)
            self._publish({stream_id: None})
            return
        engine = self._engines.get(stream_id)
        if engine is None:
            engine = self._engines[stream_id] = StreamAnalytics(config)
        else:
            engine.reconfigure(config, reset_counts=reset_counts)
        self._publish({stream_id: engine.counts()})

    def process(self, results: list[FrameResult]) -> None:
        touched: set[str] = set()
        for result in results:
            engine = self._engines.get(result.stream_id)
            if engine is None:
                continue
            frame = result.frame
            exited = [c.track_id for c in result.track_changes if c.kind is TrackChangeKind.EXIT]
            out = engine.update(
                result.detections,
                result.time_s,
                frame.frame_number,
                frame.width,
                frame.height,
                exited=exited,
            )
            keep = out.keep
            result.analytics = out
            if keep.all():
                result.object_analytics = list(out.objects)
            else:
                result.detections = result.detections[keep]
                if result.moving is not None:
                    result.moving = result.moving[keep]
                result.object_analytics = [o for o, k in zip(out.objects, keep, strict=True) if k]
            touched.add(result.stream_id)
        if touched:
            self._publish({sid: self._engines[sid].counts() for sid in touched})

    def stream_added(self, spec: StreamSpec) -> None:
        if spec.analytics is not None:
            self.configure(spec.id, spec.analytics)

    def stream_removed(self, stream_id: str) -> None:
        self.configure(stream_id, None)

    def _publish(self, updates: dict[str, AnalyticsCounts | None]) -> None:
        """Replace (or drop, for None) the counts of some streams in one new snapshot."""
        snapshot = dict(self.snapshot)
        for stream_id, counts in updates.items():
            if counts is None:
                snapshot.pop(stream_id, None)
            else:
                snapshot[stream_id] = counts
        self.snapshot = snapshot  # one reference swap: readers never see a half update
