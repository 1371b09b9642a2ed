"""Events to a real Kafka-protocol broker (Tansu): delivered, valid, never lost."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.kafka import TansuBroker, consume_all, require_kafka, tls_broker
from vigil.config import KafkaSecuritySettings, KafkaSettings, OutboxSettings, Settings
from vigil.events.kafka import KafkaSink
from vigil.events.kafka_publisher import unpack_records
from vigil.events.schema import FULL_SCHEMA_PATH
from vigil.jobs import file_spec, run_streams
from vigil.runtime import Runtime

pytestmark = pytest.mark.integration

TOPIC = "vigil-events"


@pytest.fixture(scope="module", autouse=True)
def _needs_kafka_tools() -> None:
    require_kafka()


@pytest.fixture
def broker():
    with TansuBroker() as b:
        yield b


def kafka_settings(settings: Settings, tmp_path: Path, bootstrap: str, **kafka) -> Settings:
    return settings.model_copy(
        update={
            "kafka": KafkaSettings(
                bootstrap_servers=bootstrap,
                outbox=OutboxSettings(path=tmp_path / "outbox.db"),
                partitions=2,
                **kafka,
            )
        }
    )


def jsonl_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_id(messages) -> dict[str, dict]:
    out = {}
    for m in messages:
        event = json.loads(m.value)
        out.setdefault(event["messageid"], event)
    return out


def assert_order_per_sensor(messages) -> None:
    """Within each sensor, first deliveries come in capture order."""
    seen: set[str] = set()
    last: dict[str, str] = defaultdict(str)
    for m in messages:
        event = json.loads(m.value)
        if event["messageid"] in seen:
            continue  # an at-least-once redelivery
        seen.add(event["messageid"])
        sensor = event["sensor"]["id"]
        assert m.key == sensor.encode(), "key = sensor id"
        assert event["@timestamp"] >= last[sensor], f"{sensor} out of order"
        last[sensor] = event["@timestamp"]


def sink_of(runtime: Runtime) -> KafkaSink:
    return next(s for s in runtime.pipeline.sinks if isinstance(s, KafkaSink))


async def test_confluent_consumer_receives_every_event_valid_against_the_schema(
    settings, tmp_path, short_clip, broker, reference_model
):
    settings = kafka_settings(settings, tmp_path, broker.bootstrap)
    result = await run_streams(
        settings, [file_spec("cam-a", str(short_clip)), file_spec("cam-b", str(short_clip))]
    )
    produced = jsonl_events(settings.events.jsonl_path)
    assert len(produced) == result.events_written > 0
    messages = await asyncio.to_thread(
        consume_all, broker.bootstrap, TOPIC, expected=len(produced), timeout_s=20
    )
    consumed = by_id(messages)
    assert set(consumed) == {e["messageid"] for e in produced}
    validator = Draft202012Validator(json.loads(FULL_SCHEMA_PATH.read_text()))
    for event in consumed.values():
        assert not list(validator.iter_errors(event))
    assert_order_per_sensor(messages)


async def test_broker_unreachable_for_30s_loses_nothing_and_keeps_order(
    settings, tmp_path, sample_video, broker, reference_model
):
    settings = kafka_settings(settings, tmp_path, broker.bootstrap, request_timeout_ms=5000)
    specs = [
        file_spec("cam-a", str(sample_video)).model_copy(update={"max_fps": 12}),
        file_spec("cam-b", str(sample_video)).model_copy(update={"max_fps": 12}),
    ]
    specs = [s.model_copy(update={"inference_interval": 2}) for s in specs]
    job = asyncio.create_task(run_streams(settings, specs))
    jsonl = settings.events.jsonl_path
    while not (jsonl.exists() and jsonl.stat().st_size > 50_000):  # noqa: ASYNC110 - events flow
        await asyncio.sleep(0.2)
    broker.pause()
    paused_at = time.time()
    await asyncio.sleep(30)
    broker.resume()
    resumed_at = time.time()
    result = await job
    produced = jsonl_events(settings.events.jsonl_path)
    during = [e for e in produced if _iso(paused_at) < e["@timestamp"] < _iso(resumed_at)]
    assert len(during) > 100, "events were produced during the outage"
    messages = await asyncio.to_thread(consume_all, broker.bootstrap, TOPIC, timeout_s=8)
    consumed = by_id(messages)
    lost = {e["messageid"] for e in produced} - set(consumed)
    print(
        f"\nproduced {len(produced)} ({len(during)} during the outage), consumed "
        f"{len(messages)} ({len(consumed)} unique), lost {len(lost)}"
    )
    assert not lost
    assert result.events_written == len(produced)
    assert_order_per_sensor(messages)


async def test_broker_restart_recreates_topics_and_loses_nothing_unacknowledged(
    settings, tmp_path, sample_video, broker, reference_model
):
    settings = kafka_settings(settings, tmp_path, broker.bootstrap, request_timeout_ms=5000)
    spec = file_spec("cam-a", str(sample_video)).model_copy(update={"max_fps": 15})
    runtimes: list[Runtime] = []
    job = asyncio.create_task(run_streams(settings, [spec], on_start=runtimes.append))
    while not runtimes or sink_of(runtimes[0]).publisher.counters.acked < 200:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    publisher = sink_of(runtimes[0]).publisher
    broker.kill()
    acked_before_kill = publisher.counters.acked
    await asyncio.sleep(3)
    broker.start()  # same port, empty: no topics, no messages
    await job
    produced = jsonl_events(settings.events.jsonl_path)
    messages = await asyncio.to_thread(consume_all, broker.bootstrap, TOPIC, timeout_s=8)
    consumed = by_id(messages)
    print(
        f"\nproduced {len(produced)}, acked before the kill {acked_before_kill}, "
        f"on the new broker {len(consumed)}"
    )
    assert acked_before_kill > 0
    assert len(consumed) >= len(produced) - acked_before_kill
    assert set(consumed) <= {e["messageid"] for e in produced}
    late = {e["messageid"] for e in produced if e["@timestamp"] > _iso(time.time() - 60)}
    assert late & set(consumed)


def test_kill_9_mid_run_then_restart_loses_nothing(tmp_path, sample_video, broker, reference_model):
    outbox = tmp_path / "outbox.db"
    config = {
        "kafka": {
            "bootstrap_servers": broker.bootstrap,
            "request_timeout_ms": 5000,
            "outbox": {"path": str(outbox)},
        },
        "streams": [{"id": "cam-a", "url": sample_video.as_uri(), "max_fps": 15}],
    }
    first = ServiceProcess(tmp_path / "first", config)
    (tmp_path / "first").mkdir()
    first.start()
    try:
        events = tmp_path / "first" / "events.jsonl"
        assert wait_for(lambda: events.exists() and events.stat().st_size > 20_000, 60)
        broker.pause()  # what is produced now can only wait in the outbox
        time.sleep(4)
        first.stop(signal.SIGKILL)
    finally:
        first.stop(signal.SIGKILL)
    broker.resume()
    produced = jsonl_events(events)
    config["streams"] = []
    (tmp_path / "second").mkdir()
    with ServiceProcess(tmp_path / "second", config) as second:

        def drained() -> bool:
            metrics = httpx.get(f"{second.url}/metrics", timeout=5).text
            return "vigil_kafka_outbox_batches 0.0" in metrics

        assert wait_for(drained, 60), "the restarted service sends what the first left"
    messages = consume_all(broker.bootstrap, TOPIC, timeout_s=8)
    consumed = by_id(messages)
    lost = {e["messageid"] for e in produced} - set(consumed)
    print(f"\nproduced {len(produced)} before kill -9, consumed {len(consumed)}, lost {len(lost)}")
    assert not lost
    assert_order_per_sensor(messages)


async def test_tls_with_ca_and_client_certificate(settings, tmp_path, short_clip, reference_model):
    with tls_broker(tmp_path / "tls") as kafka:
        certs = kafka.certs
        security = KafkaSecuritySettings(
            protocol="SSL",
            ca_file=certs.ca_cert,
            cert_file=certs.client_cert,
            key_file=certs.client_key,
        )
        settings = kafka_settings(settings, tmp_path, kafka.bootstrap, security=security)
        result = await run_streams(settings, [file_spec("cam-a", str(short_clip))])
        messages = await asyncio.to_thread(
            consume_all,
            kafka.bootstrap,
            TOPIC,
            expected=result.events_written,
            timeout_s=20,
            ssl=certs.client_ssl(),
        )
    assert result.events_written > 0
    assert len(by_id(messages)) == result.events_written


async def test_tls_with_wrong_ca_gives_one_clear_error_and_keeps_events(
    settings, tmp_path, short_clip, reference_model, caplog
):
    with tls_broker(tmp_path / "tls") as kafka:
        security = KafkaSecuritySettings(
            protocol="SSL",
            ca_file=kafka.certs.other_ca_cert,
            cert_file=kafka.certs.client_cert,
            key_file=kafka.certs.client_key,
        )
        settings = kafka_settings(settings, tmp_path, kafka.bootstrap, security=security)
        with caplog.at_level(logging.INFO, logger="vigil.events.kafka_publisher"):
            started = time.monotonic()
            result = await run_streams(
                settings, [file_spec("cam-a", str(short_clip)).model_copy(update={"max_fps": 5})]
            )
            elapsed = time.monotonic() - started
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    print(f"\n{len(errors)} error line(s) in {elapsed:.0f} s: {errors[0].getMessage()[:200]}")
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "certificate verification failed" in errors[0].getMessage()
    assert result.events_written > 0
    from vigil.events.outbox import Outbox

    with Outbox(tmp_path / "outbox.db", max_bytes=1 << 30) as box:
        kept = sum(len(unpack_records(row.value)) for row in box.peek(1_000_000))
    assert kept == result.events_written, "undelivered events stay in the outbox"


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
