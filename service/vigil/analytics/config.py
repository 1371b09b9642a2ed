"""Analytics rules: one pydantic model shared by YAML settings, REST bodies and Kafka commands.

Coordinates are source pixels (optionally drawn for another frame size, ``reference_size``,
and scaled to the real one, as DeepStream's ``config-width`` / ``config-height``) or
normalized to 0..1 of the frame. Every rule has a name (unique within its kind) and an
optional list of class ids it applies to.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Point = tuple[Coordinate, Coordinate]
RuleName = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", examples=["door"]),
]
Anchor = Literal[
    "bottom_center", "center", "top_center", "bottom_left", "bottom_right", "top_left", "top_right"
]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RuleName
    classes: list[Annotated[int, Field(ge=0, le=1_000_000)]] | None = Field(
        None, max_length=1000, description="Class ids the rule applies to (None: every class)"
    )


class RoiFilter(_Rule):
    """Keep only objects inside (``include``) or outside (``exclude``) a polygon."""

    polygon: list[Point] = Field(min_length=3, max_length=64)
    mode: Literal["include", "exclude"] = "include"

    @model_validator(mode="after")
    def _simple(self) -> RoiFilter:
        _check_polygon(self.polygon)
        return self


class LineCrossing(_Rule):
    """Count objects crossing a line segment, per direction and class.

    ``direction`` (two points) is the way a crossing counts as ``in``; without it, ``in``
    is crossing towards the right-hand side of the line drawn from its first point to its
    second (y grows downwards). A crossing counts only once the anchor is at least
    ``hysteresis`` × the object's box height beyond the line on the new side, having been as
    far on the other side, so an object that flickers on the line never counts.
    """

    line: tuple[Point, Point]
    direction: tuple[Point, Point] | None = None
    hysteresis: float = Field(0.1, ge=0, le=2, allow_inf_nan=False)
    extended: bool = Field(False, description="Count crossings beyond the segment's ends")

    @model_validator(mode="after")
    def _lengths(self) -> LineCrossing:
        (x1, y1), (x2, y2) = self.line
        if (x1, y1) == (x2, y2):
            raise ValueError("line: the two points are the same (a line of zero length)")
        if self.direction is not None and self.direction[0] == self.direction[1]:
            raise ValueError("direction: the two points are the same (no direction)")
        if self.direction is not None:
            lx, ly = x2 - x1, y2 - y1
            (a, b), (c, d) = self.direction
            if abs(-ly * (c - a) + lx * (d - b)) < 1e-9:
                raise ValueError("direction: parallel to the line, so it crosses nothing")
        return self


class CrowdingZone(_Rule):
    """Raise an alert when at least ``threshold`` objects stay in a zone ``min_duration_s``;
    clear it when fewer stay that long."""

    polygon: list[Point] = Field(min_length=3, max_length=64)
    threshold: int = Field(ge=1, le=100_000)
    min_duration_s: float = Field(0.0, ge=0, le=86_400, allow_inf_nan=False)

    @model_validator(mode="after")
    def _simple(self) -> CrowdingZone:
        _check_polygon(self.polygon)
        return self


class DwellZone(_Rule):
    """Report a tracked object that stays in a zone ``threshold_s`` (once per visit); a
    visit ends after the object has been out of the zone for ``exit_grace_s``."""

    polygon: list[Point] = Field(min_length=3, max_length=64)
    threshold_s: float = Field(gt=0, le=86_400 * 7, allow_inf_nan=False)
    exit_grace_s: float = Field(0.5, ge=0, le=3600, allow_inf_nan=False)

    @model_validator(mode="after")
    def _simple(self) -> DwellZone:
        _check_polygon(self.polygon)
        return self


class DirectionRule(_Rule):
    """Name the direction of tracked objects moving within ``tolerance_deg`` of a vector."""

    direction: tuple[Point, Point]
    tolerance_deg: float = Field(45.0, gt=0, le=180, allow_inf_nan=False)
    min_displacement: float = Field(
        0.2, ge=0, le=100, allow_inf_nan=False, description="In box heights, over 1 s"
    )

    @model_validator(mode="after")
    def _length(self) -> DirectionRule:
        if self.direction[0] == self.direction[1]:
            raise ValueError("direction: the two points are the same (no direction)")
        return self


class AnalyticsConfig(BaseModel):
    """A stream's analytics rules."""

    model_config = ConfigDict(extra="forbid")

    coordinates: Literal["pixels", "normalized"] = Field(
        "pixels", description="pixels of the source (or of reference_size), or 0..1"
    )
    reference_size: (
        tuple[Annotated[int, Field(ge=1, le=16384)], Annotated[int, Field(ge=1, le=16384)]] | None
    ) = Field(
        None,
        description="(width, height) the pixel coordinates were drawn for; scaled to "
        "the frame (DeepStream's config-width/config-height)",
    )
    anchor: Anchor = Field("bottom_center", description="The point of a box that is tested")
    rois: list[RoiFilter] = Field(default_factory=list, max_length=64)
    lines: list[LineCrossing] = Field(default_factory=list, max_length=64)
    crowding: list[CrowdingZone] = Field(default_factory=list, max_length=64)
    dwell: list[DwellZone] = Field(default_factory=list, max_length=64)
    directions: list[DirectionRule] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _check(self) -> AnalyticsConfig:
        for kind in ("rois", "lines", "crowding", "dwell", "directions"):
            names = [rule.name for rule in getattr(self, kind)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind}: duplicate names {dupes}")
        if self.coordinates == "normalized":
            limit: tuple[float, float] | None = (1.0, 1.0)
            what = "normalized coordinates must be within 0..1"
        elif self.reference_size is not None:
            limit = (float(self.reference_size[0]), float(self.reference_size[1]))
            what = f"pixel coordinates must be within the reference size {self.reference_size}"
        else:
            limit = None
            what = "pixel coordinates must not be negative"
        for kind, field in self.points():
            for x, y in field[1]:
                bad = x < 0 or y < 0 or (limit is not None and (x > limit[0] or y > limit[1]))
                if bad:
                    raise ValueError(
                        f"{kind}.{field[0]}: point ({x}, {y}) is outside the frame: {what}"
                    )
        return self

    def points(self) -> list[tuple[str, tuple[str, list[Point]]]]:
        """Every point of every rule, as ``(kind, (rule name, points))``."""
        out: list[tuple[str, tuple[str, list[Point]]]] = []
        for roi in self.rois:
            out.append(("rois", (roi.name, list(roi.polygon))))
        for line in self.lines:
            out.append(("lines", (line.name, [*line.line, *(line.direction or ())])))
        for zone in self.crowding:
            out.append(("crowding", (zone.name, list(zone.polygon))))
        for zone in self.dwell:
            out.append(("dwell", (zone.name, list(zone.polygon))))
        for rule in self.directions:
            out.append(("directions", (rule.name, list(rule.direction))))
        return out

    def pixel_scale(self, width: int, height: int) -> tuple[float, float]:
        """Per-axis factors from the rules' coordinates to the pixels of a ``width`` ×
        ``height`` frame: the frame size for normalized coordinates, frame / reference size
        for pixels drawn for ``reference_size``, 1 for source pixels."""
        if self.coordinates == "normalized":
            return float(width), float(height)
        if self.reference_size is not None:
            return width / self.reference_size[0], height / self.reference_size[1]
        return 1.0, 1.0

    def check_frame(self, width: int, height: int) -> None:
        """Pixel coordinates (with no reference size) must fit the real frame.

        Raises:
            ValueError: naming the rule and point outside a ``width`` × ``height`` frame.
        """
        if self.coordinates != "pixels" or self.reference_size is not None:
            return
        for kind, (name, points) in self.points():
            for x, y in points:
                if x > width or y > height:
                    raise ValueError(
                        f"{kind}.{name}: point ({x}, {y}) is outside the {width}x{height} frame"
                    )


def _check_polygon(points: list[Point]) -> None:
    """Refuse a polygon whose edges cross each other (or that has no area)."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a vertex
            if _segments_cross(*edges[i], *edges[j]):
                raise ValueError(f"polygon: edges {i} and {j} cross (self-intersecting polygon)")
    area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in edges) / 2
    if abs(area) < 1e-12:
        raise ValueError("polygon: it has no area (all points on one line)")


def _segments_cross(p1: Point, p2: Point, p3: Point, p4: Point) -> bool:
    def orient(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(p3, p4, p1), orient(p3, p4, p2)
    d3, d4 = orient(p1, p2, p3), orient(p1, p2, p4)
    return ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4))
