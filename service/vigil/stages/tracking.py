"""The tracker stage: every stream in one tracker bank, ids unique for the life of the process."""

from __future__ import annotations

import itertools
import threading

import numpy as np

from vigil.detections import Detections
from vigil.stages.base import FrameResult, Stage
from vigil.track import TrackerBank, TrackerSettings


def _clipped(dets: Detections, width: int, height: int) -> Detections:
    """Predicted boxes kept inside the frame (a prediction can run past its edge)."""
    xyxy = dets.xyxy.copy()
    np.clip(xyxy[:, 0::2], 0, width, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, height, out=xyxy[:, 1::2])
    return Detections(xyxy, dets.confidence, dets.class_id, dets.tracker_id, dets.data)


class TrackIds:
    """Hands out track ids: unique across every stream for the life of the process, so an id
    is never reused, not even by a stream that is removed and added again."""

    def __init__(self, first: int = 1, step: int = 1) -> None:
        self._counter = itertools.count(first, step)
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return next(self._counter)


class TrackingStage(Stage):
    """Tracks the objects of every stream that has tracking on.

    On inferred frames the stream's tracker associates the detections; on frames the model
    did not see (inference interval) it predicts the confirmed tracks' boxes. Only confirmed
    tracks leave this stage.

    Every stream is a lane of one :class:`~vigil.track.TrackerBank`, and a batch is tracked in
    rounds: the first frame of every stream in it, then the second, ... Each stream gets the
    results a tracker of its own would give; the bank does the array work of a round once for
    all its streams, which is most of a frame's tracking cost.

    Args:
        settings: Tracker settings (shared by all streams).
        ids: Where track ids come from.
    """

    name = "tracker"
    predicts = True

    def __init__(self, settings: TrackerSettings, ids: TrackIds | None = None) -> None:
        self.settings = settings
        self.ids = ids or TrackIds(settings.id_first, settings.id_step)
        self._bank = TrackerBank(settings)
        self._lanes: dict[str, int] = {}
        # Per stream: seconds taken off frame times (outages bridged), the last frame's time
        # and the gap before it; streams whose next gap is an outage to bridge.
        self._offset_s: dict[str, float] = {}
        self._last: dict[str, tuple[float, float]] = {}
        self._bridge: set[str] = set()

    def process(self, results: list[FrameResult]) -> None:
        # Round k holds the k-th frame of each stream in the batch, so a stream's frames are
        # still tracked in their order.
        rounds: list[list[tuple[FrameResult, int, float]]] = []
        frames_seen: dict[str, int] = {}
        for result in results:
            sid = result.stream_id
            lane = self._lanes.get(sid)
            if lane is None:
                lane = self._lanes[sid] = self._bank.add_lane(self.ids)
            k = frames_seen.get(sid, 0)
            frames_seen[sid] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append((result, lane, self._tracker_time(sid, result.time_s)))
        for members in rounds:
            outputs = self._bank.step(
                [(lane, r.detections if r.inferred else None, t) for r, lane, t in members]
            )
            for (result, _, _), out in zip(members, outputs, strict=True):
                if result.inferred:
                    result.detections = out.detections
                else:
                    result.detections = _clipped(
                        out.detections, result.frame.width, result.frame.height
                    )
                result.track_changes = list(out.changes)
                result.moving = out.moving

    def inference_resumed(self, outage_s: float) -> None:
        # A live stream's next frame comes ~outage_s after its last one; the objects did not
        # vanish meanwhile, so the tracker is shown that gap as one ordinary frame step (its
        # tracks would otherwise all end as lost). Files waited in their queues: no gap.
        self._bridge = set(self._lanes)

    def _tracker_time(self, stream_id: str, time_s: float) -> float:
        last = self._last.get(stream_id)
        step = time_s - last[0] if last else 0.0
        if stream_id in self._bridge:
            self._bridge.discard(stream_id)
            usual = last[1] if last else 0.0
            if step > max(2 * usual, self.settings.lost_track_s / 2):
                self._offset_s[stream_id] = self._offset_s.get(stream_id, 0.0) + step - usual
                step = usual
        self._last[stream_id] = (time_s, step if last else 0.0)
        return time_s - self._offset_s.get(stream_id, 0.0)

    def stream_removed(self, stream_id: str) -> None:
        lane = self._lanes.pop(stream_id, None)
        if lane is not None:
            self._bank.remove_lane(lane)
        self._offset_s.pop(stream_id, None)
        self._last.pop(stream_id, None)
        self._bridge.discard(stream_id)
