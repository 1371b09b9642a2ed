"""Tracker cost per frame under a typical load: 16 streams, 10–30 detections per frame.

Each stream is a crowd from ``tests/support/track_sequences.py`` (about 25 objects on screen,
of which ~19 detected per frame: births, deaths, crossings, occlusions, weak and missed
detections, false boxes), 30 fps. The streams are stepped the way the tracking stage steps
them: one frame of every stream, then the next frame of every stream. Only the tracker calls
are timed, after the first second (tracks confirmed). Each run prints the mean ms per frame;
the summary is the median of the runs with their min–max.

``--reference`` also times the tracker this one replaced (the frozen copy the equivalence
tests use), interleaved run by run with the current one, and checks both gave the same ids.
The current tracker is timed twice: one ``ByteTracker`` per stream, and as the tracking stage
runs it (every stream a lane of one ``TrackerBank``, a round per frame of all streams).

Usage: ``python bench/tracker_cost_bench.py [--reference] [--runs 3] [--streams 16]``
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "service"), str(ROOT)]

from tests.support.track_sequences import TrackerStep, crowd  # noqa: E402
from vigil.track import ByteTracker, TrackerBank, TrackerSettings  # noqa: E402

FPS = 30.0
WARM_UP_FRAMES = 30


def one_run(
    make: Callable[[TrackerSettings], Any], streams: list[list[TrackerStep]]
) -> tuple[float, list[list[int]]]:
    """Mean ms per frame over every stream's frames after the warm-up, and the ids seen."""
    settings = TrackerSettings(enabled=True)
    trackers = [make(settings) for _ in streams]
    elapsed = 0.0
    timed = 0
    ids: list[list[int]] = []
    clock = time.perf_counter
    for k in range(len(streams[0])):
        for tracker, steps in zip(trackers, streams, strict=True):
            step = steps[k]
            if step.reset:
                tracker.reset()
            start = clock()
            if step.detections is None:
                out = tracker.predict(step.time_s)
            else:
                out = tracker.update(step.detections, step.time_s)
            if k >= WARM_UP_FRAMES:
                elapsed += clock() - start
                timed += 1
            ids.append(out.detections.tracker_id.tolist())
    return elapsed / timed * 1000, ids


def one_run_bank(
    settings_maker: Callable[[TrackerSettings], Any], streams: list[list[TrackerStep]]
) -> tuple[float, list[list[int]]]:
    """:func:`one_run` as the tracking stage runs it: every stream a lane of one bank, one
    round (a frame of every stream) per call."""
    bank = settings_maker(TrackerSettings(enabled=True))
    lanes = [bank.add_lane(itertools.count(1).__next__) for _ in streams]
    elapsed = 0.0
    timed = 0
    ids: list[list[int]] = []
    clock = time.perf_counter
    for k in range(len(streams[0])):
        frames = []
        for lane, steps in zip(lanes, streams, strict=True):
            if steps[k].reset:
                bank.reset_lane(lane)
            frames.append((lane, steps[k].detections, steps[k].time_s))
        start = clock()
        outputs = bank.step(frames)
        if k >= WARM_UP_FRAMES:
            elapsed += clock() - start
            timed += len(frames)
        ids += [out.detections.tracker_id.tolist() for out in outputs]
    return elapsed / timed * 1000, ids


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main(args: argparse.Namespace) -> None:
    streams = [
        crowd(
            seed,
            frames=args.frames,
            fps=FPS,
            on_screen=args.on_screen,
            interval=args.interval,
            glitches=False,
        )
        for seed in range(args.streams)
    ]
    counts = [len(s.detections) for steps in streams for s in steps if s.detections is not None]
    print(
        f"Tracker cost — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; {args.streams} streams × "
        f"{args.frames} frames at {FPS:.0f} fps, inference interval {args.interval}, "
        f"detections per inferred frame {statistics.mean(counts):.1f} "
        f"({min(counts)}–{max(counts)})"
    )
    implementations: dict[str, Callable[[TrackerSettings], Any]] = {
        "current": ByteTracker,
        "bank (the stage's)": TrackerBank,
    }
    if args.reference:
        from tests.support.tracker_reference import ReferenceTracker

        implementations["reference (1a1230a)"] = ReferenceTracker
    results: dict[str, list[float]] = {name: [] for name in implementations}
    for run in range(args.runs):
        seen = {}
        for name, make in implementations.items():
            ms, seen[name] = (one_run_bank if make is TrackerBank else one_run)(make, streams)
            results[name].append(ms)
            print(f"run {run}: {name:<20} {ms:.4f} ms/frame")
        if len(seen) > 1 and len({str(v) for v in seen.values()}) != 1:
            raise SystemExit(f"run {run}: the implementations gave different track ids")
    for name, values in results.items():
        print(f"{name:<20} median (min–max) of {args.runs} runs: {spread(values)} ms/frame")
    if args.reference:
        current, reference = results["current"], results["reference (1a1230a)"]
        ratios = [r / c for r, c in zip(reference, current, strict=True)]
        print(f"reference / current, run by run: {spread(ratios)}; same ids in every run")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", action="store_true", help="also time the old tracker")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--on-screen", type=int, default=25)
    parser.add_argument("--interval", type=int, default=1)
    main(parser.parse_args())
