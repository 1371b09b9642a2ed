"""The tracker as it was before its per-frame cost was cut (commit 1a1230a), kept as the oracle.

``vigil.track.ByteTracker`` must reproduce this implementation's output exactly: the same ids,
changes and motion states, boxes equal to float tolerance. The equivalence tests
(``tests/unit/test_tracker_equivalence.py``) and ``bench/tracker_cost_bench.py --reference``
run both on the same input. Frozen on purpose: the Kalman filter and the IoU are copied here
(from ``vigil/track/kalman.py`` and ``vigil.detections.iou_matrix``), so later edits there
cannot move the oracle with them. Do not "improve" this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil.detections import ATTRIBUTES, Detections
from vigil.track import PREDICTED, TrackChange, TrackChangeKind, TrackerOutput, TrackerSettings

_LOW_STAGE_IOU = 0.5


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


# --- vigil/track/kalman.py at 1a1230a -------------------------------------------------------
_NDIM = 4
# Standard deviations relative to the box height: measurement and position noise, and the
# velocity random walk per second (ByteTrack's 1/20 and 1/160 per frame at 30 fps).
_STD_POSITION = 1.0 / 20
_STD_VELOCITY_PER_S = 30.0 / 160
_MIN_DT_S = 1e-3
_H = np.eye(_NDIM, 2 * _NDIM)


def _kalman_xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corner boxes → centre x, centre y, aspect (w / h), height."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-3)
    return np.stack([xyxy[:, 0] + w / 2, xyxy[:, 1] + h / 2, w / h, h], axis=1)


def _kalman_xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xyxy_to_xyah`."""
    h = np.maximum(xyah[:, 3], 1e-3)
    w = xyah[:, 2] * h
    return np.stack(
        [xyah[:, 0] - w / 2, xyah[:, 1] - h / 2, xyah[:, 0] + w / 2, xyah[:, 1] + h / 2], axis=1
    )


def _kalman_initiate(measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(N, 8)`` and covariance ``(N, 8, 8)`` of new tracks from ``(N, 4)`` xyah boxes."""
    n = len(measurement)
    mean = np.zeros((n, 2 * _NDIM))
    mean[:, :_NDIM] = measurement
    h = measurement[:, 3]
    std = np.stack(
        [
            2 * _STD_POSITION * h,
            2 * _STD_POSITION * h,
            np.full(n, 1e-2),
            2 * _STD_POSITION * h,
            10 * _STD_VELOCITY_PER_S * h,
            10 * _STD_VELOCITY_PER_S * h,
            np.full(n, 1e-3),
            10 * _STD_VELOCITY_PER_S * h,
        ],
        axis=1,
    )
    cov = np.zeros((n, 2 * _NDIM, 2 * _NDIM))
    idx = np.arange(2 * _NDIM)
    cov[:, idx, idx] = std**2
    return mean, cov


def _kalman_predict(
    mean: np.ndarray, cov: np.ndarray, dt_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Advance each track by its own ``dt_s`` (seconds, ``(N,)``)."""
    n = len(mean)
    if n == 0:
        return mean, cov
    dt = np.maximum(dt_s, _MIN_DT_S)
    h = mean[:, 3]
    # Position noise for the elapsed time, velocity as a random walk: variance ∝ dt.
    pos = (_STD_POSITION * h) ** 2 * np.minimum(dt * 30.0, 30.0)
    vel = (_STD_VELOCITY_PER_S * h) ** 2 * dt * 30.0
    diagonal = np.stack([pos, pos, 1e-4 * dt, pos, vel, vel, 1e-6 * dt, vel], axis=1)
    # F = [[I, dt·I], [0, I]], written out blockwise: far cheaper than batched matmuls.
    d = dt[:, None, None]
    mean = mean.copy()
    mean[:, :_NDIM] += mean[:, _NDIM:] * dt[:, None]
    a, b = cov[:, :_NDIM, :_NDIM], cov[:, :_NDIM, _NDIM:]
    c, dd = cov[:, _NDIM:, :_NDIM], cov[:, _NDIM:, _NDIM:]
    top_right = b + d * dd
    out = np.empty_like(cov)
    out[:, :_NDIM, :_NDIM] = a + d * c + d * top_right
    out[:, :_NDIM, _NDIM:] = top_right
    out[:, _NDIM:, :_NDIM] = c + d * dd
    out[:, _NDIM:, _NDIM:] = dd
    idx = np.arange(2 * _NDIM)
    out[:, idx, idx] += diagonal
    return mean, out


def _kalman_update(
    mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``(M, 8)`` states with ``(M, 4)`` xyah measurements."""
    if len(mean) == 0:
        return mean, cov
    h = mean[:, 3]
    r_std = np.stack(
        [_STD_POSITION * h, _STD_POSITION * h, np.full(len(h), 1e-1), _STD_POSITION * h], axis=1
    )
    r = np.zeros((len(h), _NDIM, _NDIM))
    idx = np.arange(_NDIM)
    r[:, idx, idx] = r_std**2
    projected_cov = cov[:, :_NDIM, :_NDIM] + r
    cross = cov[:, :, :_NDIM]  # P Hᵀ
    gain = np.linalg.solve(projected_cov, np.transpose(cross, (0, 2, 1)))  # (M, 4, 8)
    gain = np.transpose(gain, (0, 2, 1))  # K = P Hᵀ S⁻¹, (M, 8, 4)
    innovation = measurement - mean[:, :_NDIM]
    mean = mean + (gain @ innovation[:, :, None])[:, :, 0]
    cov = cov - gain @ np.transpose(cross, (0, 2, 1))
    return mean, cov


# --- vigil/track/bytetrack.py at 1a1230a ----------------------------------------------------


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


class ReferenceTracker:
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
        boxes = _kalman_xyah_to_xyxy(self._mean[:, :4]) if self._tracks else np.zeros((0, 4))
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
            measured = _kalman_xyxy_to_xyah(detections.xyxy[det_idx].astype(np.float64))
            self._mean[idx], self._cov[idx] = _kalman_update(
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
            xyxy = _kalman_xyah_to_xyxy(self._mean[rows, :4]).astype(np.float32)
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
            self._mean, self._cov = _kalman_predict(self._mean, self._cov, now - self._state_s)
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
        overlap = _iou_matrix(boxes[tracks], detections.xyxy[dets].astype(np.float64))
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
        mean, cov = _kalman_initiate(_kalman_xyxy_to_xyah(detections.xyxy[idx].astype(np.float64)))
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
