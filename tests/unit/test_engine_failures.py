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

import numpy as np
import pytest

from tests.unit.engine_fakes import DyingClient, fake_pipeline, feed
from vigil.config import PipelineSettings
from vigil.frame import Frame
from vigil.infer.errors import InferError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import Slot
from vigil.pipeline.stream_state import StreamStatus
from vigil.shm_segments import SHM_DIR
from vigil.specs import StreamSpec
from vigil.triton.errors import TritonDiedError


async def _busy_loop(rng: random.Random) -> None:
    """Keep the event loop busy with short blocking stretches, as a loaded machine does."""
    while True:
        time.sleep(rng.choice((0, 0.0005, 0.001)))  # noqa: ASYNC251 (blocking on purpose)
        await asyncio.sleep(0)


async def _run_until_death(seed: int) -> tuple[DyingClient, BaseException | None]:
    rng = random.Random(seed)
    client = DyingClient(die_after=rng.randrange(0, 40), rng=rng)
    settings = PipelineSettings(
        max_batch_size=4, batch_timeout_ms=rng.choice((1.0, 5.0, 20.0)), inflight_requests=2
    )
    pipeline = fake_pipeline(client, settings, watchdog=client.check_alive)
    await pipeline.start()
    stop = threading.Event()
    interval_s = rng.choice((0, 0.0005, 0.002))
    feeders = [feed(pipeline, f"s{i}", stop, interval_s) for i in range(3)]
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
    pipeline = fake_pipeline(
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
