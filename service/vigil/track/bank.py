"""The tracks of many streams in one set of arrays, advanced a round of frames at a time.

:class:`TrackerBank` is the tracker's implementation; the algorithm is the one
:mod:`vigil.track.bytetrack` describes, and each stream (a *lane* of the bank) gets exactly the
results it would get alone. What the bank adds is cost: a batch of 32 frames from 16 streams
used to pay ~80 small NumPy calls per frame, each ~1 µs of fixed overhead whatever the number
of tracks; the bank runs the Kalman predict and update, the IoU matrix, motion and expiry once
per *round* (one frame of each of several streams) over every track of those streams, and
leaves per stream only the association itself (the Hungarian solver is per stream by nature)
and the output's few arrays.

Every per-track field is one array over all lanes' tracks, with ``_lane`` saying whose each
track is. New tracks are appended and ended ones removed in order, so a lane's tracks, read in
array order, are in the order they were started (that order breaks the solver's ties).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Final

import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil.detections import Detections
from vigil.track import kalman
from vigil.track.types import (
    PREDICTED,
    TrackChange,
    TrackChangeKind,
    TrackerOutput,
    TrackerSettings,
)

_LOW_STAGE_IOU = 0.5  # ByteTrack's second stage: low-score boxes need a clear overlap
_NONE: Final = -1  # public id of a tentative track
_EMPTY = np.zeros(0, np.intp)
_EMPTY.flags.writeable = False  # shared by every tracker: nobody may write into it
# Above this many track × detection pairs in a round, each lane's IoU block is computed on
# its own instead of one matrix over the round (whose off-diagonal blocks are wasted work).
_ROUND_IOU_PAIRS = 32_768
# Per-track arrays besides the Kalman state, and how they start out for a new track.
_FIELDS: Final = (
    "_lane", "_public_id", "_class_id", "_confidence", "_first_s", "_last_s", "_hits",
    "_moving", "_motion_since_s", "_box", "_has_box",
)  # fmt: skip

Frame = tuple[int, Detections | None, float]
"""One stream's frame in a round: its lane, its detections (None: the model skipped the
frame, predict only) and its time in seconds."""


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


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays end to end (the one array itself when there is one)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _segments(keys: np.ndarray, wanted: Sequence[int]) -> list[slice]:
    """For sorted ``keys``, the slice holding each of ``wanted``."""
    starts = keys.searchsorted(wanted, "left").tolist()
    ends = keys.searchsorted(wanted, "right").tolist()
    return [slice(a, b) for a, b in zip(starts, ends, strict=True)]


class TrackerBank:
    """Tracks of any number of streams. Not thread-safe: one thread calls it.

    Args:
        settings: Thresholds and durations, the same for every lane.
    """

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        # Limits of the expiry test: the durations plus the float tolerance it always had.
        self._lost_s = settings.lost_track_s + 1e-6
        self._tentative_lost_s = settings.tentative_lost_s + 1e-6
        # Per lane: where its public ids come from (None: the lane is free), the time of its
        # tracks' states, and of its last update (None: none yet).
        self._next_id: list[Callable[[], int] | None] = []
        self._state_s: list[float] = []
        self._last_update_s: list[float | None] = []
        self._state = kalman.empty()
        self._lane = np.zeros(0, np.intp)
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

    # --- lanes -------------------------------------------------------------------------------

    def add_lane(self, next_id: Callable[[], int]) -> int:
        """A new stream's lane; its public ids come from ``next_id``."""
        free = [lane for lane, taken in enumerate(self._next_id) if taken is None]
        if free:
            lane = free[0]
        else:
            lane = len(self._next_id)
            self._next_id.append(None)
            self._state_s.append(0.0)
            self._last_update_s.append(None)
        self._next_id[lane] = next_id
        self._state_s[lane], self._last_update_s[lane] = 0.0, None
        return lane

    def remove_lane(self, lane: int) -> None:
        """Forget a stream: its tracks go, its lane may be handed out again."""
        self.reset_lane(lane)
        self._next_id[lane] = None

    def reset_lane(self, lane: int) -> None:
        """Forget every track of ``lane`` (its ids are never handed out again)."""
        self._keep((self._lane != lane).nonzero()[0])
        self._state_s[lane], self._last_update_s[lane] = 0.0, None

    def active_ids(self, lane: int) -> set[int]:
        """Public ids of the lane's confirmed tracks (seen or lost, not yet ended)."""
        ids = self._public_id[self._lane == lane]
        return set(ids[ids != _NONE].tolist())

    # --- a round -----------------------------------------------------------------------------

    def step(self, frames: Sequence[Frame]) -> list[TrackerOutput]:
        """One frame of each of several lanes (no lane twice); their outputs, in order."""
        if len({lane for lane, _, _ in frames}) != len(frames):
            raise ValueError("a round holds at most one frame of each lane")
        counts = np.bincount(self._lane, minlength=len(self._state_s)).tolist()
        nows, dts = [], [0.0] * len(self._state_s)
        for lane, _, timestamp_s in frames:
            now = self._advance(lane, timestamp_s, counts[lane])
            nows.append(now)
            if counts[lane]:
                dts[lane] = now - self._state_s[lane]
                self._state_s[lane] = now
        # Every track of the round's lanes predicted to its lane's time, in one step.
        if len(self._lane):
            dt = np.array(dts)[self._lane]
            in_round = np.zeros(len(self._state_s), bool)
            in_round[[lane for lane, _, _ in frames]] = True
            if in_round.all():
                kalman.predict(self._state, dt)
            elif (rows := in_round[self._lane].nonzero()[0]).size:
                moved = self._state.take(rows, axis=2)
                kalman.predict(moved, dt[rows])
                self._state[:, :, rows] = moved
        outputs: list[TrackerOutput | None] = [None] * len(frames)
        skipped = [i for i, frame in enumerate(frames) if frame[1] is None]
        if skipped:
            self._predicted(frames, nows, skipped, outputs)
        if len(skipped) < len(frames):
            inferred = [i for i, frame in enumerate(frames) if frame[1] is not None]
            self._updated(frames, nows, inferred, outputs)
        return outputs  # type: ignore[return-value]

    def _advance(self, lane: int, timestamp_s: float, tracks: int) -> float:
        # Time never runs backwards for the tracker (a camera reconnect may reset its clock).
        if tracks and timestamp_s <= self._state_s[lane]:
            return self._state_s[lane] + 1e-3
        last = self._last_update_s[lane]
        if last is not None and timestamp_s <= last:
            return last + 1e-3
        return float(timestamp_s)

    def _now_of_lanes(
        self, frames: Sequence[Frame], nows: list[float], items: list[int]
    ) -> np.ndarray:
        """Per lane, the time of its frame among ``items``; -inf for the other lanes (never
        past any duration)."""
        now = np.full(len(self._state_s), -np.inf)
        now[[frames[i][0] for i in items]] = [nows[i] for i in items]
        return now

    def _predicted(
        self,
        frames: Sequence[Frame],
        nows: list[float],
        items: list[int],
        outputs: list[TrackerOutput | None],
    ) -> None:
        """Frames the model skipped: the confirmed tracks seen on the lane's last update, at
        their predicted boxes."""
        now_of = self._now_of_lanes(frames, nows, items)
        exits = self._expire(now_of)
        lanes = [frames[i][0] for i in items]
        last_update = np.full(len(self._state_s), np.nan)  # NaN: nothing was seen
        last_update[lanes] = [
            np.nan if (t := self._last_update_s[lane]) is None else t for lane in lanes
        ]
        seen = (self._public_id != _NONE) & (self._last_s >= last_update[self._lane])
        rows = seen.nonzero()[0]
        rows = rows[np.lexsort((self._public_id[rows], self._lane[rows]))]
        motion = self._motion(now_of, rows)
        xyxy = np.array(
            kalman.xyah_to_xyxy(self._state[kalman.POS].take(rows, axis=1)).T, np.float32
        )
        confidence, class_id = self._confidence[rows], self._class_id[rows].astype(np.int32)
        public_id, moving = self._public_id[rows], self._moving[rows]
        for i, lane, part in zip(items, lanes, _segments(self._lane[rows], lanes), strict=True):
            dets = Detections(
                xyxy=xyxy[part],
                confidence=confidence[part],
                class_id=class_id[part],
                tracker_id=public_id[part],
                data={PREDICTED: np.ones(part.stop - part.start, bool)},
            )
            outputs[i] = TrackerOutput(
                dets, exits.get(lane, []) + motion.get(lane, []), moving[part]
            )

    def _updated(
        self,
        frames: Sequence[Frame],
        nows: list[float],
        items: list[int],
        outputs: list[TrackerOutput | None],
    ) -> None:
        """Frames the model saw: association, new tracks, the confirmed tracks matched."""
        s = self.settings
        found: list[Detections] = [frames[i][1] for i in items]  # type: ignore[misc]
        lanes = [frames[i][0] for i in items]
        sizes = [len(d) for d in found]
        ends = list(accumulate(sizes))
        starts = [0, *ends[:-1]]
        if len(found) == 1:
            xyxy, conf, class_id = found[0].xyxy, found[0].confidence, found[0].class_id
        else:
            xyxy = np.concatenate([d.xyxy for d in found])
            conf = np.concatenate([d.confidence for d in found])
            class_id = np.concatenate([d.class_id for d in found])
        boxes = np.array(xyxy.T, np.float64)  # (4, D)
        high = (conf >= s.high_score).nonzero()[0]
        low = ((conf >= s.low_score) & (conf < s.high_score)).nonzero()[0]
        # Each lane's strong and weak detections, and its tracks in array (start) order.
        if len(lanes) == 1:
            high_cuts, low_cuts = [0, len(high)], [0, len(low)]
            lane_rows = [(self._lane == lanes[0]).nonzero()[0]]
        else:
            high_cuts = [0, *high.searchsorted(ends).tolist()]
            low_cuts = [0, *low.searchsorted(ends).tolist()]
            order = self._lane.argsort(kind="stable")
            lane_rows = [order[part] for part in _segments(self._lane[order], lanes)]
        overlap = None
        if 0 < len(self._lane) * len(conf) <= _ROUND_IOU_PAIRS:
            overlap = _iou(kalman.xyah_to_xyxy(self._state[kalman.POS]), boxes)
            if s.per_class:
                overlap[self._class_id[:, None] != class_id] = 0.0

        matched_tracks, matched_dets, fresh, left = [], [], [], []
        for k, lane in enumerate(lanes):
            start, end = starts[k], ends[k]
            rows = lane_rows[k]
            lane_high = high[high_cuts[k] : high_cuts[k + 1]]  # round positions: the lane's + start
            weak = low_cuts[k] < low_cuts[k + 1]
            if not len(rows) or not (len(lane_high) or weak):
                # nothing to associate: a lane's common case between objects
                matched_tracks.append(_EMPTY)
                matched_dets.append(_EMPTY)
                fresh.append(_EMPTY)
                left.append(lane_high)
                continue
            lane_low = low[low_cuts[k] : low_cuts[k + 1]]
            if start:
                lane_high, lane_low = lane_high - start, lane_low - start
            if overlap is not None and len(rows) == len(overlap) and len(lanes) == 1:
                block = overlap  # the round's one lane holds every track: rows are 0..N-1
            elif overlap is not None:
                block = overlap.take(rows, 0)[:, start:end]
            else:
                block = _iou(
                    kalman.xyah_to_xyxy(self._state[kalman.POS].take(rows, axis=1)),
                    boxes[:, start:end],
                )
                if s.per_class:
                    block[self._class_id[rows][:, None] != class_id[start:end]] = 0.0
            tracks, dets, lane_fresh, lane_left = self._match(
                block, rows, lane_high, lane_low, self._last_update_s[lane]
            )
            matched_tracks.append(rows[tracks])
            matched_dets.append(dets + start if start else dets)
            fresh.append(rows[lane_fresh])
            left.append(lane_left + start if start else lane_left)
        for lane, i in zip(lanes, items, strict=True):
            self._last_update_s[lane] = nows[i]

        now_of = self._now_of_lanes(frames, nows, items)
        changes: dict[int, list[TrackChange]] = {lane: [] for lane in lanes}
        tracks, dets = _joined(matched_tracks), _joined(matched_dets)
        if len(tracks):
            state = self._state.take(tracks, axis=2)
            kalman.update(state, kalman.xyxy_to_xyah(boxes.take(dets, axis=1)))
            self._state[:, :, tracks] = state
            self._hits[tracks] += 1
            self._last_s[tracks] = now_of[self._lane[tracks]]
            self._confidence[tracks] = conf[dets]
            self._box[tracks] = xyxy[dets]
            self._has_box[tracks] = True
            self._confirm(_joined(fresh), now_of, changes)
        starting = _joined(left)
        if len(starting):
            starting = starting[conf[starting] >= s.new_track_score]
            det_lane = np.repeat(np.array(lanes, np.intp), sizes)
            self._start_tracks(starting, det_lane, now_of, boxes, conf, class_id)

        # Per lane, the confirmed tracks matched, by id; their motion; the outputs.
        ids = self._public_id[tracks]
        shown = (ids != _NONE).nonzero()[0]
        if len(lanes) == 1:
            if len(shown) > 1:
                shown = shown[ids[shown].argsort(kind="stable")]
            parts = [slice(0, len(shown))]
        else:
            pair_lane = np.repeat(np.arange(len(lanes)), [len(t) for t in matched_tracks])
            shown = shown[np.lexsort((ids[shown], pair_lane[shown]))]
            parts = _segments(pair_lane[shown], np.arange(len(lanes)))
        rows, ids, picked = tracks[shown], ids[shown], dets[shown]
        motion = self._motion(now_of, rows)
        moving = self._moving[rows]
        for k, (i, lane, detections, part) in enumerate(
            zip(items, lanes, found, parts, strict=True)
        ):
            if not len(detections):  # what an empty frame always gave: no data columns
                out = Detections(
                    np.zeros((0, 4), np.float32),
                    detections.confidence,
                    np.zeros(0, np.int32),
                    ids[part],
                    {PREDICTED: np.zeros(0, bool)},
                )
            else:
                local = picked[part] - starts[k] if k else picked[part]
                data = {key: column[local] for key, column in detections.data.items()}
                data[PREDICTED] = np.zeros(len(local), bool)
                out = Detections(
                    detections.xyxy[local],
                    detections.confidence[local],
                    detections.class_id[local],
                    ids[part],
                    data,
                )
            changes[lane] += motion.get(lane, [])
            outputs[i] = TrackerOutput(out, changes[lane], moving[part])
        # Last, and into the same lists: expiring re-indexes the tracks (rows are indices).
        for lane, exits in self._expire(now_of).items():
            changes[lane] += exits

    def _match(
        self,
        overlap: np.ndarray,
        rows: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        previous_update: float | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One lane's three association stages, on its IoU block (its tracks ``rows`` ×
        its detections).

        Returns, as positions in the block, the matched tracks and their detections (stage by
        stage, each in the solver's order), the tentative tracks among them, and the strong
        detections no track took (candidates for new tracks).
        """
        s = self.settings
        n_dets = overlap.shape[1]
        confirmed = self._public_id[rows] != _NONE
        tracks, dets = _assign(overlap, confirmed.nonzero()[0], high, s.match_iou)
        if previous_update is not None and len(low):
            # weak detections only keep alive the confirmed tracks seen on the last update
            recent = confirmed & (self._last_s[rows] >= previous_update)
            recent[tracks] = False
            tracks2, dets2 = _assign(overlap, recent.nonzero()[0], low, _LOW_STAGE_IOU)
            if len(tracks2):
                tracks, dets = np.concatenate([tracks, tracks2]), np.concatenate([dets, dets2])
        left = _without(high, dets, n_dets)
        fresh, dets3 = _assign(overlap, (~confirmed).nonzero()[0], left, s.match_iou)
        if len(fresh):
            tracks, dets = np.concatenate([tracks, fresh]), np.concatenate([dets, dets3])
            left = _without(left, dets3, n_dets)
        return tracks, dets, fresh, left

    def _confirm(
        self, matched: np.ndarray, now_of: np.ndarray, changes: dict[int, list[TrackChange]]
    ) -> None:
        """Public ids for the tentative tracks just matched that qualify, in match order."""
        if not len(matched):
            return
        due = (self._hits[matched] >= 2) & (
            now_of[self._lane[matched]] - self._first_s[matched] >= self.settings.confirm_s - 1e-6
        )
        for i in matched[due].tolist():
            lane = int(self._lane[i])
            self._public_id[i] = public_id = self._next_id[lane]()  # type: ignore[misc]
            box = self._box[i].copy()
            changes[lane].append(
                TrackChange(public_id, TrackChangeKind.ENTRY, int(self._class_id[i]), box)
            )

    def _start_tracks(
        self,
        dets: np.ndarray,
        det_lane: np.ndarray,
        now_of: np.ndarray,
        boxes: np.ndarray,
        confidence: np.ndarray,
        class_id: np.ndarray,
    ) -> None:
        n = len(dets)
        if not n:
            return
        lane = det_lane[dets]
        now = now_of[lane]
        state = kalman.initiate(kalman.xyxy_to_xyah(boxes.take(dets, axis=1)))
        public_id = np.full(n, _NONE, np.int64)
        if self.settings.confirm_s <= 0:  # confirmed on sight when asked to
            public_id[:] = [self._next_id[k]() for k in lane.tolist()]  # type: ignore[misc]
        for k in set(lane.tolist()):
            self._state_s[k] = float(now_of[k])
        self._state = np.concatenate([self._state, state], axis=2)
        new_rows = (
            ("_lane", lane),
            ("_public_id", public_id),
            ("_class_id", class_id[dets]),
            ("_confidence", confidence[dets]),
            ("_first_s", now),
            ("_last_s", now),
            ("_hits", np.ones(n)),
            ("_moving", np.ones(n)),
            ("_motion_since_s", np.full(n, np.nan)),
            ("_box", np.zeros((n, 4))),
            ("_has_box", np.zeros(n)),
        )
        for name, values in new_rows:  # each field keeps its dtype
            field = getattr(self, name)
            setattr(self, name, np.concatenate([field, values.astype(field.dtype, copy=False)]))

    def _keep(self, rows: np.ndarray) -> None:
        """Keep only the tracks ``rows`` (ascending), in their order."""
        self._state = self._state.take(rows, axis=2)
        for name in _FIELDS:
            setattr(self, name, getattr(self, name)[rows])

    def _expire(self, now_of: np.ndarray) -> dict[int, list[TrackChange]]:
        """End the tracks missed too long (the lanes at ``now_of``); per lane, the exits."""
        if not len(self._lane):
            return {}
        confirmed = self._public_id != _NONE
        limit = np.where(confirmed, self._lost_s, self._tentative_lost_s)
        gone = now_of[self._lane] - self._last_s > limit
        if not gone.any():
            return {}
        # where it was last seen: a prediction may have drifted off the frame
        changes: dict[int, list[TrackChange]] = {}
        for i in (gone & confirmed & self._has_box).nonzero()[0].tolist():
            changes.setdefault(int(self._lane[i]), []).append(
                TrackChange(
                    int(self._public_id[i]),
                    TrackChangeKind.EXIT,
                    int(self._class_id[i]),
                    self._box[i].copy(),
                )
            )
        self._keep((~gone).nonzero()[0])
        return changes

    def _motion(self, now_of: np.ndarray, rows: np.ndarray) -> dict[int, list[TrackChange]]:
        """Moving/stopped with hysteresis and a hold time, so jitter never flaps it; per
        lane, the changes."""
        s = self.settings
        if not len(rows):
            return {}
        velocity = self._state[kalman.VEL, :2].take(rows, axis=1)
        height = self._state[kalman.POS, 3].take(rows)
        speed = np.hypot(velocity[0], velocity[1]) / np.maximum(height, 1.0)
        moving = self._moving[rows]
        wants = np.where(moving, speed >= s.stopped_speed, speed > 2 * s.stopped_speed)
        settled = wants == moving
        self._motion_since_s[rows[settled]] = np.nan
        if settled.all():
            return {}
        pending, wants = rows[~settled], wants[~settled]
        now = now_of[self._lane[pending]]
        since = self._motion_since_s[pending]
        unset = np.isnan(since)
        since[unset] = now[unset]
        due = now - since >= s.motion_hold_s - 1e-6
        since[due] = np.nan
        self._motion_since_s[pending] = since
        changes: dict[int, list[TrackChange]] = {}
        for i, want in zip(pending[due].tolist(), wants[due].tolist(), strict=True):
            self._moving[i] = want
            # As before: a track confirmed on sight (confirm_s 0) has no box until matched.
            assert self._has_box[i], "a motion change of a track never matched"
            kind = TrackChangeKind.MOVING if want else TrackChangeKind.STOPPED
            changes.setdefault(int(self._lane[i]), []).append(
                TrackChange(
                    int(self._public_id[i]), kind, int(self._class_id[i]), self._box[i].copy()
                )
            )
        return changes
