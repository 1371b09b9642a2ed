"""Events to Kafka, never lost: an outbox in front of an idempotent producer.

The pipeline hands each frame's events to :class:`KafkaSink`, which serializes them (nvmsgconv
full or minimal schema, key = sensor id so a camera's events stay in order) and stores them in
the outbox — durable SQLite by default — before returning. A :class:`KafkaPublisher` task moves
records from the outbox to the broker and deletes them only once the broker has acknowledged
them (``acks=all``). While the broker is away, events accumulate within the outbox's disk
budget and are sent in order when it returns; after a crash, whatever was not acknowledged is
sent on the next start. Delivery is at-least-once: ``messageid`` lets consumers de-duplicate.

How the publisher keeps order and what counts as acknowledged: :mod:`vigil.events.kafka_publisher`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from vigil.config import KafkaSettings, Settings
from vigil.events.kafka_client import client_options
from vigil.events.kafka_publisher import KafkaPublisher, pack_records
from vigil.events.outbox import FullPolicy, Outbox
from vigil.events.record_buffer import MemoryBuffer, RecordBuffer
from vigil.events.schema import Event, to_json_line
from vigil.events.sinks import EventSink

log = logging.getLogger(__name__)


class KafkaSink(EventSink):
    """Stores each frame's events in the outbox and wakes the publisher.

    Args:
        settings: Kafka settings (topic, payload schema, outbox).
        buffer: Where records wait for the broker.
        publisher: Sends them.
    """

    def __init__(
        self, settings: KafkaSettings, buffer: RecordBuffer, publisher: KafkaPublisher
    ) -> None:
        self.settings = settings
        self.buffer = buffer
        self.publisher = publisher
        self.rejected: Counter[str] = Counter()

    def serialize(self, events: Sequence[Event]) -> list[tuple[str, bytes | None, bytes]]:
        """Kafka records for a batch's events (key = sensor id): one per event (full
        schema) or one per frame (minimal schema)."""
        topic = self.settings.topic
        if self.settings.payload_schema == "minimal":
            frames: dict[tuple[str, int], list[Event]] = {}
            for e in events:
                frames.setdefault((e.sensor.id, e.frame_id), []).append(e)
            return [
                (topic, sensor.encode(), to_json_line(Event.minimal_for_frame(group)).encode())
                for (sensor, _), group in frames.items()
            ]
        return [(topic, e.sensor.id.encode(), to_json_line(e).encode()) for e in events]

    async def emit(self, events: Sequence[Event]) -> None:
        """Store the batch's events durably, then return."""
        records = self.serialize(events)
        if not records:
            return
        # one stored row per batch: a few SQLite operations instead of one per event
        rows = [(self.settings.topic, None, pack_records([(k, v) for _, k, v in records]))]
        # One small SQLite transaction (WAL, no fsync with synchronous=normal) costs less
        # than a hop to a worker thread, so it runs right here.
        if self.buffer.append(rows):
            self.publisher.counters.stored += len(records)
        self.publisher.notify()

    def buffer_stats(self) -> tuple[int, int, dict[str, int]]:
        """``(depth, bytes, dropped by reason)`` of the buffer, for metrics."""
        if isinstance(self.buffer, Outbox):
            stats = self.buffer.stats
            dropped = {
                "outbox_full_oldest": stats.dropped_oldest,
                "outbox_full_new": stats.rejected_new,
            }
            return stats.depth, stats.bytes_used, dropped
        assert isinstance(self.buffer, MemoryBuffer)
        return self.buffer.depth(), self.buffer.bytes_used(), {"buffer_full": self.buffer.dropped}

    async def close(self) -> None:
        """Flush what the broker takes within a few seconds; the rest stays stored."""
        await self.publisher.close()
        await asyncio.to_thread(self.buffer.close)


def make_kafka_sink(settings: Settings) -> KafkaSink:
    """The Kafka sink with its buffer (durable outbox unless disabled) and publisher.

    Raises:
        KafkaConfigError: the TLS/SASL settings cannot work (checked before anything starts).
        SqliteFileError: the outbox file cannot be opened.
    """
    kafka = settings.kafka
    client_options(kafka)  # fail fast on missing certificate or password files
    box = kafka.outbox
    buffer: RecordBuffer
    if box.enabled:
        buffer = Outbox(
            box.path or settings.data_dir / "outbox.db",
            max_bytes=box.max_bytes,
            full_policy=FullPolicy(box.full_policy),
            warn_ratio=box.warn_ratio,
            synchronous=box.synchronous,
        )
        if buffer.depth():
            log.warning(
                "outbox %s holds %d events not yet acknowledged by Kafka; sending them first",
                buffer.path,
                buffer.depth(),
            )
    else:
        buffer = MemoryBuffer(box.max_bytes)
    return KafkaSink(kafka, buffer, KafkaPublisher(kafka, buffer))
