"""ByteTracker: ids that survive occlusions at any frame rate, never flicker into existence,
and never come back after they end."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vigil.detections import ATTRIBUTES, Detections
from vigil.track import PREDICTED, ByteTracker, TrackChangeKind, TrackerSettings

SETTINGS = TrackerSettings(enabled=True)

# An object: t -> box or None (not visible).
Path = Callable[[float], "list[float] | None"]


def walker(x0: float, y0: float, vx: float, vy: float = 0.0, hidden=(), size=(40, 80)) -> Path:
    def at(t: float) -> list[float] | None:
        if any(a <= t < b for a, b in hidden):
            return None
        x, y = x0 + vx * t, y0 + vy * t
        return [x, y, x + size[0], y + size[1]]

    return at


def detections(boxes: list[list[float]], score: float = 0.9, classes=None) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, score, np.float32),
        class_id=np.zeros(n, np.int32) if classes is None else np.array(classes, np.int32),
    )


def play(paths: list[Path], fps: float, seconds: float, interval: int = 1, tracker=None):
    """Feed the objects' boxes frame by frame; returns per frame {path index: track id}."""
    tracker = tracker or ByteTracker(SETTINGS)
    frames = []
    for k in range(round(seconds * fps)):
        t = k / fps
        shown = [(j, box) for j, p in enumerate(paths) if (box := p(t)) is not None]
        if k % interval == 0:
            out = tracker.update(detections([b for _, b in shown]), t)
        else:
            out = tracker.predict(t)
        ids = {}
        for row, tid in enumerate(out.detections.tracker_id):
            box = out.detections.xyxy[row]
            # attribute each output row to the nearest true object
            best = min(
                shown, key=lambda jb: abs(jb[1][0] - box[0]) + abs(jb[1][1] - box[1]), default=None
            )
            if best is not None:
                ids[best[0]] = int(tid)
        frames.append(ids)
    return frames


def ids_of(frames, j: int) -> set[int]:
    return {f[j] for f in frames if j in f}


@pytest.mark.parametrize("fps", [10, 30])
def test_tracker_when_object_is_hidden_one_second_keeps_its_id_at_any_fps(fps: float) -> None:
    frames = play([walker(20, 100, 60, hidden=[(2.0, 3.0)]), walker(600, 300, -50)], fps, 6)
    assert len(ids_of(frames, 0)) == 1
    assert len(ids_of(frames, 1)) == 1
    assert ids_of(frames, 0) != ids_of(frames, 1)


@pytest.mark.parametrize("fps", [10, 30])
def test_tracker_with_inference_interval_predicts_between_and_keeps_ids(fps: float) -> None:
    tracker = ByteTracker(SETTINGS)
    path = walker(20, 100, 60, hidden=[(2.0, 3.0)])
    frames = play([path], fps, 6, interval=3, tracker=tracker)
    assert ids_of(frames, 0) == {1}
    out = tracker.predict(6.0)
    assert out.detections.data[PREDICTED].all()
    expected = path(6.0)
    assert abs(float(out.detections.xyxy[0][0]) - expected[0]) < 8  # constant velocity


def test_tracker_when_a_false_positive_flashes_for_one_frame_never_reports_it() -> None:
    tracker = ByteTracker(SETTINGS)
    seen: set[int] = set()
    for k in range(20):
        boxes = [[100 + 5 * k, 100, 140 + 5 * k, 180]]
        if k == 7:
            boxes.append([500, 300, 540, 380])
        seen |= set(tracker.update(detections(boxes), k / 10).detections.tracker_id.tolist())
    assert seen == {1}


def test_tracker_reports_no_id_before_confirmation_time() -> None:
    tracker = ByteTracker(SETTINGS.model_copy(update={"confirm_s": 0.5}))
    first_seen = None
    for k in range(20):
        out = tracker.update(detections([[100 + 3 * k, 100, 140 + 3 * k, 180]]), k / 30)
        if len(out.detections) and first_seen is None:
            first_seen = k / 30
            assert [c.kind for c in out.changes] == [TrackChangeKind.ENTRY]
    assert first_seen == pytest.approx(0.5, abs=1 / 30)


def test_tracker_ids_are_never_reused_even_after_reset() -> None:
    tracker = ByteTracker(SETTINGS)
    seen = []
    for round_ in range(3):
        for k in range(10):
            out = tracker.update(detections([[10, 10, 50, 90]]), round_ * 100 + k / 10)
            seen += out.detections.tracker_id.tolist()
        tracker.reset()
    assert sorted(set(seen)) == [1, 2, 3]


@pytest.mark.parametrize("fps", [5, 60])
def test_tracker_ends_a_lost_track_after_lost_track_s_in_seconds(fps: float) -> None:
    tracker = ByteTracker(SETTINGS)
    k = 0
    for k in range(fps):  # one second visible
        tracker.update(detections([[10 + k, 10, 50 + k, 90]]), k / fps)
    gone = k / fps
    exit_at = None
    for j in range(1, 5 * fps):
        t = gone + j / fps
        out = tracker.update(Detections.empty(), t)
        if any(c.kind is TrackChangeKind.EXIT for c in out.changes):
            exit_at = t
            break
    assert exit_at is not None
    assert exit_at - gone == pytest.approx(SETTINGS.lost_track_s, abs=1 / fps + 1e-6)
    assert tracker.active_ids == set()


def test_tracker_motion_state_changes_with_hysteresis_and_no_flapping() -> None:
    tracker = ByteTracker(SETTINGS)
    rng = np.random.default_rng(1)
    x = 0.0
    kinds = []
    for k in range(150):  # 5 s at 30 fps: move 1.5 s, stand 2 s, move again
        t = k / 30
        if t < 1.5 or t >= 3.5:
            x += 3.0
        jitter = rng.uniform(-1, 1, 2)
        box = [100 + x + jitter[0], 100 + jitter[1], 140 + x + jitter[0], 180 + jitter[1]]
        kinds += [c.kind for c in tracker.update(detections([box]), t).changes]
    assert kinds == [TrackChangeKind.ENTRY, TrackChangeKind.STOPPED, TrackChangeKind.MOVING]


def test_tracker_rows_carry_their_detections_data_columns() -> None:
    tracker = ByteTracker(SETTINGS)
    for k in range(6):
        a, b = [10 + 5 * k, 10, 50 + 5 * k, 90], [300 - 5 * k, 10, 340 - 5 * k, 90]
        dets = detections([a, b])
        attrs = np.empty(2, object)
        attrs[0], attrs[1] = {"color": "red"}, {"color": "blue"}
        dets = Detections(dets.xyxy, dets.confidence, dets.class_id, None, {ATTRIBUTES: attrs})
        out = tracker.update(dets, k / 10)
    by_id = dict(
        zip(out.detections.tracker_id.tolist(), out.detections.data[ATTRIBUTES], strict=True)
    )
    xs = dict(zip(out.detections.tracker_id.tolist(), out.detections.xyxy[:, 0], strict=True))
    left = min(xs, key=xs.get)
    assert by_id[left] == {"color": "red"}
    assert not out.detections.data[PREDICTED].any()


def test_tracker_low_score_detection_keeps_a_track_alive() -> None:
    tracker = ByteTracker(SETTINGS)
    for k in range(30):
        score = 0.9 if k < 5 else 0.3  # partly hidden: low confidence
        out = tracker.update(detections([[10 + 2 * k, 10, 50 + 2 * k, 90]], score), k / 10)
    assert out.detections.tracker_id.tolist() == [1]


def test_tracker_per_class_never_swaps_classes() -> None:
    tracker = ByteTracker(SETTINGS)
    for k in range(10):
        out = tracker.update(
            detections([[10, 10, 50, 90], [12, 12, 52, 92]], classes=[0, 1]), k / 10
        )
    assert dict(
        zip(out.detections.class_id.tolist(), out.detections.tracker_id.tolist(), strict=True)
    ) in (
        {0: 1, 1: 2},
        {0: 2, 1: 1},
    )


def test_tracker_is_deterministic() -> None:
    paths = [
        walker(20, 100, 60, hidden=[(1.0, 1.5)]),
        walker(600, 120, -50),
        walker(300, 300, 10, 10),
    ]
    assert play(paths, 15, 4) == play(paths, 15, 4)


def test_tracker_when_time_goes_backwards_does_not_crash() -> None:
    tracker = ByteTracker(SETTINGS)
    for t in (0.0, 0.1, 0.2, 0.1, 0.1, 0.3, 0.4):
        out = tracker.update(detections([[10, 10, 50, 90]]), t)
    assert out.detections.tracker_id.tolist() == [1]
