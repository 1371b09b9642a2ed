"""ByteTrack-class multi-object tracking, per stream, with every duration in seconds.

Each frame the model saw (:meth:`ByteTracker.update`):

1. every track's box is predicted to the frame's time (Kalman, constant velocity);
2. detections scoring at least ``high_score`` are matched to the confirmed tracks — those
   seen on the last update *and* those lost for less than ``lost_track_s`` — by IoU with
   the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``);
3. detections between ``low_score`` and ``high_score`` (a partly hidden person scores low)
   are matched to the confirmed tracks still unmatched that were seen on the last update;
4. the remaining strong detections are matched to tentative tracks, and those scoring at
   least ``new_track_score`` start new tentative tracks;
5. a tentative track is confirmed once it has been matched on at least two updates spanning
   at least ``confirm_s``; only then does it get a public id and appear in the output.
   Tentative tracks missed for longer than ``tentative_lost_s`` vanish without a trace;
   confirmed tracks missed for longer than ``lost_track_s`` end (an ``exit`` change).

On frames the model skipped (:meth:`ByteTracker.predict`) the confirmed tracks seen on the
last update are output at their predicted boxes.

Because the buffers are times, not frame counts, the same settings keep an id through a
1-second occlusion at 10 fps, at 30 fps and with an inference interval; a frame-count buffer
is the usual reason trackers lose ids at low frame rates.
"""

from __future__ import annotations

from collections.abc import Callable

from vigil.detections import Detections
from vigil.track.bank import TrackerBank
from vigil.track.types import TrackerOutput, TrackerSettings


class ByteTracker:
    """One stream's tracker. Not thread-safe: one instance per stream, one thread.

    A :class:`~vigil.track.bank.TrackerBank` of one lane: the tracking stage keeps every
    stream in one bank instead, which gives each stream these same results at a fraction of
    the cost per frame.

    Args:
        settings: Thresholds and durations.
        next_id: Hands out public ids (default: 1, 2, 3, ... for this tracker). Ids are never
            reused, not even after :meth:`reset`.
    """

    def __init__(self, settings: TrackerSettings, next_id: Callable[[], int] | None = None) -> None:
        self.settings = settings
        if next_id is None:
            counter = iter(range(1, 1 << 62))
            next_id = counter.__next__
        self._bank = TrackerBank(settings)
        self._lane = self._bank.add_lane(next_id)

    @property
    def active_ids(self) -> set[int]:
        """Public ids of the confirmed tracks (seen or lost, not yet ended)."""
        return self._bank.active_ids(self._lane)

    def reset(self) -> None:
        """Forget every track (ids are still never reused)."""
        self._bank.reset_lane(self._lane)

    def update(self, detections: Detections, timestamp_s: float) -> TrackerOutput:
        """Associate a frame's detections; returns the confirmed tracks matched on it."""
        return self._bank.step([(self._lane, detections, timestamp_s)])[0]

    def predict(self, timestamp_s: float) -> TrackerOutput:
        """Boxes of the confirmed tracks seen on the last update, predicted to this frame."""
        return self._bank.step([(self._lane, None, timestamp_s)])[0]
