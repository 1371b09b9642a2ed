"""The live event feed's fan-out: bounded per-subscriber queues that drop the oldest, a cap
on subscribers, the stream filter, clean leaving, and the SSE messages."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.test_events_schema import _event
from vigil.api.routers.events import _messages
from vigil.events.live import LiveEvents, TooManySubscribersError, sse_message


def events(n: int, sensor: str = "cam-1"):
    return [_event(frame_id=i, sensor_id=sensor) for i in range(n)]


def dropped_total(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("vigil_live_events_dropped_total") or 0.0


async def test_without_subscribers_emit_does_nothing() -> None:
    hub = LiveEvents(4, 10)
    await hub.emit(events(3))
    assert hub.subscribers == 0


async def test_slow_subscriber_loses_the_oldest_and_the_drops_are_counted() -> None:
    registry = CollectorRegistry()
    hub = LiveEvents(4, 5, registry)
    slow, fast = hub.subscribe(), hub.subscribe()
    await hub.emit(events(3))
    assert [e.frame_id for e in await fast.next_batch(0.1)] == [0, 1, 2]
    await hub.emit(events(8)[3:])  # frames 3..7: the slow one holds 8 > 5
    assert [e.frame_id for e in await slow.next_batch(0.1)] == [3, 4, 5, 6, 7]
    assert slow.take_dropped() == 3
    assert slow.take_dropped() == 0
    assert [e.frame_id for e in await fast.next_batch(0.1)] == [3, 4, 5, 6, 7]
    assert fast.take_dropped() == 0
    assert dropped_total(registry) == 3
    assert registry.get_sample_value("vigil_live_event_subscribers") == 2


async def test_emit_never_waits_for_a_subscriber_that_never_reads() -> None:
    hub = LiveEvents(1, 100)
    stuck = hub.subscribe()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(200):
        await hub.emit(events(50))
    assert loop.time() - start < 2.0
    assert len(await stuck.next_batch(0)) == 100, "bounded: memory does not grow"


async def test_stream_filter() -> None:
    hub = LiveEvents(4, 10)
    one = hub.subscribe("cam-2")
    await hub.emit(events(2, "cam-1") + events(1, "cam-2"))
    assert [e.sensor.id for e in await one.next_batch(0.1)] == ["cam-2"]


async def test_subscriber_cap_and_leaving_frees_a_place() -> None:
    hub = LiveEvents(2, 10)
    first = hub.subscribe()
    hub.subscribe()
    with pytest.raises(TooManySubscribersError, match="live_max_subscribers"):
        hub.subscribe()
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # idempotent
    hub.subscribe()
    assert hub.subscribers == 2


async def test_waiting_subscriber_times_out_empty_and_close_wakes_it() -> None:
    hub = LiveEvents(2, 10)
    sub = hub.subscribe()
    assert await sub.next_batch(0.05) == []
    waiter = asyncio.create_task(sub.next_batch(30))
    await asyncio.sleep(0.01)
    await hub.close()
    assert await asyncio.wait_for(waiter, 1) == []
    assert sub.closed
    assert hub.subscribe().closed, "a feed opened after close ends at once"


async def test_sse_messages_carry_the_full_schema_and_leave_on_close() -> None:
    hub = LiveEvents(2, 3)
    sub = hub.subscribe()
    stream = _messages(hub, sub)
    assert (await anext(stream)).startswith("retry: ")
    await hub.emit(events(5))  # 2 dropped
    assert await anext(stream) == 'event: dropped\ndata: {"dropped": 2}\n\n'
    chunk = await anext(stream)
    messages = [m for m in chunk.split("\n\n") if m]
    assert [m.split("\n")[0] for m in messages] == ["id: 1", "id: 2", "id: 3"]
    first = json.loads(messages[0].split("\n")[1].removeprefix("data: "))
    assert first["sensor"]["id"] == "cam-1"
    assert first["mdsversion"] == "1.0"
    assert messages[0] + "\n\n" == sse_message(events(3)[2], 1)
    await stream.aclose()  # the client left
    assert hub.subscribers == 0
