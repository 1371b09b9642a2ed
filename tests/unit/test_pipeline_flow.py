"""The engine's hand-over from finished requests to the sinks, with a fake Triton client:
batches reach the sinks in request order, and a sink that stops taking events stops the
requests too (back-pressure), however fast the stage thread is."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Sequence

import pytest

from tests.unit.engine_fakes import DyingClient, fake_pipeline, feed
from vigil.config import PipelineSettings
from vigil.events.schema import Event
from vigil.pipeline.pipeline import Pipeline


class GatedSink:
    """Records the frame numbers of each batch it is given; blocks while the gate is shut."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.batches = 0

    async def emit(self, events: Sequence[Event]) -> None:
        await self.gate.wait()
        self.batches += 1

    async def close(self) -> None:
        pass


@pytest.fixture(params=[False, True], ids=["inline", "overlap"])
def overlap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways of handing batches to the stage thread (Pipeline.overlap_stages)."""
    monkeypatch.setattr(Pipeline, "overlap_stages", request.param)
    return request.param


async def test_a_stuck_sink_stops_the_requests_instead_of_piling_up_batches(overlap) -> None:
    client = DyingClient(die_after=1_000_000, rng=random.Random(1))
    settings = PipelineSettings(max_batch_size=4, batch_timeout_ms=1, inflight_requests=2)
    pipeline = fake_pipeline(client, settings)
    sink = GatedSink()
    pipeline.sinks = [sink]
    await pipeline.start()
    stop = threading.Event()
    feeders = [feed(pipeline, f"s{i}", stop, 0.0) for i in range(3)]
    try:
        while sink.batches < 5:  # noqa: ASYNC110 - counted by the engine
            await asyncio.sleep(0.01)
        sink.gate.clear()
        stuck_at = -1
        for _ in range(100):  # until the requests stop (the engine's queues fill first)
            if client.requests == stuck_at:
                break
            stuck_at = client.requests
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert client.requests == stuck_at, "requests went on while the sink took nothing"
        # ring slots (2), the batch being delivered, and with overlap the 3 handed to the
        # stage thread and the one submitted before the hand-over queue was found full
        assert stuck_at - sink.batches <= (2 + 1 + 3 + 1 if overlap else 2 + 1)
        sink.gate.set()
        while client.requests < stuck_at + 10:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await pipeline.stop()
        for thread in feeders:
            thread.join(timeout=5)


@pytest.mark.parametrize("seed", range(5))
async def test_the_stages_see_every_stream_s_frames_in_order(seed: int, overlap) -> None:
    client = DyingClient(die_after=1_000_000, rng=random.Random(seed))
    settings = PipelineSettings(max_batch_size=4, batch_timeout_ms=1, inflight_requests=3)
    pipeline = fake_pipeline(client, settings)
    seen: dict[str, list[int]] = {}

    def record(results: list) -> None:
        for result in results:
            seen.setdefault(result.frame.stream_id, []).append(result.frame.frame_number)

    pipeline.chain.process = record  # type: ignore[method-assign]
    await pipeline.start()
    stop = threading.Event()
    feeders = [feed(pipeline, f"s{i}", stop, 0.0005) for i in range(3)]
    try:
        while client.requests < 60:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        for thread in feeders:
            thread.join(timeout=5)
        await pipeline.drain()
        await pipeline.stop()
    assert set(seen) == {"s0", "s1", "s2"}
    for numbers in seen.values():
        assert numbers == list(range(len(numbers)))
