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

from vigil.detections import ATTRIBUTES, Detections, iou_matrix
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


@dataclass
class _Track:
    key: int  # internal id (tentative tracks have no public id yet)
    class_id: int
    confidence: float
    first_s: float
    last_s: float
    hits: int = 1
    public_id: int | None = None
    moving: bool = True
    motion_since_s: float | None = None
    box: np.ndarray | None = None  # the last detection matched (exit and motion events)


class ByteTracker:
    """One stream's tracker. Not thread-safe: one instance per stream, one thread.

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
        self._tracks: list[_Track] = []
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._state_s = np.zeros(0)
        self._keys = 0
        self._last_update_s: float | None = None

    # --- public -----------------------------------------------------------------------------

    @property
    def active_ids(self) -> set[int]:
        """Public ids of the confirmed tracks (seen or lost, not yet ended)."""
        return {t.public_id for t in self._tracks if t.public_id is not None}

    def reset(self) -> None:
        """Forget every track (ids are still never reused)."""
        self._tracks = []
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._state_s = np.zeros(0)
        self._last_update_s = None

    def update(self, detections: Detections, timestamp_s: float) -> TrackerOutput:
        """Associate a frame's detections; returns the confirmed tracks matched on it."""
        s = self.settings
        now = self._advance(timestamp_s)
        previous_update = self._last_update_s
        self._last_update_s = now
        self._predict_to(now)
        n = len(detections)
        conf = detections.confidence
        high = np.flatnonzero(conf >= s.high_score)
        low = np.flatnonzero((conf >= s.low_score) & (conf < s.high_score))
        confirmed = [i for i, t in enumerate(self._tracks) if t.public_id is not None]
        tentative = [i for i, t in enumerate(self._tracks) if t.public_id is None]
        boxes = kalman.xyah_to_xyxy(self._mean[:, :4]) if self._tracks else np.zeros((0, 4))
        matches: dict[int, int] = {}  # track index -> detection index

        recent = (
            []
            if previous_update is None
            else [i for i in confirmed if self._tracks[i].last_s >= previous_update]
        )
        for tracks, dets, min_iou in (
            (confirmed, high, s.match_iou),
            (recent, low, _LOW_STAGE_IOU),
        ):
            taken = set(matches.values())
            tracks = [i for i in tracks if i not in matches]
            dets = np.array([d for d in dets if d not in taken], int)
            matches.update(self._associate(tracks, dets, boxes, detections, min_iou))
        taken = set(matches.values())
        left = np.array([d for d in high if d not in taken], int)
        matches.update(self._associate(tentative, left, boxes, detections, s.match_iou))

        changes: list[TrackChange] = []
        if matches:
            idx = np.array(list(matches), int)
            det_idx = np.array(list(matches.values()), int)
            measured = kalman.xyxy_to_xyah(detections.xyxy[det_idx].astype(np.float64))
            self._mean[idx], self._cov[idx] = kalman.update(
                self._mean[idx], self._cov[idx], measured
            )
            confidences = conf.tolist()
            boxes_seen = detections.xyxy.copy()
            for i, d in matches.items():
                track = self._tracks[i]
                track.hits += 1
                track.last_s = now
                track.confidence = confidences[d]
                track.box = boxes_seen[d]
                if track.public_id is None and self._confirmable(track, now):
                    track.public_id = self._next_id()
                    changes.append(
                        TrackChange(
                            track.public_id, TrackChangeKind.ENTRY, track.class_id, track.box
                        )
                    )
        taken = set(matches.values())
        self._start_tracks(
            [d for d in left if d not in taken and conf[d] >= s.new_track_score],
            detections,
            now,
        )
        rows = [(i, d) for i, d in matches.items() if self._tracks[i].public_id is not None]
        rows.sort(key=lambda r: self._tracks[r[0]].public_id or 0)
        changes += self._motion(now, [i for i, _ in rows])
        det_rows = np.array([d for _, d in rows], int)
        out = detections[det_rows] if n else Detections.empty()
        ids = np.array([self._tracks[i].public_id for i, _ in rows], np.int64)
        result = self._output(out, ids, [i for i, _ in rows], changes, predicted=False)
        # Last: expiring re-indexes the tracks (the rows above are indices).
        changes += self._expire(now)
        return result

    def predict(self, timestamp_s: float) -> TrackerOutput:
        """Boxes of the confirmed tracks seen on the last update, predicted to this frame."""
        now = self._advance(timestamp_s)
        self._predict_to(now)
        changes = self._expire(now)
        last = self._last_update_s
        rows = [
            i
            for i, t in enumerate(self._tracks)
            if t.public_id is not None and last is not None and t.last_s >= last
        ]
        rows.sort(key=lambda i: self._tracks[i].public_id or 0)
        changes += self._motion(now, rows)
        if rows:
            xyxy = kalman.xyah_to_xyxy(self._mean[rows, :4]).astype(np.float32)
        else:
            xyxy = np.zeros((0, 4), np.float32)
        dets = Detections(
            xyxy=xyxy,
            confidence=np.array([self._tracks[i].confidence for i in rows], np.float32),
            class_id=np.array([self._tracks[i].class_id for i in rows], np.int32),
        )
        ids = np.array([self._tracks[i].public_id for i in rows], np.int64)
        return self._output(dets, ids, rows, changes, predicted=True)

    # --- internals ---------------------------------------------------------------------------

    def _advance(self, timestamp_s: float) -> float:
        # Time never runs backwards for the tracker (a camera reconnect may reset its clock).
        if self._state_s.size and timestamp_s <= float(self._state_s.max()):
            return float(self._state_s.max()) + 1e-3
        if self._last_update_s is not None and timestamp_s <= self._last_update_s:
            return self._last_update_s + 1e-3
        return float(timestamp_s)

    def _predict_to(self, now: float) -> None:
        if self._tracks:
            self._mean, self._cov = kalman.predict(self._mean, self._cov, now - self._state_s)
            self._state_s[:] = now

    def _associate(
        self,
        tracks: list[int],
        dets: np.ndarray,
        boxes: np.ndarray,
        detections: Detections,
        min_iou: float,
    ) -> dict[int, int]:
        if not tracks or not len(dets):
            return {}
        overlap = iou_matrix(boxes[tracks], detections.xyxy[dets].astype(np.float64))
        if self.settings.per_class:
            track_classes = np.array([self._tracks[i].class_id for i in tracks])
            overlap[track_classes[:, None] != detections.class_id[dets][None, :]] = 0.0
        rows, cols = linear_sum_assignment(1.0 - overlap)
        return {
            tracks[r]: int(dets[c])
            for r, c in zip(rows, cols, strict=True)
            if overlap[r, c] >= min_iou
        }

    def _confirmable(self, track: _Track, now: float) -> bool:
        return track.hits >= 2 and now - track.first_s >= self.settings.confirm_s - 1e-6

    def _start_tracks(self, dets: list[int], detections: Detections, now: float) -> None:
        if not dets:
            return
        idx = np.array(dets, int)
        mean, cov = kalman.initiate(kalman.xyxy_to_xyah(detections.xyxy[idx].astype(np.float64)))
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._state_s = np.concatenate([self._state_s, np.full(len(idx), now)])
        for d in dets:
            self._keys += 1
            track = _Track(
                key=self._keys,
                class_id=int(detections.class_id[d]),
                confidence=float(detections.confidence[d]),
                first_s=now,
                last_s=now,
            )
            if self.settings.confirm_s <= 0:  # confirmed on sight when asked to
                track.public_id = self._next_id()
            self._tracks.append(track)

    def _expire(self, now: float) -> list[TrackChange]:
        s = self.settings
        keep: list[int] = []
        changes: list[TrackChange] = []
        for i, t in enumerate(self._tracks):
            limit = s.lost_track_s if t.public_id is not None else s.tentative_lost_s
            if now - t.last_s > limit + 1e-6:
                if t.public_id is not None and t.box is not None:
                    # where it was last seen: a prediction may have drifted off the frame
                    changes.append(
                        TrackChange(t.public_id, TrackChangeKind.EXIT, t.class_id, t.box)
                    )
            else:
                keep.append(i)
        if len(keep) != len(self._tracks):
            self._tracks = [self._tracks[i] for i in keep]
            self._mean, self._cov, self._state_s = (
                self._mean[keep],
                self._cov[keep],
                self._state_s[keep],
            )
        return changes

    def _motion(self, now: float, rows: list[int]) -> list[TrackChange]:
        """Moving/stopped with hysteresis and a hold time, so jitter never flaps it."""
        s = self.settings
        changes = []
        if not rows:
            return changes
        state = self._mean[rows]
        speeds = (np.hypot(state[:, 4], state[:, 5]) / np.maximum(state[:, 3], 1.0)).tolist()
        for i, speed in zip(rows, speeds, strict=True):
            t = self._tracks[i]
            wants = speed > 2 * s.stopped_speed if not t.moving else speed >= s.stopped_speed
            if wants == t.moving:
                t.motion_since_s = None
                continue
            if t.motion_since_s is None:
                t.motion_since_s = now
            if now - t.motion_since_s >= s.motion_hold_s - 1e-6:
                t.moving = wants
                t.motion_since_s = None
                kind = TrackChangeKind.MOVING if wants else TrackChangeKind.STOPPED
                assert t.public_id is not None
                assert t.box is not None
                changes.append(TrackChange(t.public_id, kind, t.class_id, t.box))
        return changes

    def _output(
        self,
        dets: Detections,
        ids: np.ndarray,
        rows: list[int],
        changes: list[TrackChange],
        *,
        predicted: bool,
    ) -> TrackerOutput:
        data = dict(dets.data) if not predicted else {}
        if predicted and ATTRIBUTES in dets.data:
            data[ATTRIBUTES] = dets.data[ATTRIBUTES]
        data[PREDICTED] = np.full(len(ids), predicted, bool)
        out = Detections(dets.xyxy, dets.confidence, dets.class_id, ids, data)
        moving = np.array([self._tracks[i].moving for i in rows], bool)
        return TrackerOutput(out, changes, moving)
