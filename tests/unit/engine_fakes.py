"""A fake Triton client and the pieces around it, to drive the engine (``Pipeline``) without
a server: requests that take a little while (or fail once the fake server "dies"), a parser
that finds nothing, a sink that counts, and decoder-like threads that feed frames."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vigil.config import PipelineSettings
from vigil.detections import Detections
from vigil.events.builder import EventBuilder
from vigil.events.schema import Event, PlaceInfo
from vigil.frame import Frame
from vigil.infer.errors import InferError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import Slot
from vigil.infer.tensors import TensorSpec
from vigil.parsers.base import Parser
from vigil.pipeline.pipeline import Pipeline
from vigil.pipeline.stream_state import StreamStatus
from vigil.specs import StreamSpec
from vigil.triton.errors import TritonDiedError

MODEL = ModelInfo(
    name="fake",
    version="1",
    max_batch_size=4,
    inputs=[TensorSpec("image", np.dtype(np.uint8), (8, 8, 3))],
    outputs=[TensorSpec("scores", np.dtype(np.float32), (2,))],
)


class DyingClient:
    """A Triton client whose server dies after ``die_after`` requests.

    Requests in flight at the moment of death fail like gRPC calls on a reset connection;
    from then on the watchdog reports the server dead.
    """

    def __init__(self, die_after: int, rng: random.Random) -> None:
        self.die_after = die_after
        self.rng = rng
        self.requests = 0
        self.dead = False
        self.registered: set[str] = set()

    async def register_slot(self, slot: Slot) -> None:
        self.registered.add(slot.region.name)

    async def unregister_slot(self, slot: Slot, in_use_wait_s: float = 10.0) -> None:
        self.registered.discard(slot.region.name)

    async def infer(self, model: ModelInfo, slot: Slot, batch: int) -> None:
        self.requests += 1
        if self.requests > self.die_after:
            self.dead = True
        await asyncio.sleep(self.rng.choice((0, 0, 0.0005, 0.002)))
        if self.dead:
            raise InferError("UNAVAILABLE: Connection reset by peer")

    def check_alive(self) -> None:
        if self.dead:
            raise TritonDiedError("Triton exited with code -9")


class EmptyParser(Parser):
    name = "empty"

    def parse(
        self, outputs: Mapping[str, np.ndarray], sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        return [Detections.empty() for _ in sizes]


class CountingSink:
    def __init__(self) -> None:
        self.batches = 0

    async def emit(self, events: Sequence[Event]) -> None:
        self.batches += 1

    async def close(self) -> None:
        pass


def feed(
    pipeline: Pipeline, stream_id: str, stop: threading.Event, interval_s: float
) -> threading.Thread:
    """A decoder-like thread that puts a frame every ``interval_s`` until stopped (blocking
    when the queue is full), so the batcher is often waiting on a partial batch's deadline."""
    queue = pipeline.make_queue(live=False)
    pipeline.attach(
        StreamSpec(id=stream_id, url="test://pattern"), StreamStatus(stream_id, "fake://"), queue
    )
    image = np.zeros((8, 8, 3), np.uint8)

    def run() -> None:
        n = 0
        while not stop.is_set():
            if not queue.put(Frame(stream_id, n, None, time.time(), time.monotonic(), image)):
                return  # aborted by the engine
            n += 1
            time.sleep(interval_s)
        queue.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def fake_pipeline(client: DyingClient, settings: PipelineSettings, **options: Any) -> Pipeline:
    """A pipeline of MODEL over ``client``, finding nothing, counting what it emits."""
    return Pipeline(
        client=client,  # type: ignore[arg-type]
        model=MODEL,
        parser=EmptyParser(MODEL, 0.5),
        events=EventBuilder(MODEL, PlaceInfo(id="0"), "test"),
        sinks=[CountingSink()],
        settings=settings,
        **options,
    )
