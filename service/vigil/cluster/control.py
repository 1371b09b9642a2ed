"""The desired streams: a compacted control topic keyed by stream id.

A record's key is the stream id, its value the :class:`~vigil.specs.StreamSpec` as JSON; the
last value of a key wins and a tombstone (null value) removes the stream. The producer's
default partitioner puts every record of one key in the same partition, so the partition —
and with it the worker that owns the stream — follows from the id alone.

Every worker folds the whole topic into :attr:`DesiredStreams.streams` (through a
:class:`~vigil.cluster.tail.TopicTail`) and writes to it for the REST API.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from vigil.cluster.tail import TopicTail
from vigil.cluster.topics import TopicWriter
from vigil.config import KafkaSettings
from vigil.specs import StreamSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesiredStream:
    """A stream as the control topic says it should run.

    Attributes:
        spec: Its latest spec.
        partition: The control topic partition its key lives in (decides its owner).
        offset: The offset of that spec's record.
    """

    spec: StreamSpec
    partition: int
    offset: int


@dataclass(frozen=True)
class Written:
    """Where a write to the control topic landed (acknowledged by the broker)."""

    partition: int
    offset: int


def encode_spec(spec: StreamSpec) -> bytes:
    """A control record's value for ``spec`` (defaults left out, so a later default change
    applies to old records too)."""
    return spec.model_dump_json(exclude_unset=True).encode()


class DesiredStreams:
    """The folded control topic, and writes to it.

    Args:
        kafka: Connection settings.
        topic: The control topic.
    """

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        #: Stream id → its latest spec.
        self.streams: dict[str, DesiredStream] = {}
        #: Records that were no valid spec, by reason (they change nothing).
        self.rejected: Counter[str] = Counter()
        #: Called with (stream id, partition) after a stream's spec changed or it was removed.
        self.listeners: list[Callable[[str, int], None]] = []
        self.tail = TopicTail(kafka, topic, self._apply, self._reset)
        self._writer = TopicWriter(kafka, topic)

    def start(self) -> None:
        """Start folding the topic in the background."""
        self.tail.start()

    async def close(self) -> None:
        """Stop reading and writing."""
        await self.tail.close()
        await self._writer.close()

    def weights(self) -> dict[int, int]:
        """Streams per partition."""
        weights: dict[int, int] = Counter()
        for stream in self.streams.values():
            weights[stream.partition] += 1
        return dict(weights)

    def of_partitions(self, partitions: set[int]) -> dict[str, StreamSpec]:
        """The desired streams whose keys live in ``partitions``."""
        return {sid: d.spec for sid, d in self.streams.items() if d.partition in partitions}

    async def put(self, spec: StreamSpec) -> Written:
        """Write ``spec`` (add or replace its stream); returns once the broker acknowledged.

        Raises:
            KafkaError: the broker did not acknowledge it.
        """
        return await self._send(spec.id, encode_spec(spec))

    async def delete(self, stream_id: str) -> Written:
        """Write a tombstone for ``stream_id``; returns once the broker acknowledged.

        Raises:
            KafkaError: the broker did not acknowledge it.
        """
        return await self._send(stream_id, None)

    async def _send(self, stream_id: str, value: bytes | None) -> Written:
        metadata = await self._writer.send(value, stream_id.encode())
        return Written(metadata.partition, metadata.offset)

    def _apply(self, record: ConsumerRecord) -> None:
        try:
            stream_id = (record.key or b"").decode()
        except UnicodeDecodeError:
            self._reject("key is not UTF-8", record)
            return
        if record.value is None:
            if self.streams.pop(stream_id, None) is not None:
                self._notify(stream_id, record.partition)
            return
        try:
            spec = StreamSpec.model_validate_json(record.value)
        except ValidationError as e:
            self._reject(f"invalid spec: {e.errors()[0]['msg']}", record)
            return
        if spec.id != stream_id:
            self._reject(f"key {stream_id!r} is not the spec's id {spec.id!r}", record)
            return
        previous = self.streams.get(stream_id)
        self.streams[stream_id] = DesiredStream(spec, record.partition, record.offset)
        if previous is None or previous.spec != spec:
            self._notify(stream_id, record.partition)

    def _reject(self, reason: str, record: ConsumerRecord) -> None:
        self.rejected[reason.partition(":")[0]] += 1
        log.warning(
            "control record %s[%d]@%d ignored: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )

    def _notify(self, stream_id: str, partition: int) -> None:
        for listener in self.listeners:
            listener(stream_id, partition)

    def _reset(self) -> None:
        # The broker lost the topic: forget everything, then read it again.
        for stream_id, stream in list(self.streams.items()):
            del self.streams[stream_id]
            self._notify(stream_id, stream.partition)
