"""Cloud-to-device: consume commands from Kafka, apply them, dead-letter what is invalid.

Each message of the commands topic goes through
:class:`~vigil.commands.processor.CommandProcessor`. A rejected message is published to the
dead-letter topic with its reason, and the consumer moves on; one bad message never stops
the others. Offsets are committed after each message is handled (applied, duplicate or
dead-lettered), so a restart resumes where it stopped — and a command that carries a
``command_id`` is applied once even if it is delivered again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from vigil.commands.applied import AppliedCommands
from vigil.commands.dead_letters import dead_letter_record
from vigil.commands.processor import (
    CommandProcessor,
    CommandRejected,
    ModelControl,
    RecordingHandler,
    StreamControl,
)
from vigil.config import KafkaSettings, Settings
from vigil.events.kafka_client import client_options, ensure_topics
from vigil.retry import FailureRun

log = logging.getLogger(__name__)


class CommandConsumer:
    """Runs the commands topic through a processor, with reconnects.

    Args:
        settings: Kafka settings (``commands`` section).
        processor: Validates and applies one command.
    """

    def __init__(self, settings: KafkaSettings, processor: CommandProcessor) -> None:
        self.settings = settings
        self.processor = processor
        self.applied: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.lag = 0
        self._task: asyncio.Task[None] | None = None
        self._outage = FailureRun()

    def start(self) -> None:
        """Start consuming in the background."""
        self._task = asyncio.create_task(self._run(), name="kafka-commands")

    async def close(self) -> None:
        """Stop consuming."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def figures(self) -> tuple[dict[str, int], dict[str, int], int]:
        """``(applied by result, rejected by reason, lag)`` for metrics."""
        return dict(self.applied), dict(self.rejected), self.lag

    async def _run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not isinstance(e, KafkaError | OSError):
                    log.exception("command consumer failed; the message will be redelivered")
                delay = self._outage.backoff_s(self.settings.retry_backoff_max_s)
                loud = self._outage.failed()
                log.log(
                    logging.ERROR if loud else logging.DEBUG,
                    "command consumer lost Kafka at %s: %s; retrying in %.1f s",
                    self.settings.bootstrap_servers,
                    e,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _consume(self) -> None:
        commands = self.settings.commands
        if self.settings.create_topics:
            await ensure_topics(self.settings, [commands.topic, commands.dead_letter_topic])
        options = client_options(self.settings)
        consumer = AIOKafkaConsumer(
            commands.topic,
            group_id=commands.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(commands.max_message_bytes * 4, 1 << 20),
            **options,
        )
        dead_letters = AIOKafkaProducer(acks="all", **options)
        await consumer.start()
        try:
            await dead_letters.start()
            self._outage.succeeded()
            log.info("consuming commands from %s", commands.topic)
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=100)
                for partition, messages in batches.items():
                    for message in messages:
                        await self._handle(message, dead_letters)
                        await consumer.commit({partition: message.offset + 1})
                await self._update_lag(consumer)
        finally:
            await consumer.stop()
            await dead_letters.stop()

    async def _handle(self, message: ConsumerRecord, dead_letters: AIOKafkaProducer) -> None:
        raw = message.value or b""
        try:
            outcome = await self.processor.process(raw)
        except CommandRejected as e:
            self.rejected[e.reason] += 1
            log.warning("command rejected (%s): %s", e.reason, e.detail)
            record = dead_letter_record(
                raw,
                e.reason,
                e.detail,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                received_at=datetime.now(UTC),
            )
            await dead_letters.send_and_wait(
                self.settings.commands.dead_letter_topic,
                record,
                key=message.key,
                headers=[("reason", e.reason.encode())],
            )
            return
        self.applied[outcome.result] += 1
        log.info("command applied: %s", outcome)

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag += max(0, highwater - await consumer.position(tp))
        self.lag = lag


def make_command_consumer(
    settings: Settings,
    streams: StreamControl,
    models: ModelControl | None = None,
    recording: RecordingHandler | None = None,
) -> CommandConsumer | None:
    """The command consumer, if ``kafka.commands.enabled``: streams come and go through
    ``streams``, model versions through ``models``, smart recording through ``recording``
    (None: refused as ``unsupported``); command ids are remembered in
    ``<data_dir>/commands.db``."""
    if not settings.kafka.commands.enabled:
        return None
    processor = CommandProcessor(
        streams,
        recording=recording,
        models=models,
        applied=AppliedCommands(settings.data_dir / "commands.db"),
        max_message_bytes=settings.kafka.commands.max_message_bytes,
    )
    return CommandConsumer(settings.kafka, processor)
