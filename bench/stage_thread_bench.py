"""What one frame costs the stage thread on the GPU path: the work between Triton's outputs
and the sinks, on one thread, no GPU and no Triton needed.

The GPU bench found the stage thread setting the pace on a host with a slower CPU (0.33 ms a
frame there, 0.21 ms on the H100 hosts). This bench times that thread's work per batch as the
engine runs it (``finish_batch``): the DetectNet_v2 parse of a PeopleNet-shaped batch (32
frames of 16 streams, coverage ``3 × 34 × 60``), the tracker, analytics and event building.
``--objects`` people walk in each stream (the GPU bench's clip gives ~0.3 a frame; a busy
street 10 or more). Median of ``--runs`` runs of ``--batches`` batches, in µs per frame.

Usage: ``python bench/stage_thread_bench.py [--objects 1]``; point ``PYTHONPATH`` at another
checkout's ``service`` to time its code with the same input.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1] / "service"))

from vigil.config import TrackerSettings
from vigil.events.builder import EventBuilder
from vigil.events.schema import PlaceInfo
from vigil.frame import Frame
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import TensorSpec
from vigil.parsers import make_parser
from vigil.specs import StreamSpec
from vigil.stages.analytics import AnalyticsStage
from vigil.stages.base import FrameResult, StageChain
from vigil.stages.tracking import TrackingStage

BATCH, STREAMS, CLASSES, GRID_H, GRID_W, STRIDE, NORM = 32, 16, 3, 34, 60, 16, 35.0
PEOPLENET = ModelInfo(
    name="peoplenet",
    version="1",
    max_batch_size=BATCH,
    inputs=[TensorSpec("input_1", np.dtype(np.float32), (3, 544, 960))],
    outputs=[
        TensorSpec("output_cov/Sigmoid", np.dtype(np.float32), (CLASSES, GRID_H, GRID_W)),
        TensorSpec("output_bbox/BiasAdd", np.dtype(np.float32), (4 * CLASSES, GRID_H, GRID_W)),
    ],
    labels=["person", "bag", "face"],
    parameters={"vigil.parser": "detectnet_v2"},
)


def grids(objects: int, frame: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One frame's outputs: ``objects`` people (45 × 120 input pixels) walking right, each
    covering 2 × 2 cells, over low background coverage."""
    cov = rng.uniform(0, 0.2, (CLASSES, GRID_H, GRID_W)).astype(np.float32)
    bbox = rng.uniform(0.5, 2.0, (4 * CLASSES, GRID_H, GRID_W)).astype(np.float32)
    for k in range(objects):
        x0 = (40 + 70 * k + 3 * frame) % 900
        y0 = 20 + (97 * k) % 400
        x1, y1 = x0 + 45, y0 + 120
        gx, gy = int((x0 + x1) / 2 // STRIDE), int((y0 + y1) / 2 // STRIDE)
        for cy in (gy, gy + 1):
            for cx in (gx, gx + 1):
                centre_x, centre_y = cx * STRIDE + 0.5, cy * STRIDE + 0.5
                cov[0, cy, cx] = 0.9
                bbox[0:4, cy, cx] = [centre_x - x0, centre_y - y0, x1 - centre_x, y1 - centre_y]
                bbox[0:4, cy, cx] /= NORM
    return cov, bbox


def one_run(objects: int, batches: int, streams: int = STREAMS) -> float:
    """µs per frame of parse → stages → events over ``batches`` batches whose frames come
    from ``streams`` streams in turn (16: two frames of each per batch, as the GPU bench's
    (c); 66: 32 streams' one frame each, as its real-time checks)."""
    rng = np.random.default_rng(0)
    parser = make_parser(PEOPLENET, 0.5)
    chain = StageChain([TrackingStage(TrackerSettings()), AnalyticsStage()])
    for i in range(streams):
        chain.stream_added(StreamSpec(id=f"cam-{i}", url="test://pattern"))
    events = EventBuilder(PEOPLENET, PlaceInfo(id="0"), "bench")
    image = np.zeros((1080, 1920, 3), np.uint8)  # one 1080p picture, shared by every frame
    inputs = []
    for b in range(batches):  # made first: only Vigil's work is timed
        taken = [b * BATCH + i for i in range(BATCH)]  # the k-th frame of all, in turn
        number = [k // streams for k in taken]
        outputs = [grids(objects, n, rng) for n in number]
        frames = [
            Frame(f"cam-{k % streams}", n, n / 30, 1.7e9 + n / 30, 0.0, image)
            for k, n in zip(taken, number, strict=True)
        ]
        cov = np.stack([c for c, _ in outputs])
        bbox = np.stack([b for _, b in outputs])
        inputs.append((frames, {"output_cov/Sigmoid": cov, "output_bbox/BiasAdd": bbox}))
    produced = 0
    started = time.perf_counter()
    for frames, outputs in inputs:
        found = parser.parse(outputs, [(f.width, f.height) for f in frames])
        results = [
            FrameResult(f, d, inferred=True, model=PEOPLENET)
            for f, d in zip(frames, found, strict=True)
        ]
        chain.process(results)
        produced += sum(len(events.build_result(r)) for r in results)
    elapsed = time.perf_counter() - started
    assert produced > 0 or objects == 0, "no events: the input gives the tracker nothing"
    return elapsed / (batches * BATCH) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1, help="people per stream")
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--streams", type=int, default=STREAMS, help="streams taken in turn")
    args = parser.parse_args()
    runs = [one_run(args.objects, args.batches, args.streams) for _ in range(args.runs)]
    print(
        f"stage thread per frame, PeopleNet-shaped batch of {BATCH} ({args.streams} streams), "
        f"{args.objects} people per stream, parse + tracker + analytics + events: "
        f"{statistics.median(runs):.0f} µs ({min(runs):.0f}–{max(runs):.0f}), median of "
        f"{args.runs}; code: {sys.modules['vigil'].__file__}"
    )


if __name__ == "__main__":
    main()
