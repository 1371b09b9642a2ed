"""Read every partition of a topic from its start, forever: the local copy of a small log.

Each worker keeps a full copy of the control topic (the desired streams) and of the status
topic (the workers) this way, outside the consumer group: the group only decides ownership.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from vigil.cluster.topics import partition_count
from vigil.config import KafkaSettings
from vigil.events.kafka_client import client_options, describe_error
from vigil.retry import FailureRun

log = logging.getLogger(__name__)


class TopicTail:
    """Hands every record of ``topic`` to ``on_record``, in order per partition.

    Survives broker outages (reconnects with backoff, resumes where it stopped). When the
    broker lost the topic's data (an offset went backwards, e.g. an in-memory broker that
    restarted), ``on_reset`` is called and reading starts over.

    Args:
        kafka: Connection settings.
        topic: The topic (it must exist: :func:`~vigil.cluster.topics.ensure_cluster_topics`).
        on_record: Called on the event loop for each record.
        on_reset: Called before reading starts over from the beginning.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        on_record: Callable[[ConsumerRecord], None],
        on_reset: Callable[[], None] = lambda: None,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.on_record = on_record
        self.on_reset = on_reset
        #: Partition → offset of the next record to read.
        self.positions: dict[int, int] = {}
        self._moved = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._outage = FailureRun()

    def start(self) -> None:
        """Start reading in the background."""
        self._task = asyncio.create_task(self._run(), name=f"tail-{self.topic}")

    async def close(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def reached(self, ends: Mapping[int, int]) -> bool:
        """Whether every partition of ``ends`` (partition → offset) has been read up to it."""
        return all(self.positions.get(p, 0) >= end for p, end in ends.items())

    async def catch_up(self, timeout_s: float) -> bool:
        """Read up to the topic's end as of now; False if that cannot be done in
        ``timeout_s`` (the broker does not answer, or the reader is not connected)."""
        consumer, tps = self._consumer, self._tps
        if consumer is None or not tps:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(tps), timeout_s)
        except (KafkaError, OSError, TimeoutError):
            return False
        wanted = {tp.partition: end for tp, end in ends.items()}
        return await self.wait_reached(wanted, max(0.0, deadline - loop.time()))

    async def wait_reached(self, ends: Mapping[int, int], timeout_s: float) -> bool:
        """Wait until :meth:`reached`; False after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.reached(ends):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), min(left, 0.5))
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not isinstance(e, KafkaError | OSError):
                    log.exception("reading %s failed", self.topic)
                delay = self._outage.backoff_s(self.kafka.retry_backoff_max_s)
                log.log(
                    logging.WARNING if self._outage.failed() else logging.DEBUG,
                    "reading %s: %s; retrying in %.1f s",
                    self.topic,
                    describe_error(e),
                    delay,
                )
                await asyncio.sleep(delay)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False, auto_offset_reset="earliest", **client_options(self.kafka)
        )
        await consumer.start()
        try:
            count = await partition_count(self.kafka, self.topic)
            tps = [TopicPartition(self.topic, p) for p in range(count)]
            consumer.assign(tps)
            self._consumer, self._tps = consumer, tps
            ends = await consumer.end_offsets(tps)
            if any(self.positions.get(tp.partition, 0) > end for tp, end in ends.items()):
                log.warning("%s lost records on the broker; reading it again", self.topic)
                self.positions.clear()
                self.on_reset()
            for tp in tps:
                consumer.seek(tp, self.positions.get(tp.partition, 0))
            self._outage.succeeded()
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        self.on_record(record)
                        self.positions[tp.partition] = record.offset + 1
                for tp in tps:  # an empty partition is read up to its end too
                    position = await consumer.position(tp)
                    known = self.positions.get(tp.partition, 0)
                    self.positions[tp.partition] = max(known, position)
                self._moved.set()
        finally:
            self._consumer = None
            await consumer.stop()
