"""The cluster's topics: created compacted when missing, their partition counts, and writes."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import RecordMetadata

from vigil.cluster_settings import ClusterSettings
from vigil.config import KafkaSettings
from vigil.events.kafka_client import client_options

log = logging.getLogger(__name__)

#: Last value per key is all that matters in these topics (a stream's spec, a worker's
#: status, the cluster's model).
COMPACTED = {"cleanup.policy": "compact"}


async def ensure_cluster_topics(kafka: KafkaSettings, cluster: ClusterSettings) -> None:
    """Create the control topic (``cluster.partitions`` partitions), the status topic
    (``kafka.partitions``) and the model topic (one partition), compacted, if they do not
    exist."""
    wanted = {
        cluster.control_topic: cluster.partitions,
        cluster.status_topic: kafka.partitions,
        cluster.model_topic: 1,
    }
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, n, 1, topic_configs=COMPACTED) for t, n in wanted.items()
                   if t not in existing]  # fmt: skip
        if missing:
            try:
                await admin.create_topics(missing)
                log.info("created Kafka topics %s", [t.name for t in missing])
            except TopicAlreadyExistsError:
                pass  # another worker was first
    finally:
        await admin.close()


async def partition_count(kafka: KafkaSettings, topic: str) -> int:
    """How many partitions ``topic`` has.

    Raises:
        KafkaError: the broker does not answer, or the topic does not exist.
    """
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        for described in await admin.describe_topics([topic]):
            if described.get("topic") == topic and described.get("partitions"):
                return len(described["partitions"])
    finally:
        await admin.close()
    raise KafkaError(f"topic {topic} does not exist")


class TopicWriter:
    """Writes to one cluster topic with ``acks=all``; the producer starts on the first write,
    so a broker that is away only fails that write.

    acks=all without idempotence: a retried write of the same value is harmless (last value
    wins in these topics), and Tansu refuses aiokafka's idempotent producer.

    Args:
        kafka: Connection settings.
        topic: The topic.
    """

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    @property
    def started(self) -> bool:
        """Whether a write started the producer."""
        return self._producer is not None

    async def send(self, value: bytes | None, key: bytes) -> RecordMetadata:
        """Write ``value`` (None: a tombstone) under ``key``; returns once acknowledged.

        Raises:
            KafkaError: the broker did not acknowledge it.
        """
        if self._producer is None:
            producer = AIOKafkaProducer(acks="all", **client_options(self.kafka))
            await producer.start()
            self._producer = producer
        return await self._producer.send_and_wait(self.topic, value, key=key)

    async def close(self) -> None:
        """Stop the producer, if a write started it."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
