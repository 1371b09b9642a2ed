"""One stream's analytics: ROI filtering, line crossing, crowding, dwell and direction.

Everything is computed on each object's anchor point (bottom centre by default). Line
crossing, dwell and direction need track ids; untracked rows take part in ROI filtering and
crowding only. Per-track state is freed when the tracker reports the track's exit, and
forgotten for tracks unseen for a minute, so memory stays bounded under churn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vigil.analytics.config import AnalyticsConfig, Point
from vigil.detections import Detections

_FORGET_TRACK_S = 60.0
_DIRECTION_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class ObjectAnalytics:
    """One object's analytics status on one frame.

    Attributes:
        rois: ROI filters whose polygon contains the anchor.
        lines_crossed: ``(line, "in" | "out")`` crossed on this frame.
        zones: Crowding and dwell zones containing the anchor.
        dwell_s: Seconds in each dwell zone containing it (tracked objects).
        direction: Name of the direction rule its motion matches, or None.
    """

    rois: tuple[str, ...] = ()
    lines_crossed: tuple[tuple[str, str], ...] = ()
    zones: tuple[str, ...] = ()
    dwell_s: dict[str, float] = field(default_factory=dict)
    direction: str | None = None


@dataclass(frozen=True, slots=True)
class AnalyticsEvent:
    """Something a rule saw happen on a frame.

    Attributes:
        kind: ``line_crossed``, ``crowding_raised``, ``crowding_cleared``,
            ``dwell_exceeded`` or ``direction``.
        name: The rule.
        track_id: The object (None for zone-level events: crowding).
        class_id: The object's class (None for zone-level events).
        direction: ``in`` / ``out`` for a crossing, else None.
        count: The rule's count after the event (crossings that way for that class,
            objects in the zone for crowding).
        duration_s: How long the condition held (dwell, crowding).
        frame_number: The frame.
        timestamp_s: Its time.
    """

    kind: str
    name: str
    track_id: int | None
    class_id: int | None
    direction: str | None
    count: int
    duration_s: float
    frame_number: int
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class AnalyticsResult:
    """Analytics of one frame.

    Attributes:
        keep: Per input row, whether it passes the ROI filters.
        objects: Per input row, its status.
        events: What happened on this frame.
    """

    keep: np.ndarray
    objects: list[ObjectAnalytics]
    events: list[AnalyticsEvent]


@dataclass(frozen=True)
class AnalyticsCounts:
    """A stream's cumulative counts (class ids as strings).

    Attributes:
        lines: line → ``{"in": {class: n}, "out": {class: n}}``.
        crowding: zone → ``{"count": objects now, "raised": 0/1, "episodes": n}``.
        dwell: zone → ``{"inside": tracked objects now, "exceeded": n}``.
        rois: ROI → objects inside now.
    """

    lines: dict[str, dict[str, dict[str, int]]]
    crowding: dict[str, dict[str, int]]
    dwell: dict[str, dict[str, int]]
    rois: dict[str, int]


@dataclass
class _Crowd:
    raised: bool = False
    pending_since: float | None = None
    episodes: int = 0
    count: int = 0
    raised_at: float = 0.0


@dataclass
class _Visit:
    entered_s: float
    last_inside_s: float
    reported: bool = False


@dataclass
class _TrackMemory:
    last_seen_s: float
    sides: dict[str, int] = field(default_factory=dict)  # line → committed side (+1 / -1)
    visits: dict[str, _Visit] = field(default_factory=dict)  # dwell zone → current visit
    trail: list[tuple[float, float, float]] = field(default_factory=list)  # (t, x, y)
    directions_reported: set[str] = field(default_factory=set)


class StreamAnalytics:
    """One stream's analytics state. Not thread-safe: one instance per stream, one thread.

    Args:
        config: The rules.
    """

    def __init__(self, config: AnalyticsConfig) -> None:
        self.config = config
        self._tracks: dict[int, _TrackMemory] = {}
        self._line_counts: dict[str, dict[str, dict[str, int]]] = {}
        self._crowds: dict[str, _Crowd] = {}
        self._dwell_exceeded: dict[str, int] = {}
        self._dwell_inside: dict[str, int] = {}
        self._roi_inside: dict[str, int] = {}
        self._geometry: tuple[int, int, _Geometry] | None = None
        self.reconfigure(config)

    def reconfigure(self, config: AnalyticsConfig, reset_counts: bool = False) -> None:
        """Swap the rules; counts of rules that keep their name survive unless reset."""
        self.config = config
        self._geometry = None
        if reset_counts:
            self._line_counts, self._crowds, self._dwell_exceeded = {}, {}, {}
            self._tracks = {}
        lines = {r.name for r in config.lines}
        self._line_counts = {n: self._line_counts.get(n, {"in": {}, "out": {}}) for n in lines}
        self._crowds = {r.name: self._crowds.get(r.name, _Crowd()) for r in config.crowding}
        self._dwell_exceeded = {r.name: self._dwell_exceeded.get(r.name, 0) for r in config.dwell}
        self._dwell_inside = {r.name: 0 for r in config.dwell}
        self._roi_inside = {r.name: 0 for r in config.rois}
        for memory in self._tracks.values():
            memory.sides = {k: v for k, v in memory.sides.items() if k in lines}

    @property
    def tracked(self) -> int:
        """Tracks with state here (bounded by exits and the 60 s forget rule)."""
        return len(self._tracks)

    def counts(self) -> AnalyticsCounts:
        """Cumulative counts."""
        return AnalyticsCounts(
            lines={
                n: {d: dict(by_class) for d, by_class in c.items()}
                for n, c in self._line_counts.items()
            },
            crowding={
                n: {"count": c.count, "raised": int(c.raised), "episodes": c.episodes}
                for n, c in self._crowds.items()
            },
            dwell={
                n: {"inside": self._dwell_inside.get(n, 0), "exceeded": k}
                for n, k in self._dwell_exceeded.items()
            },
            rois=dict(self._roi_inside),
        )

    def update(
        self,
        detections: Detections,
        timestamp_s: float,
        frame_number: int,
        width: int,
        height: int,
        exited: Sequence[int] = (),
    ) -> AnalyticsResult:
        """Analyse one frame's objects (rows as given; ROI filtering only marks ``keep``)."""
        geo = self._geometry_for(width, height)
        n = len(detections)
        t = float(timestamp_s)
        anchors = _anchors(detections.xyxy, self.config.anchor)
        heights = np.maximum(detections.xyxy[:, 3] - detections.xyxy[:, 1], 1.0)
        classes = detections.class_id
        ids = detections.tracker_id
        events: list[AnalyticsEvent] = []
        keep = np.ones(n, bool)
        rois: list[list[str]] = [[] for _ in range(n)]
        zones: list[list[str]] = [[] for _ in range(n)]
        contained = geo.polygons.contains(anchors)  # rois, then crowding, then dwell zones
        n_rois, n_crowd = len(geo.rois), len(geo.crowding)
        for k, rule in enumerate(self.config.rois):
            inside = contained[:, k] & _applies(rule.classes, classes)
            self._roi_inside[rule.name] = int(inside.sum())
            for i in np.flatnonzero(inside):
                rois[i].append(rule.name)
            if rule.mode == "include":
                keep &= inside | ~_applies(rule.classes, classes)
            else:
                keep &= ~inside
        for k, rule in enumerate(self.config.crowding):
            inside = contained[:, n_rois + k] & _applies(rule.classes, classes) & keep
            for i in np.flatnonzero(inside):
                zones[i].append(rule.name)
            events += self._crowd(rule, int(inside.sum()), t, frame_number)
        crossed: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        dwell: list[dict[str, float]] = [{} for _ in range(n)]
        direction: list[str | None] = [None] * n
        if ids is not None and n:
            dwell_inside = [
                contained[:, n_rois + n_crowd + k] & _applies(rule.classes, classes) & keep
                for k, rule in enumerate(self.config.dwell)
            ]
            # Per line, vectorised: the committed side of every row (+1 / -1, 0 inside the
            # hysteresis band, None where the rule does not apply) and whether it is on
            # the segment; the per-row loop then only compares small ints.
            line_sides: list[list[int]] = []
            line_on: list[list[bool]] = []
            for rule, line in zip(self.config.lines, geo.lines, strict=True):
                dist, along = _signed_distance(anchors, line)
                margin = rule.hysteresis * heights
                side = np.where(dist >= margin, 1, np.where(dist <= -margin, -1, 0))
                if rule.classes is not None:
                    side = np.where(_applies(rule.classes, classes), side, 0)
                line_sides.append(side.tolist())
                on = np.ones(n, bool) if rule.extended else (along >= -0.05) & (along <= 1.05)
                line_on.append(on.tolist())
            for rule_index, rule in enumerate(self.config.dwell):
                self._dwell_inside[rule.name] = int(dwell_inside[rule_index].sum())
            dwell_lists = [inside.tolist() for inside in dwell_inside]
            id_list = ids.tolist()
            class_list = classes.tolist()
            lines = list(zip(self.config.lines, geo.lines, line_sides, line_on, strict=True))
            for i in np.flatnonzero(keep).tolist():
                track_id = id_list[i]
                memory = self._tracks.get(track_id)
                if memory is None:
                    memory = self._tracks[track_id] = _TrackMemory(t)
                memory.last_seen_s = t
                cls = class_list[i]
                for rule, line, sides, on in lines:
                    side = sides[i]
                    if not side:  # inside the hysteresis band, or the rule does not apply
                        continue
                    before = memory.sides.get(rule.name)
                    memory.sides[rule.name] = side
                    if before is None or before == side or not on[i]:
                        continue
                    way = "in" if side == line.in_side else "out"
                    by_class = self._line_counts[rule.name][way]
                    by_class[str(cls)] = by_class.get(str(cls), 0) + 1
                    crossed[i].append((rule.name, way))
                    events.append(
                        AnalyticsEvent(
                            "line_crossed", rule.name, track_id, cls, way,
                            by_class[str(cls)], 0.0, frame_number, t,
                        )
                    )  # fmt: skip
                for rule_index, rule in enumerate(self.config.dwell):
                    visit = memory.visits.get(rule.name)
                    if dwell_lists[rule_index][i]:
                        if visit is None:
                            visit = memory.visits[rule.name] = _Visit(t, t)
                        visit.last_inside_s = t
                        stayed = t - visit.entered_s
                        dwell[i][rule.name] = stayed
                        zones[i].append(rule.name)
                        if not visit.reported and stayed >= rule.threshold_s - 1e-6:
                            visit.reported = True
                            self._dwell_exceeded[rule.name] += 1
                            events.append(
                                AnalyticsEvent(
                                    "dwell_exceeded", rule.name, track_id, cls, None,
                                    self._dwell_exceeded[rule.name], stayed, frame_number, t,
                                )
                            )  # fmt: skip
                    elif visit is not None and t - visit.last_inside_s > rule.exit_grace_s:
                        del memory.visits[rule.name]
                if self.config.directions:
                    direction[i] = self._direction(memory, anchors[i], float(heights[i]), t)
                    name = direction[i]
                    if name is not None and name not in memory.directions_reported:
                        memory.directions_reported.add(name)
                        events.append(
                            AnalyticsEvent(
                                "direction", name, track_id, cls, None, 0, 0.0, frame_number, t
                            )
                        )
        for track_id in exited:
            self._tracks.pop(int(track_id), None)
        if self._tracks and frame_number % 64 == 0:
            stale = [k for k, m in self._tracks.items() if t - m.last_seen_s > _FORGET_TRACK_S]
            for k in stale:
                del self._tracks[k]
        objects = [
            ObjectAnalytics(
                tuple(rois[i]), tuple(crossed[i]), tuple(zones[i]), dwell[i], direction[i]
            )
            for i in range(n)
        ]
        return AnalyticsResult(keep, objects, events)

    # --- rules -------------------------------------------------------------------------------

    def _crowd(self, rule, count: int, t: float, frame_number: int) -> list[AnalyticsEvent]:
        state = self._crowds[rule.name]
        state.count = count
        over = count >= rule.threshold
        if over == state.raised:
            state.pending_since = None
            return []
        if state.pending_since is None:
            state.pending_since = t
        if t - state.pending_since < rule.min_duration_s - 1e-6:
            return []
        held = t - state.pending_since
        state.pending_since = None
        state.raised = over
        if over:
            state.episodes += 1
            state.raised_at = t
            kind = "crowding_raised"
        else:
            kind = "crowding_cleared"
            held = t - state.raised_at
        return [AnalyticsEvent(kind, rule.name, None, None, None, count, held, frame_number, t)]

    def _direction(
        self, memory: _TrackMemory, anchor: np.ndarray, height: float, t: float
    ) -> str | None:
        trail = memory.trail
        trail.append((t, float(anchor[0]), float(anchor[1])))
        while len(trail) > 2 and t - trail[1][0] >= _DIRECTION_WINDOW_S:
            trail.pop(0)
        _, x0, y0 = trail[0]
        dx, dy = float(anchor[0]) - x0, float(anchor[1]) - y0
        moved = math.hypot(dx, dy)
        assert self._geometry is not None
        geo = self._geometry[2]
        for rule, (vx, vy) in zip(self.config.directions, geo.directions, strict=True):
            if moved < rule.min_displacement * height or moved == 0:
                continue
            cos = (dx * vx + dy * vy) / (moved * math.hypot(vx, vy))
            if math.degrees(math.acos(max(-1.0, min(1.0, cos)))) <= rule.tolerance_deg:
                return rule.name
        return None

    def _geometry_for(self, width: int, height: int) -> _Geometry:
        if self._geometry is None or self._geometry[:2] != (width, height):
            self._geometry = (width, height, _Geometry(self.config, width, height))
        return self._geometry[2]


@dataclass(frozen=True)
class _Line:
    p1: np.ndarray
    p2: np.ndarray
    in_side: int
    normal: np.ndarray  # unit normal to the right-hand side
    along: np.ndarray  # segment / |segment|², so rel @ along is 0 at p1 and 1 at p2


class _Geometry:
    """The rules in the frame's pixels."""

    def __init__(self, config: AnalyticsConfig, width: int, height: int) -> None:
        sx, sy = config.pixel_scale(width, height)

        def scale(points: Sequence[Point]) -> np.ndarray:
            return np.array(points, np.float64) * (sx, sy)

        self.rois = [scale(r.polygon) for r in config.rois]
        self.crowding = [scale(r.polygon) for r in config.crowding]
        self.dwell = [scale(r.polygon) for r in config.dwell]
        self.polygons = _Polygons([*self.rois, *self.crowding, *self.dwell])
        self.lines = []
        for rule in config.lines:
            p1, p2 = scale(rule.line)
            in_side = 1
            if rule.direction is not None:
                d1, d2 = scale(rule.direction)
                normal = _normal(p1, p2)
                in_side = 1 if float(np.dot(normal, d2 - d1)) > 0 else -1
            seg = p2 - p1
            self.lines.append(_Line(p1, p2, in_side, _normal(p1, p2), seg / float(seg @ seg)))
        self.directions = [tuple(np.subtract(*scale(r.direction)[::-1])) for r in config.directions]


def _normal(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Unit normal pointing to the right-hand side of p1 → p2 (image y grows down)."""
    dx, dy = p2 - p1
    length = math.hypot(dx, dy)
    return np.array([-dy, dx]) / length


def _signed_distance(points: np.ndarray, line: _Line) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance of each point to the line (+ = right-hand side) and its position
    along the segment (0 at p1, 1 at p2)."""
    rel = points - line.p1
    return rel @ line.normal, rel @ line.along


def _anchors(xyxy: np.ndarray, anchor: str) -> np.ndarray:
    x = {"left": xyxy[:, 0], "right": xyxy[:, 2], "center": (xyxy[:, 0] + xyxy[:, 2]) / 2}
    y = {"top": xyxy[:, 1], "bottom": xyxy[:, 3], "center": (xyxy[:, 1] + xyxy[:, 3]) / 2}
    if anchor == "center":
        return np.stack([x["center"], y["center"]], axis=1).astype(np.float64)
    vertical, horizontal = anchor.split("_")
    return np.stack([x[horizontal], y[vertical]], axis=1).astype(np.float64)


class _Polygons:
    """Many polygons tested at once: every point against every edge in one vectorised
    pass, then even-odd parity per polygon (no per-polygon Python work per frame)."""

    def __init__(self, polygons: Sequence[np.ndarray]) -> None:
        self.count = len(polygons)
        if not polygons:
            return
        x1 = np.concatenate([p[:, 0] for p in polygons])
        y1 = np.concatenate([p[:, 1] for p in polygons])
        x2 = np.concatenate([np.roll(p[:, 0], -1) for p in polygons])
        y2 = np.concatenate([np.roll(p[:, 1], -1) for p in polygons])
        self.x1, self.y1, self.y2 = x1[None, :], y1[None, :], y2[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.slope = np.where(y2 != y1, (x2 - x1) / (y2 - y1), 0.0)[None, :]
        self.starts = np.cumsum([0, *[len(p) for p in polygons[:-1]]])

    def contains(self, points: np.ndarray) -> np.ndarray:
        """``(N, P)``: whether point n is inside polygon p."""
        if not self.count or not len(points):
            return np.zeros((len(points), self.count), bool)
        x, y = points[:, :1], points[:, 1:2]
        straddles = (self.y1 > y) != (self.y2 > y)
        crossing = straddles & (x < self.x1 + (y - self.y1) * self.slope)
        return np.add.reduceat(crossing, self.starts, axis=1) % 2 == 1


def _applies(classes: list[int] | None, class_id: np.ndarray) -> np.ndarray:
    if classes is None:
        return np.ones(len(class_id), bool)
    return np.isin(class_id, classes)


def _applies_one(classes: list[int] | None, class_id: int) -> bool:
    return classes is None or class_id in classes
