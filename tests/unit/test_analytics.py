"""StreamAnalytics: exact line counts with hysteresis, crowding, dwell, ROI, direction."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from vigil.analytics import AnalyticsConfig, StreamAnalytics
from vigil.detections import Detections

W, H = 640, 360


def objects(*rows: tuple[int, float, float, int]) -> Detections:
    """Rows of (track id, anchor x, anchor y, class): 40×80 boxes whose bottom centre is
    the anchor."""
    n = len(rows)
    xyxy = np.array([[x - 20, y - 80, x + 20, y] for _, x, y, _ in rows], np.float32).reshape(n, 4)
    return Detections(
        xyxy=xyxy,
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.array([c for *_, c in rows], np.int32),
        tracker_id=np.array([t for t, *_ in rows], np.int64),
    )


def untracked(dets: Detections) -> Detections:
    return Detections(dets.xyxy, dets.confidence, dets.class_id)


LINE = {"name": "door", "line": [[320, 0], [320, 360]], "direction": [[0, 200], [640, 200]]}


def run(config: dict, frames, fps: float = 10.0):
    engine = StreamAnalytics(AnalyticsConfig.model_validate(config))
    results = [
        engine.update(dets, k / fps, k, W, H, exited=exited)
        for k, (dets, exited) in enumerate(frames)
    ]
    return engine, results


def test_line_counts_each_crossing_once_per_direction_and_class() -> None:
    frames = []
    for k in range(40):  # track 1 (class 0) goes right, track 2 (class 1) goes left
        frames.append((objects((1, 100 + 12 * k, 200, 0), (2, 560 - 12 * k, 300, 1)), ()))
    engine, results = run({"lines": [LINE]}, frames)
    counts = engine.counts().lines["door"]
    assert counts == {"in": {"0": 1}, "out": {"1": 1}}
    crossings = [e for r in results for e in r.events if e.kind == "line_crossed"]
    assert [(e.track_id, e.direction) for e in crossings] == [(1, "in"), (2, "out")] or [
        (e.track_id, e.direction) for e in crossings
    ] == [(2, "out"), (1, "in")]


def test_line_when_object_flickers_on_the_line_counts_nothing() -> None:
    frames = [(objects((1, 320 + (2 if k % 2 else -2), 200, 0)), ()) for k in range(20)]
    engine, _ = run({"lines": [LINE]}, [(objects((1, 250, 200, 0)), ()), *frames])
    assert engine.counts().lines["door"] == {"in": {}, "out": {}}


def test_line_ignores_untracked_rows() -> None:
    frames = [(untracked(objects((1, 100 + 12 * k, 200, 0))), ()) for k in range(40)]
    engine, _ = run({"lines": [LINE]}, frames)
    assert engine.counts().lines["door"] == {"in": {}, "out": {}}


def test_line_does_not_count_passing_beyond_the_segment_end() -> None:
    short = {**LINE, "line": [[320, 0], [320, 100]]}
    frames = [(objects((1, 100 + 12 * k, 300, 0)), ()) for k in range(40)]
    engine, _ = run({"lines": [short]}, frames)
    assert engine.counts().lines["door"] == {"in": {}, "out": {}}
    engine, _ = run({"lines": [{**short, "extended": True}]}, frames)
    assert engine.counts().lines["door"]["in"] == {"0": 1}


def test_crowding_raised_and_cleared_after_min_duration() -> None:
    zone = {"name": "queue", "polygon": [[0, 0], [300, 0], [300, 360], [0, 360]],
            "threshold": 3, "min_duration_s": 1.0}  # fmt: skip
    frames = []
    for k in range(60):  # 3 objects inside during frames 10..39 (10 fps)
        inside = 3 if 10 <= k < 40 else 1
        rows = [(i + 1, 50 + 40 * i, 200, 0) for i in range(inside)]
        frames.append((objects(*rows), ()))
    engine, results = run({"crowding": [zone]}, frames)
    events = [(k, e.kind) for k, r in enumerate(results) for e in r.events]
    assert events == [(20, "crowding_raised"), (50, "crowding_cleared")]
    assert engine.counts().crowding["queue"] == {"count": 1, "raised": 0, "episodes": 1}


@pytest.mark.parametrize("fps", [10, 30])
def test_dwell_time_is_within_one_frame_interval(fps: float) -> None:
    zone = {"name": "till", "polygon": [[0, 0], [300, 0], [300, 360], [0, 360]], "threshold_s": 2.0}
    frames = []
    for k in range(int(6 * fps)):
        t = k / fps
        x = 500 if t < 1.0 else 150  # enters at t = 1.0
        frames.append((objects((7, x, 200, 0)), ()))
    engine, results = run({"dwell": [zone]}, frames, fps)
    exceeded = [(k / fps, e) for k, r in enumerate(results) for e in r.events]
    assert len(exceeded) == 1
    t, event = exceeded[0]
    assert event.kind == "dwell_exceeded"
    assert t == pytest.approx(3.0, abs=1 / fps + 1e-9)
    last = results[-1].objects[0].dwell_s["till"]
    assert last == pytest.approx(6.0 - 1 / fps - 1.0, abs=1 / fps + 1e-9)
    assert engine.counts().dwell["till"] == {"inside": 1, "exceeded": 1}


def test_roi_include_and_exclude_per_class() -> None:
    left = [[0, 0], [320, 0], [320, 360], [0, 360]]
    config = {"rois": [{"name": "left", "polygon": left, "classes": [0]}]}
    dets = objects((1, 100, 200, 0), (2, 500, 200, 0), (3, 500, 200, 1))
    _, (result,) = run(config, [(dets, ())])
    assert result.keep.tolist() == [True, False, True]  # class 1 is not filtered
    assert result.objects[0].rois == ("left",)
    config = {"rois": [{"name": "left", "polygon": left, "mode": "exclude"}]}
    _, (result,) = run(config, [(dets, ())])
    assert result.keep.tolist() == [False, True, True]


def test_normalized_and_reference_size_coordinates_give_the_same_result() -> None:
    frames = [(objects((1, 100 + 12 * k, 200, 0)), ()) for k in range(40)]
    pixels, _ = run({"lines": [LINE]}, frames)
    half = {"name": "door", "line": [[0.5, 0], [0.5, 1]], "direction": [[0, 0.5], [1, 0.5]]}
    normalized, _ = run({"coordinates": "normalized", "lines": [half]}, frames)
    big = {"name": "door", "line": [[640, 0], [640, 720]], "direction": [[0, 400], [1280, 400]]}
    scaled, _ = run({"reference_size": [1280, 720], "lines": [big]}, frames)
    assert pixels.counts() == normalized.counts() == scaled.counts()
    assert pixels.counts().lines["door"]["in"] == {"0": 1}


def test_direction_names_the_motion_of_a_track() -> None:
    config = {"directions": [{"name": "east", "direction": [[0, 0], [10, 0]]},
                             {"name": "west", "direction": [[10, 0], [0, 0]]}]}  # fmt: skip
    frames = [
        (objects((1, 100 + 10 * k, 200, 0), (2, 500 - 10 * k, 300, 0)), ()) for k in range(20)
    ]
    _, results = run(config, frames)
    assert results[-1].objects[0].direction == "east"
    assert results[-1].objects[1].direction == "west"


def test_reconfigure_keeps_counts_of_kept_names_and_reset_clears() -> None:
    frames = [(objects((1, 100 + 12 * k, 200, 0)), ()) for k in range(40)]
    engine, _ = run({"lines": [LINE]}, frames)
    engine.reconfigure(AnalyticsConfig.model_validate({"lines": [LINE, {**LINE, "name": "b"}]}))
    assert engine.counts().lines["door"]["in"] == {"0": 1}
    assert engine.counts().lines["b"] == {"in": {}, "out": {}}
    engine.reconfigure(engine.config, reset_counts=True)
    assert engine.counts().lines["door"] == {"in": {}, "out": {}}


def test_track_state_is_freed_when_the_track_exits() -> None:
    engine = StreamAnalytics(AnalyticsConfig.model_validate({"lines": [LINE]}))
    for k in range(10):
        engine.update(objects((k + 1, 100, 200, 0)), k / 10, k, W, H)
    assert engine.tracked == 10
    engine.update(Detections.empty(), 1.0, 10, W, H, exited=list(range(1, 11)))
    assert engine.tracked == 0


SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"rois": [{"name": "a", "polygon": [[0, 0], [1, 1]]}]}, "polygon"),
        (
            {"rois": [{"name": "a", "polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}]},
            "self-intersecting",
        ),
        (
            {
                "coordinates": "normalized",
                "rois": [{"name": "a", "polygon": [[0, 0], [2, 0], [0, 1]]}],
            },
            "outside",
        ),
        ({"rois": [{"name": "a", "polygon": [[-5, 0], [10, 0], [0, 10]]}]}, "outside"),
        ({"lines": [{"name": "a", "line": [[5, 5], [5, 5]]}]}, "zero length"),
        (
            {
                "lines": [
                    {"name": "a", "line": [[0, 0], [0, 9]]},
                    {"name": "a", "line": [[1, 0], [1, 9]]},
                ]
            },
            "duplicate",
        ),
        ({"crowding": [{"name": "a", "polygon": SQUARE, "threshold": 0}]}, "threshold"),
        ({"dwell": [{"name": "a b", "polygon": SQUARE, "threshold_s": 1}]}, "name"),
        ({"rois": [{"name": "a", "polygon": SQUARE, "colour": "red"}]}, "colour"),
        (
            {
                "reference_size": [100, 100],
                "rois": [{"name": "a", "polygon": [[0, 0], [200, 0], [0, 5]]}],
            },
            "reference size",
        ),
    ],
)
def test_invalid_config_is_refused_naming_the_field(config: dict, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        AnalyticsConfig.model_validate(config)
    assert field in str(error.value)


def test_nan_coordinates_are_refused() -> None:
    with pytest.raises(ValidationError, match="finite"):
        AnalyticsConfig.model_validate(
            {"rois": [{"name": "a", "polygon": [[float("nan"), 0], [1, 0], [0, 1]]}]}
        )


def test_check_frame_refuses_pixels_outside_the_real_frame() -> None:
    config = AnalyticsConfig.model_validate({"lines": [{"name": "a", "line": [[0, 0], [900, 10]]}]})
    with pytest.raises(ValueError, match="outside the 640x360 frame"):
        config.check_frame(W, H)
