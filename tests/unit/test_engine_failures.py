"""The engine's failure paths with a fake Triton client that dies (no real server).

Regression for a hang: on Python 3.11 ``asyncio.wait_for`` in the batcher could swallow the
TaskGroup's cancellation when a wake-up arrived at the same moment, so the producer outlived
the dead emitter and waited for a ring slot forever. These tests kill the fake server at many
points of a run, on an event loop that is made busy on purpose, and require the engine to stop
with the failure every time.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

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
from vigil.shm_segments import SHM_DIR
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


def _feed(
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


async def _busy_loop(rng: random.Random) -> None:
    """Keep the event loop busy with short blocking stretches, as a loaded machine does."""
    while True:
        time.sleep(rng.choice((0, 0.0005, 0.001)))  # noqa: ASYNC251 (blocking on purpose)
        await asyncio.sleep(0)


def _pipeline(client: DyingClient, settings: PipelineSettings, **options: Any) -> Pipeline:
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


async def _run_until_death(seed: int) -> tuple[DyingClient, BaseException | None]:
    rng = random.Random(seed)
    client = DyingClient(die_after=rng.randrange(0, 40), rng=rng)
    settings = PipelineSettings(
        max_batch_size=4, batch_timeout_ms=rng.choice((1.0, 5.0, 20.0)), inflight_requests=2
    )
    pipeline = _pipeline(client, settings, watchdog=client.check_alive)
    await pipeline.start()
    stop = threading.Event()
    interval_s = rng.choice((0, 0.0005, 0.002))
    feeders = [_feed(pipeline, f"s{i}", stop, interval_s) for i in range(3)]
    busy = asyncio.create_task(_busy_loop(rng))
    try:
        async with asyncio.timeout(10):
            failure = await pipeline.wait_stopped()
        async with asyncio.timeout(10):
            await pipeline.stop()
    finally:
        stop.set()
        busy.cancel()
        for thread in feeders:
            thread.join(timeout=5)
    return client, failure


@pytest.mark.parametrize("seed", range(120))
async def test_engine_when_triton_dies_at_any_point_stops_with_the_failure(seed: int) -> None:
    mine = f"vigil_{os.getpid()}_*"  # other processes (Triton servers of other tests) differ
    before = set(SHM_DIR.glob(mine))
    client, failure = await _run_until_death(seed)
    assert isinstance(failure, TritonDiedError | InferError), failure
    assert client.registered == set(), "ring regions still registered after stop()"
    assert set(SHM_DIR.glob(mine)) <= before, "shared-memory segments left behind"


async def _eight_frames_with_first_request(error: BaseException) -> StreamStatus:
    """Run 8 frames of one stream, the first request raising ``error``, then a warm-up
    (it needs a ring slot, so it hangs if the failed request kept its slot); returns the
    stream's status after a clean stop."""
    client = DyingClient(die_after=1_000_000, rng=random.Random(0))
    first = iter([True, False])

    async def infer(model: ModelInfo, slot: Slot, batch: int) -> None:
        if next(first, False):
            raise error

    client.infer = infer  # type: ignore[method-assign]
    pipeline = _pipeline(
        client, PipelineSettings(max_batch_size=4, batch_timeout_ms=0, inflight_requests=1)
    )
    await pipeline.start()
    queue = pipeline.make_queue(live=False)
    status = StreamStatus("s", "fake://s")
    pipeline.attach(StreamSpec(id="s", url="test://pattern"), status, queue)
    image = np.zeros((8, 8, 3), np.uint8)
    for n in range(8):
        await asyncio.to_thread(
            queue.put, Frame("s", n, None, time.time(), time.monotonic(), image)
        )
    queue.close()
    async with asyncio.timeout(10):
        await pipeline.drain()
    async with asyncio.timeout(10):
        await pipeline.warm_up(pipeline.route, rounds=1)
    await pipeline.stop()
    assert pipeline.failure is None
    return status


async def test_engine_when_a_request_fails_counts_the_frames_lost_per_stream() -> None:
    status = await _eight_frames_with_first_request(InferError("UNAVAILABLE: one failed"))
    lost = status.stats.dropped["infer_error"]
    assert lost >= 1
    assert status.stats.frames_processed + lost == 8


async def test_engine_when_a_request_is_cancelled_under_it_counts_the_frames_lost() -> None:
    """Regression for a recovery hang: closing a gRPC channel (recovery retargets the client
    at every attempt) cancels the calls in flight on it, and their tasks end *cancelled*
    (what grpc.aio raises is a bare ``CancelledError``). The emitter took that for its own
    cancellation and ended silently, keeping the ring slot; the recovery's warm-up then
    waited for a slot forever."""
    status = await _eight_frames_with_first_request(asyncio.CancelledError())
    lost = status.stats.dropped["infer_error"]
    assert lost >= 1
    assert status.stats.frames_processed + lost == 8
