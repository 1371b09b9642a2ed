"""The Kafka test infrastructure itself: Tansu, the stunnel TLS terminator, the helpers.

These tests pin down how the test broker behaves, so the Kafka sink's tests can rely on it:
what a restart loses, what a frozen broker looks like to a producer, what TLS refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from tests.support.kafka import (
    TansuBroker,
    TlsKafka,
    consume_all,
    create_topic,
    produce,
    require_kafka,
    tls_broker,
)

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def _kafka_tools() -> None:
    require_kafka()


@pytest.fixture
def broker(_kafka_tools: None) -> Iterator[TansuBroker]:
    with TansuBroker() as broker:
        yield broker
    assert not broker.running


@pytest.fixture(scope="module")
def tls_kafka(_kafka_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    with tls_broker(tmp_path_factory.mktemp("kafka-tls")) as kafka:
        yield kafka
    assert not kafka.broker.running
    assert not kafka.terminator.running


@contextlib.asynccontextmanager
async def started_producer(bootstrap: str, **options: object) -> AsyncIterator[AIOKafkaProducer]:
    """An aiokafka producer, started within CLIENT_TIMEOUT_S and always stopped."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
    try:
        await asyncio.wait_for(producer.start(), CLIENT_TIMEOUT_S)
        yield producer
    finally:
        await producer.stop()


async def assert_tls_producer_refused_fast(
    tls_kafka: TlsKafka, ssl_context: ssl.SSLContext
) -> None:
    """A TLS producer with ``ssl_context`` fails to start with KafkaConnectionError, in < 5 s."""
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        async with started_producer(
            tls_kafka.bootstrap,
            security_protocol="SSL",
            ssl_context=ssl_context,
            request_timeout_ms=3000,
        ):
            pass
    assert time.monotonic() - started < 5


def topic_names(bootstrap: str) -> set[str]:
    """Topics the broker knows (a metadata request that creates nothing)."""
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).topics)


# --- plain broker -----------------------------------------------------------------------


async def test_broker_when_aiokafka_produces_then_consume_all_reads_back(broker):
    create_topic(broker.bootstrap, "events", partitions=2)
    sent = [(f"cam-{i % 3}".encode(), f"event-{i}".encode()) for i in range(12)]
    async with started_producer(broker.bootstrap, acks="all") as producer:
        for key, value in sent:
            await producer.send_and_wait(
                "events", value, key=key, headers=[("source", b"vigil"), ("n", value[6:])]
            )

    got = consume_all(broker.bootstrap, "events", expected=len(sent), timeout_s=10)

    assert sorted((m.key, m.value) for m in got) == sorted(sent)
    assert all(m.headers == {"source": b"vigil", "n": m.value[6:]} for m in got)
    assert {m.partition for m in got} <= {0, 1}
    for key in {k for k, _ in sent}:
        in_partition = [m for m in got if m.key == key]
        assert len({m.partition for m in in_partition}) == 1, "one key, one partition"
        assert [m.value for m in in_partition] == [v for k, v in sent if k == key]
        assert [m.offset for m in in_partition] == sorted(m.offset for m in in_partition)


async def test_broker_when_confluent_feeds_a_topic_then_an_aiokafka_group_reads_it(broker):
    create_topic(broker.bootstrap, "commands")
    produce(broker.bootstrap, "commands", [b"one", b"two", b"three"], key=b"k")
    consumer = AIOKafkaConsumer(
        "commands",
        bootstrap_servers=broker.bootstrap,
        group_id="readers",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
    )
    await asyncio.wait_for(consumer.start(), CLIENT_TIMEOUT_S)
    try:
        records = await asyncio.wait_for(
            consumer.getmany(timeout_ms=int(CLIENT_TIMEOUT_S * 1000), max_records=3),
            CLIENT_TIMEOUT_S + 5,
        )
    finally:
        await consumer.stop()

    assert [r.value for batch in records.values() for r in batch] == [b"one", b"two", b"three"]
    # consume_all as a group too (subscribe + join, about 3 s on Tansu).
    group_read = consume_all(broker.bootstrap, "commands", expected=3, group="g", timeout_s=15)
    assert [m.value for m in group_read] == [b"one", b"two", b"three"]


async def test_broker_when_restarted_loses_topics_and_keeps_its_address(broker):
    create_topic(broker.bootstrap, "events", partitions=2)
    produce(broker.bootstrap, "events", [b"before restart"])
    bootstrap, pid = broker.bootstrap, broker.pid

    broker.restart()

    assert (broker.bootstrap, broker.running) == (bootstrap, True)
    assert broker.pid != pid
    assert "events" not in topic_names(bootstrap), (
        "Tansu keeps topics in memory only: a restart loses every topic and message"
    )
    # Producing creates the topic again, with Tansu's default partition count, empty.
    async with started_producer(bootstrap) as producer:
        await producer.send_and_wait("events", b"after restart")
        assert len(await producer.partitions_for("events")) == 4
    assert [m.value for m in consume_all(bootstrap, "events", expected=1)] == [b"after restart"]


def test_broker_when_killed_then_start_serves_the_same_port_empty(broker):
    produce(broker.bootstrap, "events", [b"lost"])
    port = broker.port

    broker.kill()
    assert not broker.running
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "nothing listens after kill()"
    broker.start()

    assert broker.port == port
    assert "events" not in topic_names(broker.bootstrap)


async def test_broker_when_paused_produce_times_out_then_resume_delivers(broker):
    create_topic(broker.bootstrap, "events")
    async with started_producer(broker.bootstrap, acks="all", request_timeout_ms=1500) as producer:
        await producer.send_and_wait("events", b"before")
        broker.pause()
        started = time.monotonic()
        # A frozen broker keeps the connection open and never answers: only the request
        # timeout ends the wait (aiokafka reports the broker's RequestTimedOut, error 7).
        # Which one ended the wait is told by the exception, not the clock: KafkaError is
        # the request timeout, asyncio.TimeoutError would be this test's own 5 s limit.
        with pytest.raises(KafkaError):
            await asyncio.wait_for(producer.send_and_wait("events", b"during"), 5)
        timed_out_s = time.monotonic() - started
        broker.resume()
        await asyncio.wait_for(producer.send_and_wait("events", b"after"), 5)

    print(f"\nthe request timed out after {timed_out_s:.2f} s (request_timeout_ms=1500)")
    assert timed_out_s > 1.0, "the request failed before its timeout"
    values = [m.value for m in consume_all(broker.bootstrap, "events", expected=3, timeout_s=3)]
    assert values == [b"before", b"during", b"after"], (
        "the request that timed out on the client stayed in the socket and was written "
        "after resume: a retry after a timeout can duplicate a message"
    )


async def test_broker_when_paused_new_client_cannot_bootstrap_and_stop_still_works(broker):
    broker.pause()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=1000)
    try:
        # The kernel accepts the TCP connection; the frozen broker never answers.
        with pytest.raises((KafkaConnectionError, asyncio.TimeoutError)):
            await asyncio.wait_for(producer.start(), 5)
    finally:
        await producer.stop()

    started = time.monotonic()
    broker.stop()
    assert not broker.running
    assert time.monotonic() - started < 3


async def test_broker_when_aiokafka_idempotent_producer_then_it_fails(broker):
    # aiokafka sends InitProducerId v0, which Tansu 0.6.0 answers with an unknown error; the
    # sink must not rely on enable_idempotence in tests against Tansu.
    with pytest.raises((KafkaError, asyncio.TimeoutError)):
        async with started_producer(broker.bootstrap, enable_idempotence=True) as producer:
            await asyncio.wait_for(producer.send_and_wait("events", b"x"), 5)
    # librdkafka (newer InitProducerId versions) gets a producer id and delivers.
    confluent = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    errors: list[object] = []
    confluent.produce("idempotent", b"x", on_delivery=lambda error, _m: errors.append(error))
    assert confluent.flush(CLIENT_TIMEOUT_S) == 0
    assert errors == [None]
    del confluent  # closes its connection now, so the broker stops without waiting


# --- TLS through stunnel ----------------------------------------------------------------


async def test_tls_when_client_trusts_the_ca_then_aiokafka_produces_and_confluent_reads(
    tls_kafka,
):
    assert tls_kafka.bootstrap == tls_kafka.broker.bootstrap == tls_kafka.terminator.address
    assert tls_kafka.broker.listener != tls_kafka.bootstrap
    ssl_context = create_ssl_context(**tls_kafka.certs.client_ssl())
    async with started_producer(
        tls_kafka.bootstrap, security_protocol="SSL", ssl_context=ssl_context
    ) as producer:
        await producer.send_and_wait("secure", b"over tls", key=b"cam-1")

    got = consume_all(
        tls_kafka.bootstrap, "secure", expected=1, ssl=tls_kafka.certs.client_ssl(), timeout_s=10
    )

    assert [(m.key, m.value) for m in got] == [(b"cam-1", b"over tls")]


async def test_tls_when_client_trusts_another_ca_then_certificate_verification_fails(
    tls_kafka,
):
    ssl_context = create_ssl_context(**tls_kafka.certs.client_ssl(wrong_ca=True))
    await assert_tls_producer_refused_fast(tls_kafka, ssl_context)
    # aiokafka raises "Unable to bootstrap" and logs the reason, but Vigil's Kafka module
    # filters those per-attempt lines (and reports them itself), so check the handshake.
    host, port = tls_kafka.bootstrap.split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        ssl_context.wrap_socket(raw, server_hostname=host)

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="certificate verify failed"):
        consume_all(
            tls_kafka.bootstrap,
            "secure",
            ssl=tls_kafka.certs.client_ssl(wrong_ca=True),
            timeout_s=10,
        )
    assert time.monotonic() - started < 5


async def test_tls_when_client_has_no_certificate_then_connection_is_refused(tls_kafka):
    ssl_context = create_ssl_context(**tls_kafka.certs.client_ssl(client_cert=False))
    await assert_tls_producer_refused_fast(tls_kafka, ssl_context)

    assert "peer did not return a certificate" in tls_kafka.terminator.log_text()


@pytest.mark.usefixtures("_kafka_tools")
def test_tls_broker_when_exited_then_processes_and_config_are_gone(tmp_path: Path):
    with tls_broker(tmp_path) as kafka:
        config_dir = kafka.terminator.log_path.parent
        pids = [kafka.broker.pid, kafka.terminator.pid]
        assert config_dir.is_dir()

    assert not kafka.broker.running
    assert not kafka.terminator.running
    assert not config_dir.exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
