"""Deterministic detection sequences for the tracker: crowds with births, deaths, crossings,
occlusions, missed and weak detections, false positives, skipped frames and clock glitches.

A sequence is a list of :class:`TrackerStep`: what one stream's tracker is asked to do on each
frame. Used by the tracker equivalence tests (two implementations run step by step on the
same sequence) and by ``bench/tracker_cost_bench.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.detections import ATTRIBUTES, Detections
from vigil.track import PREDICTED, TrackerOutput

BOX_ATOL = 1e-3
"""Pixels two trackers' boxes may differ by (they are bitwise equal with NumPy's OpenBLAS;
another LAPACK may round the Kalman gain differently in the last bit)."""


@dataclass(frozen=True)
class TrackerStep:
    """One frame of one stream.

    Attributes:
        time_s: The frame's time (it may repeat or go backwards: a camera reconnect).
        detections: What the model found, or None on a frame it skipped (the tracker predicts).
        reset: Reset the tracker before this frame (a stream restarted).
    """

    time_s: float
    detections: Detections | None
    reset: bool = False


@dataclass
class _Walker:
    """One object on screen: where it starts, how it moves, when it is hidden or weak."""

    born_k: int
    dies_k: int
    xy: np.ndarray  # top-left corner at birth
    velocity: np.ndarray  # px per second
    turn_k: int  # frame where it turns back (crossing its own path); -1: never
    size: np.ndarray
    class_id: int
    hidden: tuple[int, int]  # frames [a, b) with no detection (an occlusion)
    weak: tuple[int, int]  # frames [a, b) detected with a low score (partly hidden)
    name: str

    def box(self, k: int, fps: float) -> np.ndarray:
        t = (k - self.born_k) / fps
        if self.turn_k >= 0 and k > self.turn_k:
            t_turn = (self.turn_k - self.born_k) / fps
            xy = self.xy + self.velocity * t_turn - self.velocity * (t - t_turn)
        else:
            xy = self.xy + self.velocity * t
        return np.concatenate([xy, xy + self.size])


def crowd(
    seed: int,
    *,
    frames: int = 300,
    fps: float = 30.0,
    on_screen: int = 20,
    classes: int = 2,
    interval: int = 1,
    glitches: bool = True,
    attributes: bool = False,
    width: int = 1920,
    height: int = 1080,
) -> list[TrackerStep]:
    """A crowd of about ``on_screen`` objects on one stream, reproducible from ``seed``.

    Objects are born and die throughout (each leaves a slot that a new one takes after a
    gap); half walk a shared corridor in both directions, so they cross and hide each other;
    some turn back, some are hidden for up to 1.2 s (longer than a tentative track lives,
    sometimes longer than ``lost_track_s``), some are detected weakly for a while; every
    detection is jittered and 8 % are missed; false boxes flash up. With ``interval`` > 1 the
    model sees every ``interval``-th frame only. With ``glitches`` the clock repeats or steps
    back on a few frames and the tracker is reset once.

    Args:
        seed: The random seed; the same seed gives the same sequence.
        frames: Number of frames.
        fps: Frame rate.
        on_screen: Objects on screen at a time (about).
        classes: Number of classes (objects and false boxes draw from them).
        interval: The model sees every ``interval``-th frame.
        glitches: Clock glitches and one reset.
        attributes: Give the detections an ``ATTRIBUTES`` column (secondary model output).
        width: Frame width in pixels.
        height: Frame height in pixels.
    """
    rng = np.random.default_rng(seed)
    corridor_y = height * 0.45

    def spawn(k: int, slot: int) -> _Walker:
        size = np.array([rng.uniform(30, 110), rng.uniform(70, 230)])
        in_corridor = slot % 2 == 0
        speed = rng.uniform(20, 160)
        if in_corridor:
            leftwards = rng.random() < 0.5
            x = rng.uniform(0.55, 0.95) * width if leftwards else rng.uniform(0.05, 0.45) * width
            xy = np.array([x, corridor_y + rng.uniform(-40, 40)])
            velocity = np.array([-speed if leftwards else speed, rng.uniform(-5, 5)])
        else:
            xy = rng.uniform([0, 0], [width - size[0], height - size[1]])
            angle = rng.uniform(0, 2 * np.pi)
            velocity = speed * np.array([np.cos(angle), np.sin(angle)])
        life = int(rng.integers(int(0.4 * fps), frames))
        hide_at = k + int(rng.integers(0, max(1, life)))
        weak_at = k + int(rng.integers(0, max(1, life)))
        return _Walker(
            born_k=k,
            dies_k=k + life,
            xy=xy,
            velocity=velocity,
            turn_k=k + int(rng.integers(1, life + 1)) if rng.random() < 0.2 else -1,
            size=size,
            class_id=int(rng.integers(classes)),
            hidden=(hide_at, hide_at + int(rng.integers(1, int(1.2 * fps) + 1)))
            if rng.random() < 0.4
            else (-1, -1),
            weak=(weak_at, weak_at + int(rng.integers(1, int(0.8 * fps) + 1)))
            if rng.random() < 0.3
            else (-1, -1),
            name=f"s{slot}k{k}",
        )

    slots: list[_Walker | None] = [spawn(0, j) for j in range(on_screen)]
    gaps = [0] * on_screen
    back_steps = (
        set(rng.choice(np.arange(20, frames), 3, replace=False).tolist()) if glitches else set()
    )
    reset_k = int(rng.integers(frames // 2, frames)) if glitches else -1
    steps: list[TrackerStep] = []
    last_t = 0.0
    for k in range(frames):
        for j, walker in enumerate(slots):
            if walker is not None and k >= walker.dies_k:
                slots[j], gaps[j] = None, int(rng.integers(0, int(fps)))
            if slots[j] is None:
                if gaps[j] <= 0:
                    slots[j] = spawn(k, j)
                gaps[j] -= 1
        t = k / fps
        if k in back_steps:  # the clock repeats a time or steps back
            t = last_t if rng.random() < 0.5 else last_t - 0.5 / fps
        last_t = t
        rows, scores, class_ids, names = [], [], [], []
        for walker in slots:
            if walker is None or walker.hidden[0] <= k < walker.hidden[1]:
                continue
            if rng.random() < 0.08:  # a missed detection
                continue
            box = walker.box(k, fps) + rng.normal(0, 1.5, 4)
            if box[2] < 0 or box[3] < 0 or box[0] > width or box[1] > height:
                continue  # walked off the frame
            weak = walker.weak[0] <= k < walker.weak[1]
            rows.append(box)
            scores.append(rng.uniform(0.12, 0.55) if weak else rng.uniform(0.5, 1.0))
            class_ids.append(walker.class_id)
            names.append(walker.name)
        for _ in range(rng.poisson(0.3)):  # false boxes
            size = rng.uniform([20, 40], [120, 240])
            xy = rng.uniform([0, 0], [width - size[0], height - size[1]])
            rows.append(np.concatenate([xy, xy + size]))
            scores.append(rng.uniform(0.1, 0.8))
            class_ids.append(int(rng.integers(classes)))
            names.append("false")
        order = rng.permutation(len(rows))  # a detector's row order says nothing
        n = len(rows)
        data = {}
        if attributes:
            column = np.empty(n, object)
            for row, i in enumerate(order):
                column[row] = {"name": names[i]}
            data[ATTRIBUTES] = column
        dets = Detections(
            np.array(rows, np.float32).reshape(n, 4)[order],
            np.array(scores, np.float32)[order],
            np.array(class_ids, np.int32)[order],
            None,
            data,
        )
        steps.append(TrackerStep(t, dets if k % interval == 0 else None, reset=k == reset_k))
    return steps


def assert_same_output(new: TrackerOutput, ref: TrackerOutput, where: str) -> None:
    """The same ids, classes, scores, data columns, predicted flags, motion states and changes;
    boxes equal to within :data:`BOX_ATOL` pixels."""
    a, b = new.detections, ref.detections
    assert a.tracker_id is not None
    assert b.tracker_id is not None
    assert a.tracker_id.tolist() == b.tracker_id.tolist(), f"{where}: ids"
    assert a.class_id.tolist() == b.class_id.tolist(), f"{where}: classes"
    assert a.confidence.dtype == b.confidence.dtype, where
    assert a.xyxy.dtype == b.xyxy.dtype, where
    np.testing.assert_array_equal(a.confidence, b.confidence, err_msg=f"{where}: scores")
    np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=0, atol=BOX_ATOL, err_msg=f"{where}: boxes")
    assert sorted(a.data) == sorted(b.data), f"{where}: data columns"
    assert a.data[PREDICTED].tolist() == b.data[PREDICTED].tolist(), f"{where}: predicted"
    if ATTRIBUTES in b.data:
        assert a.data[ATTRIBUTES].tolist() == b.data[ATTRIBUTES].tolist(), f"{where}: attributes"
    assert new.moving.tolist() == ref.moving.tolist(), f"{where}: moving"
    assert [(c.track_id, c.kind, c.class_id) for c in new.changes] == [
        (c.track_id, c.kind, c.class_id) for c in ref.changes
    ], f"{where}: changes"
    for c, d in zip(new.changes, ref.changes, strict=True):
        np.testing.assert_allclose(c.xyxy, d.xyxy, rtol=0, atol=BOX_ATOL, err_msg=where)


def step_tracker(tracker: Any, step: TrackerStep) -> TrackerOutput:
    """Feed ``step`` to a one-stream tracker (``ByteTracker`` or the reference): reset first
    when the step says so, then update, or predict on a frame the model skipped."""
    if step.reset:
        tracker.reset()
    if step.detections is None:
        return tracker.predict(step.time_s)
    return tracker.update(step.detections, step.time_s)
