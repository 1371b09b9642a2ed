"""Analytics cost per frame: 50 tracked objects against 10 rules (ROIs, lines, zones, directions).

Run: ``.venv/bin/python bench/analytics_bench.py``. Prints the median ms/frame over several runs.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from vigil.analytics import AnalyticsConfig, StreamAnalytics
from vigil.detections import Detections

WIDTH, HEIGHT = 1920, 1080
OBJECTS = 50
FRAMES = 600
RUNS = 5


def _config() -> AnalyticsConfig:
    """Ten rules: 2 ROIs, 3 lines, 2 crowding zones, 2 dwell zones, 1 direction."""
    box = [[100, 100], [1800, 100], [1800, 1000], [100, 1000]]
    half = [[0, 0], [960, 0], [960, 1080], [0, 1080]]
    return AnalyticsConfig.model_validate(
        {
            "rois": [
                {"name": "inner", "polygon": box, "mode": "include"},
                {"name": "left", "polygon": half, "mode": "exclude", "classes": [3]},
            ],
            "lines": [
                {"name": f"l{i}", "line": [[200 + 500 * i, 0], [200 + 500 * i, 1080]]}
                for i in range(3)
            ],
            "crowding": [
                {"name": "c0", "polygon": box, "threshold": 20, "min_duration_s": 1.0},
                {"name": "c1", "polygon": half, "threshold": 10, "min_duration_s": 1.0},
            ],
            "dwell": [
                {"name": "d0", "polygon": box, "threshold_s": 5.0},
                {"name": "d1", "polygon": half, "threshold_s": 5.0},
            ],
            "directions": [{"name": "east", "direction": [[0, 0], [1, 0]]}],
        }
    )


def run_once(rng: np.random.Generator) -> float:
    """Returns ms/frame for one pass of FRAMES frames."""
    engine = StreamAnalytics(_config())
    pos = rng.uniform([0, 0], [WIDTH, HEIGHT], size=(OBJECTS, 2)).astype(np.float32)
    vel = rng.normal(0, 8, size=(OBJECTS, 2)).astype(np.float32)
    ids = np.arange(OBJECTS, dtype=np.int64)
    classes = (ids % 4).astype(np.int32)
    conf = np.full(OBJECTS, 0.9, dtype=np.float32)
    # The anchor (bottom centre) is the object's position: a 40x60 box above it.
    top_left = np.array([20, 60], dtype=np.float32)
    bottom_right = np.array([20, 0], dtype=np.float32)
    frames = []
    for _ in range(FRAMES):
        pos = np.mod(pos + vel, [WIDTH, HEIGHT]).astype(np.float32)
        xyxy = np.concatenate([pos - top_left, pos + bottom_right], axis=1)
        frames.append(Detections(xyxy=xyxy, confidence=conf, class_id=classes, tracker_id=ids))
    start = time.perf_counter()
    for n, det in enumerate(frames):
        engine.update(det, n / 30.0, n, WIDTH, HEIGHT)
    return (time.perf_counter() - start) * 1000 / FRAMES


def main() -> None:
    """Prints the median of RUNS runs."""
    rng = np.random.default_rng(0)
    run_once(rng)  # warm-up
    runs = [run_once(rng) for _ in range(RUNS)]
    print(
        f"analytics: {OBJECTS} objects, 10 rules: median {statistics.median(runs):.3f} ms/frame "
        f"(runs: {', '.join(f'{r:.3f}' for r in runs)})"
    )


if __name__ == "__main__":
    main()
