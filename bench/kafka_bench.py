"""Kafka benchmark: what does the durable outbox cost?

Measured in one run against one real broker (Tansu, started here): the same stream of
nvmsgconv full-schema events (frames of 5 objects from 4 sensors, emitted per inference batch
of 4 frames as the pipeline does) goes through
:class:`~vigil.events.kafka.KafkaSink`

1. with the durable SQLite outbox (the default), and
2. with the in-memory buffer (``kafka.outbox.enabled: false``),

and events/s is counted from the first emit to the last broker acknowledgement. Target:
outbox on / off ≥ 0.8.

Usage: ``python bench/kafka_bench.py [--events 20000]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import results_table
from tests.support.kafka import TansuBroker
from vigil.config import KafkaSettings, OutboxSettings
from vigil.events.kafka import KafkaSink
from vigil.events.kafka_publisher import KafkaPublisher
from vigil.events.object_schema import BBox, ObjectInfo
from vigil.events.outbox import Outbox
from vigil.events.record_buffer import MemoryBuffer
from vigil.events.schema import (
    AnalyticsModuleInfo,
    Event,
    EventInfo,
    EventType,
    PlaceInfo,
    SensorInfo,
)

OBJECTS_PER_FRAME, SENSORS, FRAMES_PER_BATCH = 5, 4, 4


def frames(count: int) -> list[list[Event]]:
    """``count`` events as frames of 5 objects, round-robin over 4 sensors."""
    module = AnalyticsModuleInfo(id="vigil-detector", description="ssd", version="1")
    place = PlaceInfo(id="0")
    out = []
    for n in range(count // OBJECTS_PER_FRAME):
        sensor = SensorInfo(id=f"cam-{n % SENSORS}")
        now = datetime.now(UTC)
        out.append(
            [
                Event(
                    timestamp=now,
                    sensor=sensor,
                    place=place,
                    analytics_module=module,
                    object=ObjectInfo(
                        id="-1",
                        class_name="person",
                        confidence=0.9,
                        bbox=BBox(
                            topleftx=10 * i, toplefty=20, bottomrightx=10 * i + 40, bottomrighty=120
                        ),
                    ),
                    event=EventInfo(type=EventType.DETECTION),
                    frame_id=n,
                )
                for i in range(OBJECTS_PER_FRAME)
            ]
        )
    return out


async def run(settings: KafkaSettings, buffer, batches: list[list[Event]]) -> float:
    """Events/s from the first emit to the last acknowledgement."""
    publisher = KafkaPublisher(settings, buffer)
    sink = KafkaSink(settings, buffer, publisher)
    publisher.start()
    total = sum(len(b) for b in batches)
    start = time.perf_counter()
    for i in range(0, len(batches), FRAMES_PER_BATCH):  # the pipeline emits per batch
        await sink.emit([e for frame in batches[i : i + FRAMES_PER_BATCH] for e in frame])
    while publisher.counters.acked < total:  # noqa: ASYNC110 - a benchmark poll
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    await sink.close()
    return total / elapsed


async def main(args: argparse.Namespace) -> None:
    batches = frames(args.events)
    with TansuBroker() as broker, tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        base = KafkaSettings(bootstrap_servers=broker.bootstrap, topic="bench", partitions=4)
        warm = base.model_copy(update={"topic": "warmup"})
        await run(warm, MemoryBuffer(1 << 30), batches[:200])
        path = Path(tmp) / "outbox.db"
        on = await run(
            base.model_copy(update={"outbox": OutboxSettings(path=path)}),
            Outbox(path, max_bytes=1 << 30),
            batches,
        )
        off = await run(
            base.model_copy(update={"topic": "bench-off"}), MemoryBuffer(1 << 30), batches
        )
    table = results_table("Kafka", f"{args.events} events, Tansu 0.6.0", "events/s")
    table.add_row("outbox on (SQLite WAL, synchronous=normal)", f"{on:,.0f}")
    table.add_row("outbox off (in-memory buffer)", f"{off:,.0f}")
    Console().print(table)
    Console().print(f"outbox on / off = [bold]{on / off:.2f}[/bold] (target ≥ 0.8)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    asyncio.run(main(parser.parse_args()))
