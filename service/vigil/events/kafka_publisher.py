"""The Kafka publisher: records from the outbox to the broker, in order, deleted once acked.

Acknowledged means acknowledged by a broker that still has the topic: after each window the
publisher checks that the topic exists before deleting anything, because a broker that
restarted empty may acknowledge writes to a topic it no longer has.

Ordering: records are grouped by partition, and each partition's records go out as explicit
batches, one at a time — a batch is appended whole or not at all, and the next batch of that
partition is not sent before the previous one is acknowledged. So a failure can cause a
re-send of a batch, never a reordering within a sensor.

Each stored row holds the records of one inference batch (:func:`pack_records`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner

from vigil.config import KafkaSettings
from vigil.events.kafka_client import (
    KafkaConfigError,
    client_options,
    describe_error,
    describe_options,
    ensure_topics,
    producer_options,
)
from vigil.events.record_buffer import RecordBuffer
from vigil.retry import FailureRun

log = logging.getLogger(__name__)

WINDOW_ROWS = 500  # stored rows (inference batches) per send window
WINDOW_BYTES = 8 << 20


@dataclass
class KafkaCounters:
    """What the publisher did (read by the metrics collector)."""

    stored: int = 0
    acked: int = 0
    send_failures: int = 0
    connected: bool = False
    last_error: str = ""


class KafkaPublisher:
    """Moves records from a buffer to Kafka, in order, deleting them once acknowledged.

    Args:
        settings: Kafka settings.
        buffer: The outbox (or a :class:`~vigil.events.record_buffer.MemoryBuffer`).
    """

    def __init__(self, settings: KafkaSettings, buffer: RecordBuffer) -> None:
        self.settings = settings
        self.buffer = buffer
        self.counters = KafkaCounters()
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._partitions: dict[str, list[int]] = {}
        self._partitioner = DefaultPartitioner()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._outage = FailureRun()
        self._idempotent = settings.enable_idempotence

    def notify(self) -> None:
        """New records are in the buffer."""
        self._wake.set()

    def start(self) -> None:
        """Start the background task (it connects, and reconnects, by itself)."""
        self._task = asyncio.create_task(self._run(), name="kafka-publisher")

    async def close(self, flush_timeout_s: float = 5.0) -> None:
        """Try to send what is buffered (bounded), then stop. Unsent records stay stored."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(flush_timeout_s):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await self._drop_producer()

    async def _run(self) -> None:
        while True:
            try:
                if self._producer is None:
                    await self._connect()
                records = await asyncio.to_thread(self.buffer.peek, WINDOW_ROWS, WINDOW_BYTES)
                if not records:
                    if self._closing:
                        return
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await self._wake.wait()
                    continue
                # aiokafka can wait forever on a broker that came back empty (metadata of a
                # lost topic, a node "not ready"); bound every window, then start over with a
                # fresh producer, which refreshes metadata and recreates lost topics.
                window_timeout_s = self.settings.request_timeout_ms / 1000 * 3
                try:
                    async with asyncio.timeout(window_timeout_s):
                        await self._send(records)
                except TimeoutError:
                    raise KafkaError(
                        f"no acknowledgement within {window_timeout_s:.0f} s"
                    ) from None
                if self._outage.count:
                    log.warning(
                        "Kafka at %s is back; sending resumed", self.settings.bootstrap_servers
                    )
                self._outage.succeeded()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, ssl.SSLError, KafkaConfigError) as e:
                if self._closing:
                    return
                await self._on_failure(e)
            except Exception as e:  # never let the publisher die: events would pile up unsent
                if self._closing:
                    return
                log.exception("unexpected error in the Kafka publisher")
                await self._on_failure(e)

    async def _on_failure(self, error: BaseException) -> None:
        self.counters.connected = False
        self.counters.last_error = describe_error(error)
        delay = self._outage.backoff_s(self.settings.retry_backoff_max_s)
        loud = self._outage.failed()
        log.log(
            logging.ERROR if loud else logging.DEBUG,
            "cannot deliver events to Kafka at %s: %s; %d events kept in the outbox, "
            "retrying in %.1f s (attempt %d)",
            self.settings.bootstrap_servers,
            self.counters.last_error,
            await asyncio.to_thread(self.buffer.depth),
            delay,
            self._outage.count,
        )
        await self._drop_producer()
        await asyncio.sleep(delay)

    async def _connect(self) -> None:
        options = producer_options(self.settings)
        options["enable_idempotence"] = self._idempotent
        log.log(
            logging.DEBUG if self._outage.count else logging.INFO,
            "connecting to Kafka: %s",
            describe_options(options),
        )
        producer = AIOKafkaProducer(**options)
        try:
            await producer.start()
        except (KafkaConnectionError, OSError, ssl.SSLError):
            await producer.stop()
            raise
        except KafkaError as e:
            await producer.stop()
            if not self._idempotent:
                raise
            # The broker refused InitProducerId: it has no idempotent producers (Tansu, old
            # brokers). Ordering does not depend on it here (one acknowledged batch at a time
            # per partition); only broker-side de-duplication of retries is lost.
            log.warning(
                "Kafka at %s does not support idempotent producers (%s); continuing without",
                self.settings.bootstrap_servers,
                e,
            )
            self._idempotent = False
            return await self._connect()
        self._producer = producer
        self._partitions.clear()
        if self.settings.create_topics:
            await ensure_topics(self.settings, [self.settings.topic])
        self.counters.connected = True

    async def _topics_exist(self, topics: set[str]) -> bool:
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(**client_options(self.settings))
            await self._admin.start()
        return topics <= set(await self._admin.list_topics())

    async def _drop_producer(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(KafkaError, OSError):
                await admin.close()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                async with asyncio.timeout(5):
                    await producer.stop()
            except (KafkaError, OSError, TimeoutError):
                log.debug("producer stop failed", exc_info=True)

    async def _partitions_of(self, topic: str) -> list[int]:
        assert self._producer is not None
        if topic not in self._partitions:
            parts = await self._producer.partitions_for(topic)
            if not parts:
                raise KafkaError(f"topic {topic!r} has no partitions")
            self._partitions[topic] = sorted(parts)
        return self._partitions[topic]

    async def _send(self, rows: Sequence[Any]) -> None:
        items = [
            _Item(row.seq, row.topic, key, value)
            for row in rows
            for key, value in unpack_records(row.value)
        ]
        per_row = Counter(item.seq for item in items)
        by_partition: dict[tuple[str, int], list[_Item]] = {}
        for item in items:
            parts = await self._partitions_of(item.topic)
            partition = self._partitioner(item.key, parts, parts)
            by_partition.setdefault((item.topic, partition), []).append(item)
        results = await asyncio.gather(
            *(self._send_partition(t, p, its) for (t, p), its in by_partition.items())
        )
        delivered = Counter(seq for seqs, _ in results for seq in seqs)
        # a stored row (one inference batch) goes only when all of its events went; a row
        # with a failed part is sent again whole (at-least-once, order kept per partition)
        done = [seq for seq, n in per_row.items() if delivered[seq] == n]
        if done and not await self._topics_exist({item.topic for item in items}):
            # A broker that restarted empty (Tansu keeps nothing) acknowledges writes to a
            # topic it no longer has and drops them. Keep the records, recreate, resend.
            raise KafkaError("the topic is gone (broker restarted empty?); recreating it")
        if done:
            await asyncio.to_thread(self.buffer.ack, done)
            self.counters.acked += sum(per_row[seq] for seq in done)
        errors = [error for _, error in results if error is not None]
        if errors:
            self.counters.send_failures += len(items) - sum(delivered.values())
            raise errors[0]

    async def _send_partition(
        self, topic: str, partition: int, items: list[_Item]
    ) -> tuple[list[int], BaseException | None]:
        """Send one partition's events as consecutive batches, each acknowledged before the
        next goes out. Returns the row seq of every acknowledged event, and the error that
        stopped it (its events and the later ones stay stored, in order)."""
        assert self._producer is not None
        acked: list[int] = []
        pending = deque(items)
        while pending:
            batch = self._producer.create_batch()
            seqs = []
            while pending:
                item = pending[0]
                meta = batch.append(
                    key=item.key, value=item.value, timestamp=None, headers=_HEADERS
                )
                if meta is None:
                    break
                seqs.append(item.seq)
                pending.popleft()
            if not seqs:
                size = len(pending[0].value)
                return acked, KafkaError(f"a {size}-byte record exceeds kafka.max_batch_bytes")
            batch.close()
            try:
                future = await self._producer.send_batch(batch, topic, partition=partition)
                await future
            except (KafkaError, OSError) as e:
                return acked, e
            acked.extend(seqs)
        return acked, None


@dataclass(frozen=True, slots=True)
class _Item:
    """One event of a stored row, on its way to Kafka."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes


def pack_records(records: Sequence[tuple[bytes | None, bytes]]) -> bytes:
    """Several Kafka records (key, value) as one stored blob: one outbox row per batch."""
    parts = []
    for key, value in records:
        parts.append(_HEAD.pack(-1 if key is None else len(key), len(value)))
        if key:
            parts.append(key)
        parts.append(value)
    return b"".join(parts)


def unpack_records(blob: bytes) -> list[tuple[bytes | None, bytes]]:
    """The (key, value) records of a blob made by :func:`pack_records`."""
    out: list[tuple[bytes | None, bytes]] = []
    view, pos = memoryview(blob), 0
    while pos < len(blob):
        key_len, value_len = _HEAD.unpack_from(blob, pos)
        pos += _HEAD.size
        key = None if key_len < 0 else bytes(view[pos : pos + key_len])
        pos += max(key_len, 0)
        out.append((key, bytes(view[pos : pos + value_len])))
        pos += value_len
    return out


_HEAD = struct.Struct(">iI")
_HEADERS = [("content-type", b"application/json")]
