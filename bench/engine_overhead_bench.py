"""How fast Vigil's engine hands batches through when the model is not the limit's cause.

The GPU bench found a host where 6 of 9 ring slots held requests Triton had already finished:
the engine, not the model, set the pace. This bench measures that ceiling on any machine, no
GPU and no Triton: a stand-in model serves one request at a time, each taking the time the
PeopleNet-class detector takes for a batch of 32 on an H100 (13.9 ms: 2,300 frames/s), and
the rest is Vigil's own — 16 streams fed by decoder-like threads, the cross-stream batcher,
the ring, the parser (``--boxes`` per frame), the tracker, analytics and event building, on the
real event loop and stage thread. ``model busy`` is the share of the wall time the stand-in
model was serving: 1.0 means the engine keeps it fed.

``--gil-threads N`` adds N threads that run Python in bursts (as decoder threads and other
services in the process do), which is what makes a host "busy". Median of ``--runs`` runs.

Usage: ``python bench/engine_overhead_bench.py [--gil-threads 4] [--runs 3]``; point
``PYTHONPATH`` at another checkout's ``service`` to time its engine with the same stand-ins.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1] / "service"))
sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench.gpu.meter (no vigil import)

from bench.gpu.meter import ring_occupancy
from vigil.config import PipelineSettings, TrackerSettings
from vigil.detections import Detections
from vigil.events.builder import EventBuilder
from vigil.events.schema import Event, PlaceInfo
from vigil.frame import Frame
from vigil.infer.model import ModelInfo
from vigil.infer.shm import Slot
from vigil.infer.tensors import TensorSpec
from vigil.parsers.base import Parser
from vigil.pipeline.pipeline import Pipeline
from vigil.pipeline.stream_state import StreamStatus
from vigil.specs import StreamSpec
from vigil.stages.analytics import AnalyticsStage
from vigil.stages.base import StageChain
from vigil.stages.tracking import TrackingStage

BATCH, STREAMS = 32, 16
MODEL = ModelInfo(
    name="standin",
    version="1",
    max_batch_size=BATCH,
    inputs=[TensorSpec("image", np.dtype(np.uint8), (8, 8, 3))],
    outputs=[TensorSpec("scores", np.dtype(np.float32), (2,))],
)


class StandInModel:
    """A Triton client whose one model instance serves one request at a time, taking
    ``request_s`` each (on no host CPU: it stands for the GPU)."""

    def __init__(self, request_s: float) -> None:
        self.request_s = request_s
        self.busy_s = 0.0
        self._instance = asyncio.Lock()

    async def register_slot(self, slot: Slot) -> None:
        pass

    async def unregister_slot(self, slot: Slot, in_use_wait_s: float = 10.0) -> None:
        pass

    async def infer(self, model: ModelInfo, slot: Slot, batch: int) -> None:
        async with self._instance:
            started = time.perf_counter()
            await asyncio.sleep(self.request_s)
            self.busy_s += time.perf_counter() - started


class MovingBoxes(Parser):
    """``boxes`` people per frame walking across 1080p, a little noise: work for the tracker
    (and one event per object per frame)."""

    name = "moving-boxes"

    def __init__(self, model: ModelInfo, boxes: int, streams: int = STREAMS) -> None:
        super().__init__(model, 0.5)
        self.streams = streams
        self.rng = np.random.default_rng(0)
        self.boxes = boxes
        self.start = self.rng.uniform(0, 1700, (boxes, 2)).astype(np.float32)
        self.step = self.rng.uniform(-4, 4, (boxes, 2)).astype(np.float32)
        self.calls = 0

    def parse(
        self, outputs: Mapping[str, np.ndarray], sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        found = []
        for _ in sizes:
            self.calls += 1
            corner = (self.start + self.step * (self.calls // self.streams)) % 1700
            noise = self.rng.normal(0, 1.5, (self.boxes, 2)).astype(np.float32)
            xyxy = np.concatenate([corner + noise, corner + noise + [60, 160]], axis=1)
            found.append(
                Detections(
                    xyxy=xyxy.astype(np.float32),
                    confidence=np.full(self.boxes, 0.8, np.float32),
                    class_id=np.zeros(self.boxes, np.int32),
                )
            )
        return found


class NullSink:
    """Takes the events and drops them (sinks are timed by their own benches)."""

    def __init__(self) -> None:
        self.events = 0

    async def emit(self, events: Sequence[Event]) -> None:
        self.events += len(events)

    async def close(self) -> None:
        pass


def _gil_burner(stop: threading.Event) -> None:
    """Python in 1 ms bursts with 1 ms sleeps between: half a core of GIL-holding work."""
    while not stop.is_set():
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass
        time.sleep(0.001)


async def one_run(
    request_s: float,
    seconds: float,
    gil_threads: int,
    boxes: int,
    streams: int = STREAMS,
    paced_fps: float = 0.0,
) -> dict[str, float]:
    """Frames/s and the stand-in model's busy share over ``seconds`` after a 1 s warm-up;
    with ``paced_fps``, each stream's frames come at that rate (as a camera's, or a file
    played as one: the decoder thread sleeps until each frame is due), and the slowest
    stream's rate and the ring's finished-but-not-emitted requests are reported too."""
    model = StandInModel(request_s)
    sink = NullSink()
    pipeline = Pipeline(
        client=model,  # type: ignore[arg-type]
        model=MODEL,
        parser=MovingBoxes(MODEL, boxes, streams),
        events=EventBuilder(MODEL, PlaceInfo(id="0"), "bench"),
        sinks=[sink],
        settings=PipelineSettings(
            max_batch_size=BATCH, batch_timeout_ms=20, inflight_requests=9, queue_size=32
        ),
        chain=StageChain([TrackingStage(TrackerSettings()), AnalyticsStage()]),
    )
    await pipeline.start()
    stop = threading.Event()
    threads = [threading.Thread(target=_gil_burner, args=(stop,)) for _ in range(gil_threads)]
    statuses = []
    image = np.zeros((1080, 1920, 3), np.uint8)[:8, :8]  # small pixels, 1080p metadata below
    period_s = 1.0 / paced_fps if paced_fps else 0.0
    for i in range(streams):
        sid = f"cam-{i}"
        queue = pipeline.make_queue(live=False)
        status = StreamStatus(sid, "bench://")
        pipeline.attach(StreamSpec(id=sid, url="test://pattern"), status, queue)
        statuses.append(status)

        def feed(sid: str = sid, queue: object = queue) -> None:
            n, due = 0, time.monotonic()
            while not stop.is_set():
                if period_s:  # the worker's pacing of a file played as a camera
                    now = time.monotonic()
                    if now < due and stop.wait(due - now):
                        return
                    due = max(due + period_s, time.monotonic() - period_s)
                frame = Frame(sid, n, n / 30, time.time(), time.monotonic(), image)
                if not queue.put(frame):  # type: ignore[attr-defined]
                    return
                n += 1

        threads.append(threading.Thread(target=feed, daemon=True))
    for thread in threads:
        thread.start()
    try:
        await asyncio.sleep(1.0)
        counts0 = [s.stats.frames_processed for s in statuses]
        busy0, t0 = model.busy_s, time.perf_counter()
        done: list[int] = []
        while time.perf_counter() - t0 < seconds:
            await asyncio.sleep(0.01)
            if (held := ring_occupancy(pipeline)) is not None:
                done.append(held[2])
        counts = [s.stats.frames_processed - c for s, c in zip(statuses, counts0, strict=True)]
        wall = time.perf_counter() - t0
        busy = (model.busy_s - busy0) / wall
    finally:
        stop.set()
        await pipeline.stop()
        for thread in threads:
            thread.join(timeout=5)
    return {
        "fps": sum(counts) / wall,
        "slowest_stream_fps": min(counts) / wall,
        "model_busy": busy,
        "requests_done": float(np.mean(done)) if done else 0.0,
        "events": float(sink.events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-fps", type=float, default=2300.0, help="stand-in model rate")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--gil-threads", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--overlap", action="store_true",
        help="Pipeline.overlap_stages: batches go to the stage thread before the previous one "
        "is delivered",
    )  # fmt: skip
    parser.add_argument(
        "--boxes", type=int, default=1,
        help="objects per frame (the GPU bench's street clip: ~0.3; a crowd: 20)",
    )  # fmt: skip
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument(
        "--paced-fps", type=float, default=0.0,
        help="each stream's frames at this rate (a camera), not as fast as they are taken",
    )  # fmt: skip
    args = parser.parse_args()
    request_s = BATCH / args.model_fps
    Pipeline.overlap_stages = args.overlap
    runs = [
        asyncio.run(
            one_run(
                request_s, args.seconds, args.gil_threads, args.boxes, args.streams, args.paced_fps
            )
        )
        for _ in range(args.runs)
    ]
    fps = [r["fps"] for r in runs]
    busy = [r["model_busy"] for r in runs]
    paced = f" paced at {args.paced_fps:g} fps" if args.paced_fps else ""
    slowest = [r["slowest_stream_fps"] for r in runs]
    done = [r["requests_done"] for r in runs]
    print(
        f"engine over a {args.model_fps:,.0f} frames/s stand-in model, {args.streams} streams"
        f"{paced}, "
        f"{args.boxes} objects per frame, tracker + analytics, {args.gil_threads} GIL-burning "
        f"threads, overlap {'on' if args.overlap else 'off'}: "
        f"{statistics.median(fps):,.0f} frames/s ({min(fps):,.0f}–{max(fps):,.0f}) = "
        f"{statistics.median(fps) / args.model_fps:.2f} of the model; model busy "
        f"{statistics.median(busy):.2f} ({min(busy):.2f}–{max(busy):.2f}); slowest stream "
        f"{statistics.median(slowest):.1f} fps; requests done and not emitted "
        f"{statistics.median(done):.2f}; engine: {sys.modules['vigil'].__file__}"
    )


if __name__ == "__main__":
    main()
