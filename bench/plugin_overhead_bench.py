"""Overhead of a plugin stage per frame: an empty ``FrameStage`` on the stage chain.

Target (issue: plugin API): ≤ 20 µs per frame. Each run sends the same 8-frame batches of
frames with 10 objects through two chains, interleaved: one with no plugin stage, one with
a plugin stage whose ``process_frame`` does nothing, loaded the way the service loads it
(``module:Class`` reference, Prometheus histograms on). The overhead is the difference per
frame: isolation (try/except, undo bookkeeping), timing and the histogram. Median of 5 runs
with the spread.

Usage: ``python bench/plugin_overhead_bench.py [--frames 20000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from vigil.detections import Detections
from vigil.ext import FrameResult, FrameStage
from vigil.frame import Frame
from vigil.plugins.stages import PluginMetrics, PluginStages
from vigil.specs import StageRef, StreamSpec
from vigil.stages.base import StageChain

TARGET_US = 20.0
BATCH = 8


class EmptyStage(FrameStage):
    """Does nothing: what is measured is the chain's cost of calling a plugin."""

    def process_frame(self, result: FrameResult) -> None:
        return None


def _batches(frames: int) -> list[list[FrameResult]]:
    rng = np.random.default_rng(0)
    image = np.zeros((8, 8, 3), np.uint8)
    xy = rng.uniform(0, 500, (10, 2)).astype(np.float32)
    dets = Detections(
        xyxy=np.hstack([xy, xy + 50]),
        confidence=np.full(10, 0.9, np.float32),
        class_id=np.zeros(10, np.int32),
        tracker_id=np.arange(10, dtype=np.int64),
    )
    results = [
        FrameResult(Frame("s", n, None, time.time(), time.monotonic(), image), dets)
        for n in range(frames)
    ]
    return [results[i : i + BATCH] for i in range(0, frames, BATCH)]


def _chain(with_plugin: bool) -> StageChain:
    refs = [StageRef(plugin=f"{__name__}:EmptyStage", budget_ms=1000)] if with_plugin else []
    stages = PluginStages(refs, PluginMetrics(CollectorRegistry()))
    chain = StageChain([stages])
    stages.start()
    chain.stream_added(StreamSpec(id="s", url="test://pattern"))
    return chain


def _time(chain: StageChain, batches: list[list[FrameResult]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        chain.process(batch)
    return time.perf_counter() - start


def one_run(frames: int) -> tuple[float, float]:
    """Seconds per frame without and with the empty plugin stage (interleaved halves)."""
    batches = _batches(frames)
    bare, plugged = _chain(False), _chain(True)
    half = len(batches) // 2
    without = _time(bare, batches[:half]) + _time(bare, batches[half:])
    with_ = _time(plugged, batches[:half]) + _time(plugged, batches[half:])
    return without / frames, with_ / frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.modules.setdefault(__name__, sys.modules["__main__"])
    one_run(2_000)  # warm-up: imports, histogram children, caches
    overheads = []
    print(f"plugin stage overhead, {args.frames} frames of 10 objects per run, batches of {BATCH}")
    print("| run | no plugin (µs/frame) | empty plugin (µs/frame) | overhead (µs/frame) |")
    print("| --- | --- | --- | --- |")
    for run in range(1, args.runs + 1):
        without, with_ = one_run(args.frames)
        overhead = (with_ - without) * 1e6
        overheads.append(overhead)
        print(f"| {run} | {without * 1e6:.2f} | {with_ * 1e6:.2f} | {overhead:.2f} |")
    median = statistics.median(overheads)
    verdict = "met" if median <= TARGET_US else "NOT met"
    print(
        f"median overhead {median:.2f} µs/frame (spread {min(overheads):.2f}–"
        f"{max(overheads):.2f}; target ≤ {TARGET_US:g}: {verdict})"
    )
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    return 0 if median <= TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
