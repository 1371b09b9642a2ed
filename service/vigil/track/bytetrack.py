"""ByteTrack-class multi-object tracking for one stream, with every duration in seconds.

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
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import linear_sum_assignment

from vigil.detections import Detections
from vigil.track import kalman

PREDICTED: Final[str] = "predicted"
"""``Detections.data`` key: bool per row, True where the box is the tracker's prediction (no
detection matched it on this frame)."""

_LOW_STAGE_IOU = 0.5  # ByteTrack's second stage: low-score boxes need a clear overlap


class TrackerSettings(BaseModel):
    """Tracker settings; durations in seconds, so they hold at any frame rate."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Track objects (stable ids, lifecycle events)")
    high_score: float = Field(
        0.5, ge=0, le=1, description="Detections at least this confident are matched first"
    )
    low_score: float = Field(
        0.1, ge=0, le=1, description="Weaker detections down to this keep existing tracks alive"
    )
    new_track_score: float = Field(
        0.6, ge=0, le=1, description="An unmatched detection this confident starts a track"
    )
    match_iou: float = Field(
        0.2, gt=0, le=1, description="Least overlap (IoU) of a detection with a track's box"
    )
    confirm_s: float = Field(
        0.04,
        ge=0,
        le=10,
        description="A new track is reported from its second detection at least this long "
        "after its first (the 2nd frame at up to 25 fps, the 3rd at 30 fps)",
    )
    tentative_lost_s: float = Field(
        0.25, gt=0, le=10, description="An unconfirmed track missed this long is dropped"
    )
    lost_track_s: float = Field(
        1.5, gt=0, le=300, description="A track missed this long ends (exit event)"
    )
    per_class: bool = Field(True, description="Match detections only to tracks of their class")
    id_first: int = Field(1, ge=1, description="The first track id this process hands out")
    id_step: int = Field(
        1,
        ge=1,
        le=1024,
        description="Track ids go id_first, id_first + id_step, ...: the N worker processes "
        "of `vigil run --workers N` use steps of N, so their ids never meet",
    )
    stopped_speed: float = Field(
        0.2,
        ge=0,
        le=100,
        description="Below this speed, in box heights per second, a track is stopped; it "
        "moves again above twice this speed",
    )
    motion_hold_s: float = Field(
        0.5, ge=0, le=60, description="A motion change counts once it has held this long"
    )


class TrackChangeKind(StrEnum):
    """What happened to a track."""

    ENTRY = "entry"
    EXIT = "exit"
    MOVING = "moving"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class TrackChange:
    """A change of a confirmed track on one frame.

    Attributes:
        track_id: The track's public id.
        kind: Entry (confirmed on this frame), exit (given up), moving or stopped.
        class_id: The track's class.
        xyxy: Its last known box (source pixels).
    """

    track_id: int
    kind: TrackChangeKind
    class_id: int
    xyxy: np.ndarray


@dataclass(frozen=True, slots=True)
class TrackerOutput:
    """The confirmed tracks on one frame.

    Attributes:
        detections: One row per confirmed track shown on this frame, ``tracker_id`` set;
            ``data[PREDICTED]`` says which boxes are predictions.
        changes: Lifecycle changes on this frame (exits included, though exited tracks
            have no row).
        moving: Per row, whether the track is moving (False: stopped).
    """

    detections: Detections
    changes: list[TrackChange]
    moving: np.ndarray


_NONE: Final = -1  # public id of a tentative track
_EMPTY = np.zeros(0, np.intp)
_EMPTY.flags.writeable = False  # shared by every tracker: nobody may write into it


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``, both ``(4, N)`` → ``(N, M)``.

    The numbers of :func:`vigil.detections.iou_matrix` (the same operations in the same
    order), from coordinate-major boxes and with ``maximum`` for ``clip``: under half its time.
    """
    wh = np.minimum(a[2:, :, None], b[2:, None, :])
    wh -= np.maximum(a[:2, :, None], b[:2, None, :])
    np.maximum(wh, 0, out=wh)
    inter = wh[0] * wh[1]
    size_a = np.maximum(a[2:] - a[:2], 0)
    size_b = np.maximum(b[2:] - b[:2], 0)
    union = (size_a[0] * size_a[1])[:, None] + size_b[0] * size_b[1]
    union -= inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _assign(
    overlap: np.ndarray, tracks: np.ndarray, dets: np.ndarray, min_iou: float
) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of ``tracks`` (rows of ``overlap``) to ``dets`` (its columns);
    returns the matched pairs overlapping at least ``min_iou``, in the solver's order."""
    if not len(tracks) or not len(dets):
        return _EMPTY, _EMPTY
    sub = overlap.take(tracks, 0).take(dets, 1)
    if sub.max() < min_iou:  # no pair could be kept: the solver can be skipped
        return _EMPTY, _EMPTY
    rows, cols = linear_sum_assignment(1.0 - sub)
    kept = sub[rows, cols] >= min_iou
    return tracks[rows[kept]], dets[cols[kept]]


def _without(indices: np.ndarray, taken: np.ndarray, size: int) -> np.ndarray:
    """``indices`` (of ``size`` things) not in ``taken``, in their order."""
    if not len(taken):
        return indices
    mask = np.ones(size, bool)
    mask[taken] = False
    return indices[mask[indices]]


class ByteTracker:
    """One stream's tracker. Not thread-safe: one instance per stream, one thread.

    The tracks live in parallel arrays, one entry per track in the order they were started
    (that order breaks the assignment's ties): the Kalman states (``(6, 4, N)``, see
    :mod:`vigil.track.kalman`) and the per-track fields. A frame costs about the same number
    of array operations whatever the number of tracks; Python loops run only over lifecycle
    changes.

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
        self._next_id = next_id
        # Limits of the expiry test: the durations plus the float tolerance it always had.
        self._lost_s = settings.lost_track_s + 1e-6
        self._tentative_lost_s = settings.tentative_lost_s + 1e-6
        self.reset()

    # --- public -----------------------------------------------------------------------------

    @property
    def active_ids(self) -> set[int]:
        """Public ids of the confirmed tracks (seen or lost, not yet ended)."""
        return set(self._public_id[self._public_id != _NONE].tolist())

    def reset(self) -> None:
        """Forget every track (ids are still never reused)."""
        self._state = kalman.empty()
        self._state_s = 0.0  # the time of every track's state (there is one while N > 0)
        self._public_id = np.zeros(0, np.int64)  # _NONE while tentative
        self._class_id = np.zeros(0, np.int64)
        self._confidence = np.zeros(0, np.float32)  # of the last detection matched
        self._first_s = np.zeros(0)
        self._last_s = np.zeros(0)  # last matched
        self._hits = np.zeros(0, np.int64)
        self._moving = np.zeros(0, bool)
        self._motion_since_s = np.zeros(0)  # NaN: no motion change pending
        # The last detection matched (for events); float32, as Detections.xyxy always is.
        self._box = np.zeros((0, 4), np.float32)
        self._has_box = np.zeros(0, bool)  # False until matched once after it started
        self._last_update_s: float | None = None

    def update(self, detections: Detections, timestamp_s: float) -> TrackerOutput:
        """Associate a frame's detections; returns the confirmed tracks matched on it."""
        s = self.settings
        now = self._advance(timestamp_s)
        previous_update = self._last_update_s
        self._last_update_s = now
        self._predict_to(now)
        conf = detections.confidence
        high = (conf >= s.high_score).nonzero()[0]
        low = ((conf >= s.low_score) & (conf < s.high_score)).nonzero()[0]
        boxes = np.array(detections.xyxy.T, np.float64)  # (4, D)
        tracks, dets, fresh, left = self._match(
            detections.class_id, boxes, high, low, previous_update
        )

        changes: list[TrackChange] = []
        if len(tracks):
            matched = self._state.take(tracks, axis=2)
            kalman.update(matched, kalman.xyxy_to_xyah(boxes.take(dets, axis=1)))
            self._state[:, :, tracks] = matched
            self._hits[tracks] += 1
            self._last_s[tracks] = now
            self._confidence[tracks] = conf[dets]
            self._box[tracks] = detections.xyxy[dets]
            self._has_box[tracks] = True
            if len(fresh):
                changes += self._confirm(fresh, now)
        if len(left):
            self._start_tracks(left[conf[left] >= s.new_track_score], detections, boxes, now)

        ids = self._public_id[tracks]
        shown = (ids != _NONE).nonzero()[0]
        if len(shown) > 1:
            shown = shown[ids[shown].argsort(kind="stable")]
        rows, ids, picked = tracks[shown], ids[shown], dets[shown]
        changes += self._motion(now, rows)
        if len(detections):
            data = {key: column[picked] for key, column in detections.data.items()}
            xyxy, class_id = detections.xyxy[picked], detections.class_id[picked]
        else:  # what an empty frame always gave: no data columns
            data, xyxy, class_id = {}, np.zeros((0, 4), np.float32), np.zeros(0, np.int32)
        data[PREDICTED] = np.zeros(len(rows), bool)
        out = Detections(xyxy, conf[picked], class_id, ids, data)
        result = TrackerOutput(out, changes, self._moving[rows])
        # Last, and into the same list: expiring re-indexes the tracks (rows are indices).
        changes += self._expire(now)
        return result

    def predict(self, timestamp_s: float) -> TrackerOutput:
        """Boxes of the confirmed tracks seen on the last update, predicted to this frame."""
        now = self._advance(timestamp_s)
        self._predict_to(now)
        changes = self._expire(now)
        rows = _EMPTY
        if self._last_update_s is not None and len(self._public_id):
            seen = (self._public_id != _NONE) & (self._last_s >= self._last_update_s)
            rows = seen.nonzero()[0]
            rows = rows[self._public_id[rows].argsort(kind="stable")]
        changes += self._motion(now, rows)
        xyxy = kalman.xyah_to_xyxy(self._state[kalman.POS].take(rows, axis=1))
        dets = Detections(
            xyxy=np.array(xyxy.T, np.float32),
            confidence=self._confidence[rows],
            class_id=self._class_id[rows].astype(np.int32),
            tracker_id=self._public_id[rows],
            data={PREDICTED: np.ones(len(rows), bool)},
        )
        return TrackerOutput(dets, changes, self._moving[rows])

    # --- internals ---------------------------------------------------------------------------

    def _advance(self, timestamp_s: float) -> float:
        # Time never runs backwards for the tracker (a camera reconnect may reset its clock).
        if len(self._public_id) and timestamp_s <= self._state_s:
            return self._state_s + 1e-3
        if self._last_update_s is not None and timestamp_s <= self._last_update_s:
            return self._last_update_s + 1e-3
        return float(timestamp_s)

    def _predict_to(self, now: float) -> None:
        if len(self._public_id):
            kalman.predict(self._state, now - self._state_s)
            self._state_s = now

    def _match(
        self,
        class_id: np.ndarray,
        boxes: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        previous_update: float | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The three association stages, on one IoU matrix of every track with every box.

        Returns the matched tracks and their detections (stage by stage, each in the
        solver's order), the tentative tracks among them, and the strong detections no
        track took (candidates for new tracks).
        """
        s = self.settings
        if not len(self._public_id) or not (len(high) or len(low)):
            return _EMPTY, _EMPTY, _EMPTY, high
        overlap = _iou(kalman.xyah_to_xyxy(self._state[kalman.POS]), boxes)
        if s.per_class:
            overlap[self._class_id[:, None] != class_id] = 0.0
        confirmed = self._public_id != _NONE
        tracks, dets = _assign(overlap, confirmed.nonzero()[0], high, s.match_iou)
        if previous_update is not None and len(low):
            # weak detections only keep alive the confirmed tracks seen on the last update
            recent = confirmed & (self._last_s >= previous_update)
            recent[tracks] = False
            tracks2, dets2 = _assign(overlap, recent.nonzero()[0], low, _LOW_STAGE_IOU)
            if len(tracks2):
                tracks, dets = np.concatenate([tracks, tracks2]), np.concatenate([dets, dets2])
        left = _without(high, dets, len(boxes[0]))
        fresh, dets3 = _assign(overlap, (~confirmed).nonzero()[0], left, s.match_iou)
        if len(fresh):
            tracks, dets = np.concatenate([tracks, fresh]), np.concatenate([dets, dets3])
            left = _without(left, dets3, len(boxes[0]))
        return tracks, dets, fresh, left

    def _confirm(self, matched: np.ndarray, now: float) -> list[TrackChange]:
        """Public ids for the tentative tracks just matched that qualify, in match order."""
        due = (self._hits[matched] >= 2) & (
            now - self._first_s[matched] >= self.settings.confirm_s - 1e-6
        )
        changes = []
        for i in matched[due].tolist():
            self._public_id[i] = public_id = self._next_id()
            box = self._box[i].copy()
            changes.append(
                TrackChange(public_id, TrackChangeKind.ENTRY, int(self._class_id[i]), box)
            )
        return changes

    def _start_tracks(
        self, dets: np.ndarray, detections: Detections, boxes: np.ndarray, now: float
    ) -> None:
        n = len(dets)
        if not n:
            return
        state = kalman.initiate(kalman.xyxy_to_xyah(boxes.take(dets, axis=1)))
        public_id = np.full(n, _NONE, np.int64)
        if self.settings.confirm_s <= 0:  # confirmed on sight when asked to
            public_id[:] = [self._next_id() for _ in range(n)]
        self._state = np.concatenate([self._state, state], axis=2)
        self._state_s = now
        self._public_id = np.concatenate([self._public_id, public_id])
        self._class_id = np.concatenate([self._class_id, detections.class_id[dets]])
        self._confidence = np.concatenate(
            [self._confidence, detections.confidence[dets]], dtype=np.float32
        )
        self._first_s = np.concatenate([self._first_s, np.full(n, now)])
        self._last_s = np.concatenate([self._last_s, np.full(n, now)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int64)])
        self._moving = np.concatenate([self._moving, np.ones(n, bool)])
        self._motion_since_s = np.concatenate([self._motion_since_s, np.full(n, np.nan)])
        self._box = np.concatenate([self._box, np.zeros((n, 4), np.float32)])
        self._has_box = np.concatenate([self._has_box, np.zeros(n, bool)])

    def _expire(self, now: float) -> list[TrackChange]:
        if not len(self._public_id):
            return []
        confirmed = self._public_id != _NONE
        gone = now - self._last_s > np.where(confirmed, self._lost_s, self._tentative_lost_s)
        if not gone.any():
            return []
        # where it was last seen: a prediction may have drifted off the frame
        changes = [
            TrackChange(
                int(self._public_id[i]),
                TrackChangeKind.EXIT,
                int(self._class_id[i]),
                self._box[i].copy(),
            )
            for i in (gone & confirmed & self._has_box).nonzero()[0].tolist()
        ]
        keep = (~gone).nonzero()[0]
        self._state = self._state.take(keep, axis=2)
        self._public_id = self._public_id[keep]
        self._class_id = self._class_id[keep]
        self._confidence = self._confidence[keep]
        self._first_s = self._first_s[keep]
        self._last_s = self._last_s[keep]
        self._hits = self._hits[keep]
        self._moving = self._moving[keep]
        self._motion_since_s = self._motion_since_s[keep]
        self._box = self._box[keep]
        self._has_box = self._has_box[keep]
        return changes

    def _motion(self, now: float, rows: np.ndarray) -> list[TrackChange]:
        """Moving/stopped with hysteresis and a hold time, so jitter never flaps it."""
        s = self.settings
        if not len(rows):
            return []
        velocity = self._state[kalman.VEL, :2].take(rows, axis=1)
        height = self._state[kalman.POS, 3].take(rows)
        speed = np.hypot(velocity[0], velocity[1]) / np.maximum(height, 1.0)
        moving = self._moving[rows]
        wants = np.where(moving, speed >= s.stopped_speed, speed > 2 * s.stopped_speed)
        settled = wants == moving
        self._motion_since_s[rows[settled]] = np.nan
        if settled.all():
            return []
        pending, wants = rows[~settled], wants[~settled]
        since = self._motion_since_s[pending]
        since[np.isnan(since)] = now
        due = now - since >= s.motion_hold_s - 1e-6
        since[due] = np.nan
        self._motion_since_s[pending] = since
        changes = []
        for i, want in zip(pending[due].tolist(), wants[due].tolist(), strict=True):
            self._moving[i] = want
            # As before: a track confirmed on sight (confirm_s 0) has no box until matched.
            assert self._has_box[i], "a motion change of a track never matched"
            kind = TrackChangeKind.MOVING if want else TrackChangeKind.STOPPED
            box = self._box[i].copy()
            changes.append(TrackChange(int(self._public_id[i]), kind, int(self._class_id[i]), box))
        return changes
