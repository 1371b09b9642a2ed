"""Cost of the stage chain per frame: tracker + analytics with 50 objects and 10 rules.

Target (issue: tracking and analytics): ≤ 0.5 ms per frame on the 2-core CI machine. The
objects walk across the frame so lines are crossed, zones entered and left; the rules are 4
lines, 3 crowding zones, 2 dwell zones and 1 ROI filter. Median of 3 runs of 600 frames.

Usage: ``python bench/stage_cost_bench.py``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import measured_on
from vigil.analytics import AnalyticsConfig, StreamAnalytics
from vigil.detections import Detections
from vigil.track import ByteTracker, TrackChangeKind, TrackerSettings

W, H, OBJECTS, FRAMES = 1920, 1080, 50, 600


def rules() -> AnalyticsConfig:
    def square(x: float, y: float, s: float) -> list[list[float]]:
        return [[x, y], [x + s, y], [x + s, y + s], [x, y + s]]

    return AnalyticsConfig.model_validate(
        {
            "lines": [
                {"name": f"l{i}", "line": [[300 + 400 * i, 0], [300 + 400 * i, H]]}
                for i in range(4)
            ],
            "crowding": [
                {"name": f"c{i}", "polygon": square(100 + 600 * i, 200, 400), "threshold": 5}
                for i in range(3)
            ],
            "dwell": [
                {"name": f"d{i}", "polygon": square(300 + 800 * i, 600, 300), "threshold_s": 2}
                for i in range(2)
            ],
            "rois": [{"name": "all", "polygon": square(0, 0, 1080), "mode": "exclude"}],
        }
    )


def one_run(seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 0], [W - 60, H - 120], (OBJECTS, 2))
    speed = rng.uniform(-90, 90, (OBJECTS, 2))
    tracker = ByteTracker(TrackerSettings(enabled=True))
    analytics = StreamAnalytics(rules())
    track_s = analytics_s = 0.0
    for k in range(FRAMES):
        t = k / 30
        xy = (start + speed * t) % [W - 60, H - 120]
        dets = Detections(
            np.concatenate([xy, xy + np.array([60, 120])], axis=1).astype(np.float32),
            np.full(OBJECTS, 0.9, np.float32),
            np.zeros(OBJECTS, np.int32),
        )
        a = time.perf_counter()
        out = tracker.update(dets, t)
        b = time.perf_counter()
        exited = [c.track_id for c in out.changes if c.kind is TrackChangeKind.EXIT]
        analytics.update(out.detections, t, k, W, H, exited=exited)
        c = time.perf_counter()
        if k >= 30:  # after the tracks are confirmed
            track_s += b - a
            analytics_s += c - b
    n = FRAMES - 30
    return track_s / n * 1000, analytics_s / n * 1000


def main() -> None:
    runs = [one_run(seed) for seed in range(3)]
    total = sorted(t + a for t, a in runs)
    print(f"Stage cost — {measured_on()}; {OBJECTS} objects, 10 rules, {W}x{H}")
    for i, (t, a) in enumerate(runs):
        print(f"run {i}: tracker {t:.3f} ms + analytics {a:.3f} ms = {t + a:.3f} ms/frame")
    print(f"median {total[1]:.3f} ms/frame (spread {total[0]:.3f}–{total[2]:.3f}); target ≤ 0.5 ms")


if __name__ == "__main__":
    main()
