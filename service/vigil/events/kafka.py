"""Events to Kafka, never lost: an outbox in front of an idempotent producer.

The pipeline hands each frame's events to :class:`KafkaSink`, which serializes them (nvmsgconv
full or minimal schema, key = sensor id so a camera's events stay in order) and stores them in
the outbox — durable SQLite by default — before returning. A :class:`KafkaPublisher` task moves
records from the outbox to the broker and deletes them only once the broker has acknowledged
them (``acks=all``). While the broker is away, events accumulate within the outbox's disk
budget and are sent in order when it returns; after a crash, whatever was not acknowledged is
sent on the next start. Delivery is at-least-once: ``messageid`` lets consumers de-duplicate.

Acknowledged means acknowledged by a broker that still has the topic: after each window the
publisher checks that the topic exists before deleting anything, because a broker that
restarted empty may acknowledge writes to a topic it no longer has.

Ordering: records are grouped by partition, and each partition's records go out as explicit
batches, one at a time — a batch is appended whole or not at all, and the next batch of that
partition is not sent before the previous one is acknowledged. So a failure can cause a
re-send of a batch, never a reordering within a sensor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import threading
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner

from vigil.config import KafkaSecuritySettings, KafkaSettings, Settings
from vigil.events.outbox import FullPolicy, Outbox
from vigil.events.schema import Event, to_json_line
from vigil.events.sinks import EventSink
from vigil.retry import FailureRun

log = logging.getLogger(__name__)

WINDOW_ROWS = 500  # stored rows (inference batches) per send window
WINDOW_BYTES = 8 << 20


class KafkaConfigError(ValueError):
    """The Kafka settings cannot work (a missing certificate file, a password file, ...)."""


# --- client options ------------------------------------------------------------------------


def _read_secret_file(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        raise KafkaConfigError(f"cannot read {what} from {path}: {e.strerror}") from e


def ssl_context(security: KafkaSecuritySettings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL, or None for plaintext protocols.

    Raises:
        KafkaConfigError: a certificate or key file cannot be loaded (named).
    """
    if security.protocol not in ("SSL", "SASL_SSL"):
        return None
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(security, name)
        if path is not None and not path.is_file():
            raise KafkaConfigError(f"kafka.security.{name}: no such file {path}")
    try:
        context = create_ssl_context(
            cafile=str(security.ca_file) if security.ca_file else None,
            certfile=str(security.cert_file) if security.cert_file else None,
            keyfile=str(security.key_file) if security.key_file else None,
            password=security.key_password.get_secret_value() if security.key_password else None,
        )
    except (ssl.SSLError, OSError) as e:
        raise KafkaConfigError(f"kafka.security: cannot load TLS files: {e}") from e
    context.check_hostname = security.check_hostname
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by producer, consumer and admin client (secrets included).

    Never log the result: use :func:`describe_options`.
    """
    security = settings.security
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": security.protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    context = ssl_context(security)
    if context is not None:
        options["ssl_context"] = context
    if security.protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if security.sasl_mechanism is None or not security.sasl_username:
            raise KafkaConfigError(
                f"kafka.security: {security.protocol} needs sasl_mechanism and sasl_username"
            )
        if security.sasl_password_file is not None:
            password = _read_secret_file(security.sasl_password_file, "the SASL password")
        elif security.sasl_password is not None:
            password = security.sasl_password.get_secret_value()
        else:
            raise KafkaConfigError("kafka.security: sasl_password or sasl_password_file is needed")
        options.update(
            sasl_mechanism=security.sasl_mechanism,
            sasl_plain_username=security.sasl_username,
            sasl_plain_password=password,
        )
    return options


def producer_options(settings: KafkaSettings) -> dict[str, Any]:
    """Options of the events producer."""
    return {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": settings.enable_idempotence,
        "linger_ms": settings.linger_ms,
        "max_batch_size": settings.max_batch_bytes,
        "compression_type": None if settings.compression == "none" else settings.compression,
    }


def describe_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options with secrets masked, fit for a log line."""
    return {k: ("***" if "password" in k or k == "ssl_context" else v) for k, v in options.items()}


# --- buffers -------------------------------------------------------------------------------


class RecordBuffer(Protocol):
    """What the publisher needs of an outbox (durable or in memory)."""

    def append(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> int: ...
    def peek(self, limit: int, max_bytes: int | None = None) -> list[Any]: ...
    def ack(self, seqs: Iterable[int]) -> int: ...
    def depth(self) -> int: ...
    def bytes_used(self) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class MemoryRecord:
    """A record of the in-memory buffer (same fields the publisher reads from the outbox)."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes


class MemoryBuffer:
    """The outbox's interface without durability (``kafka.outbox.enabled: false``).

    Bounded by ``max_bytes`` (the oldest records go first, counted); everything in it is lost
    if the process dies. Exists for deployments that prefer speed and for the outbox on/off
    benchmark.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: deque[MemoryRecord] = deque()
        self._bytes = 0
        self._seq = 0
        self._lock = threading.Lock()
        self.dropped = 0

    def append(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> int:
        with self._lock:
            for topic, key, value in records:
                self._seq += 1
                self._items.append(MemoryRecord(self._seq, topic, key, value))
                self._bytes += _size(topic, key, value)
            while self._bytes > self.max_bytes and self._items:
                old = self._items.popleft()
                self._bytes -= _size(old.topic, old.key, old.value)
                self.dropped += 1
            return len(records)

    def peek(self, limit: int, max_bytes: int | None = None) -> list[MemoryRecord]:
        with self._lock:
            out, total = [], 0
            for record in self._items:
                size = _size(record.topic, record.key, record.value)
                if out and (len(out) >= limit or (max_bytes and total + size > max_bytes)):
                    break
                out.append(record)
                total += size
            return out

    def ack(self, seqs: Iterable[int]) -> int:
        done = set(seqs)
        with self._lock:
            kept = deque(r for r in self._items if r.seq not in done)
            removed = len(self._items) - len(kept)
            self._items = kept
            self._bytes = sum(_size(r.topic, r.key, r.value) for r in kept)
            return removed

    def depth(self) -> int:
        return len(self._items)

    def bytes_used(self) -> int:
        return self._bytes

    def close(self) -> None:
        pass


def _size(topic: str, key: bytes | None, value: bytes) -> int:
    return len(topic) + len(key or b"") + len(value)


# --- publisher -----------------------------------------------------------------------------


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
        buffer: The outbox (or a :class:`MemoryBuffer`).
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
        self.counters.last_error = _describe_error(error)
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


async def ensure_topics(settings: KafkaSettings, topics: Iterable[str]) -> None:
    """Create the topics that do not exist yet (the broker may have lost them)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(t, settings.partitions, 1) for t in missing])
                log.info("created Kafka topics %s", missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


class _ConnectErrorFilter(logging.Filter):
    """Keeps aiokafka's per-attempt "Unable connect to ..." errors out of the log.

    aiokafka logs one ERROR for every failed connection attempt (a log flood while a broker
    is away or a certificate is wrong); the publisher logs one clear error per outage
    instead, and takes the reason it reports from the last of these lines.
    """

    last_reason = ""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Unable connect to"):
            _ConnectErrorFilter.last_reason = message.partition(": ")[2] or message
            return False
        return True


logging.getLogger("aiokafka").addFilter(_ConnectErrorFilter())


def _describe_error(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, KafkaConnectionError) and _ConnectErrorFilter.last_reason:
        text = f"{text}: {_ConnectErrorFilter.last_reason}"
        _ConnectErrorFilter.last_reason = ""
    cause = error.__cause__ or error.__context__
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"TLS certificate verification failed ({cause or text}); check kafka.security.ca_file"
        )
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause}"
    return text


# --- sink ----------------------------------------------------------------------------------


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
