"""The tracker stage: one ByteTracker per stream, ids unique for the life of the process."""

from __future__ import annotations

import itertools
import threading

import numpy as np

from vigil.detections import Detections
from vigil.stages.base import FrameResult, Stage
from vigil.track import ByteTracker, TrackerSettings


def _clipped(dets: Detections, width: int, height: int) -> Detections:
    """Predicted boxes kept inside the frame (a prediction can run past its edge)."""
    xyxy = dets.xyxy.copy()
    np.clip(xyxy[:, 0::2], 0, width, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, height, out=xyxy[:, 1::2])
    return Detections(xyxy, dets.confidence, dets.class_id, dets.tracker_id, dets.data)


class TrackIds:
    """Hands out track ids: unique across every stream for the life of the process, so an id
    is never reused, not even by a stream that is removed and added again."""

    def __init__(self, first: int = 1) -> None:
        self._counter = itertools.count(first)
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return next(self._counter)


class TrackingStage(Stage):
    """Tracks the objects of every stream that has tracking on.

    On inferred frames the stream's tracker associates the detections; on frames the model
    did not see (inference interval) it predicts the confirmed tracks' boxes. Only confirmed
    tracks leave this stage.

    Args:
        settings: Tracker settings (shared by all streams).
        ids: Where track ids come from.
    """

    name = "tracker"
    predicts = True

    def __init__(self, settings: TrackerSettings, ids: TrackIds | None = None) -> None:
        self.settings = settings
        self.ids = ids or TrackIds()
        self._trackers: dict[str, ByteTracker] = {}

    def process(self, results: list[FrameResult]) -> None:
        for result in results:
            tracker = self._trackers.get(result.stream_id)
            if tracker is None:
                tracker = self._trackers[result.stream_id] = ByteTracker(
                    self.settings, next_id=self.ids
                )
            if result.inferred:
                out = tracker.update(result.detections, result.time_s)
                result.detections = out.detections
            else:
                out = tracker.predict(result.time_s)
                result.detections = _clipped(
                    out.detections, result.frame.width, result.frame.height
                )
            result.track_changes = list(out.changes)
            result.moving = out.moving

    def stream_removed(self, stream_id: str) -> None:
        self._trackers.pop(stream_id, None)
