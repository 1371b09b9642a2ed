import asyncio

import pytest

from tests.unit.test_queues import frame
from vigil.pipeline.batcher import Batcher
from vigil.pipeline.queues import DropPolicy, FrameQueue


async def collect(batcher: Batcher) -> list[list[tuple[str, int]]]:
    return [[(f.stream_id, f.frame_number) for f in b] async for b in batcher.batches()]


async def test_batcher_when_streams_are_full_makes_full_round_robin_batches():
    batcher = Batcher(max_batch_size=4, batch_timeout_ms=1000)
    for sid in ("a", "b"):
        q = FrameQueue(8, DropPolicy.BLOCK, batcher.notify)
        for i in range(4):
            q.put(frame(i, sid))
        q.close()
        batcher.add(sid, q)
    batcher.close()
    batches = await asyncio.wait_for(collect(batcher), 2)
    assert [len(b) for b in batches] == [4, 4]
    assert sorted(batches[0]) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)], "2 frames per stream"
    per_stream = [f for b in batches for f in b if f[0] == "b"]
    assert [n for _, n in per_stream] == [0, 1, 2, 3], "frame order within a stream is kept"


async def test_batcher_when_frames_trickle_sends_partial_batch_after_timeout():
    batcher = Batcher(max_batch_size=8, batch_timeout_ms=50)
    q = FrameQueue(8, DropPolicy.BLOCK, batcher.notify)
    batcher.add("a", q)
    q.put(frame(0, "a"))
    gen = batcher.batches()
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = await asyncio.wait_for(anext(gen), 2)
    waited = loop.time() - start
    assert [f.frame_number for f in first] == [0]
    assert 0.04 <= waited < 1.0
    q.close()
    batcher.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(gen), 2)


async def test_batcher_wakes_on_put_from_another_thread():
    batcher = Batcher(max_batch_size=1, batch_timeout_ms=0)
    q = FrameQueue(8, DropPolicy.BLOCK, batcher.notify)
    batcher.add("a", q)
    gen = batcher.batches()
    waiter = asyncio.ensure_future(anext(gen))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await asyncio.to_thread(q.put, frame(7, "a"))
    batch = await asyncio.wait_for(waiter, 2)
    assert batch[0].frame_number == 7
