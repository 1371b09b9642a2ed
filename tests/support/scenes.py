"""Synthetic videos with known trajectories: the ground truth of the tracking tests.

A :class:`Scene` is a dark frame with solid rectangles moving along straight-line paths.
Each rectangle has a palette colour; the exact test detector
(:mod:`tests.support.synthetic_detector`) finds each colour's bounding box, and the colour
gives the class. Objects on screen at the same time must have different colours.

``render`` encodes the scene as H.264 MP4 with PyAV and returns the true box of every
visible object on every frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

# Saturated colours far apart in RGB (and from the background), so each survives H.264.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 30, 30),  # 0 red      — person
    (30, 230, 30),  # 1 green    — person
    (30, 30, 230),  # 2 blue     — person
    (230, 230, 30),  # 3 yellow  — car
    (230, 30, 230),  # 4 magenta — car
    (30, 230, 230),  # 5 cyan    — car
)
LABELS = ("person", "car")
BACKGROUND = (20, 20, 20)


def class_of(color: int) -> int:
    """The class of a palette colour: 0–2 are persons, 3–5 cars."""
    return 0 if color < 3 else 1


@dataclass(frozen=True)
class Mover:
    """A rectangle moving through keyframes ``(t, x, y)`` of its top-left corner, linearly
    in between; shown from the first keyframe to the last, except during ``hidden``."""

    color: int
    size: tuple[int, int]
    path: Sequence[tuple[float, float, float]]
    hidden: Sequence[tuple[float, float]] = ()

    def box(self, t: float) -> tuple[int, int, int, int] | None:
        """``(x1, y1, x2, y2)`` (exclusive ends) at time ``t``, or None when not shown."""
        first, last = self.path[0][0], self.path[-1][0]
        if t < first - 1e-9 or t > last + 1e-9 or any(a <= t < b for a, b in self.hidden):
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(self.path, self.path[1:], strict=False):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                x, y = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
                break
        else:
            _, x, y = self.path[-1]
        x, y = round(x), round(y)
        return x, y, x + self.size[0], y + self.size[1]


@dataclass(frozen=True)
class Scene:
    """A synthetic video: size, frame rate, duration and the moving objects."""

    width: int = 320
    height: int = 192
    fps: float = 10.0
    duration_s: float = 5.0
    movers: Sequence[Mover] = field(default_factory=tuple)

    @property
    def frame_count(self) -> int:
        return round(self.duration_s * self.fps)

    def truth(self, frame: int) -> dict[int, tuple[int, int, int, int]]:
        """Colour → visible box (clipped to the frame) on frame ``frame``."""
        t = frame / self.fps
        boxes = {}
        for mover in self.movers:
            box = mover.box(t)
            if box is None:
                continue
            x1, y1, x2, y2 = box
            x1, y1 = max(0, x1), max(0, y1)
            x2, y2 = min(self.width, x2), min(self.height, y2)
            if x2 - x1 >= 4 and y2 - y1 >= 4:
                if mover.color in boxes:
                    raise ValueError(f"two objects of colour {mover.color} on frame {frame}")
                boxes[mover.color] = (x1, y1, x2, y2)
        return boxes

    def frame(self, frame: int) -> np.ndarray:
        """The RGB image of frame ``frame``."""
        image = np.empty((self.height, self.width, 3), np.uint8)
        image[:] = BACKGROUND
        for color, (x1, y1, x2, y2) in self.truth(frame).items():
            image[y1:y2, x1:x2] = PALETTE[color]
        return image


def render(scene: Scene, path: Path) -> list[dict[int, tuple[int, int, int, int]]]:
    """Encode ``scene`` as H.264 MP4 at ``path``; returns the truth of every frame."""
    import av  # PyAV: only where clips are made

    rate = Fraction(scene.fps).limit_denominator(1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = scene.width, scene.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "g": str(max(1, round(scene.fps * 2)))}
        for k in range(scene.frame_count):
            frame = av.VideoFrame.from_ndarray(scene.frame(k), format="rgb24")
            frame.pts = k
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return [scene.truth(k) for k in range(scene.frame_count)]


DOOR = {
    "name": "door",
    "line": [[160, 0], [160, 192]],
    "direction": [[0, 100], [320, 100]],  # left → right is "in"
}
"""An analytics line rule across the middle of the default 320x192 scene."""

CROSSING = Scene(
    fps=10,
    duration_s=5,
    movers=(
        Mover(0, (16, 40), [(0.0, 20, 20), (4.5, 280, 20)]),  # person → in
        Mover(1, (16, 40), [(0.0, 290, 100), (4.5, 30, 100)]),  # person ← out
    ),
)
"""Two persons crossing :data:`DOOR`, one each way: one ``in`` and one ``out`` of class 0."""
