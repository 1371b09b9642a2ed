"""Kafka client options: TLS and SASL settings reach aiokafka exactly, secrets stay secret."""

from __future__ import annotations

import logging

import pytest

from vigil.config import KafkaSecuritySettings, KafkaSettings, Settings
from vigil.events.kafka_client import (
    KafkaConfigError,
    client_options,
    describe_options,
    producer_options,
)
from vigil.events.record_buffer import MemoryBuffer

SECRET = "s3cr3t-Pa55"


def kafka(**security) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="broker:9093", security=KafkaSecuritySettings(**security)
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_settings_reach_the_client_exactly(mechanism):
    options = client_options(
        kafka(
            protocol="SASL_PLAINTEXT",
            sasl_mechanism=mechanism,
            sasl_username="vigil",
            sasl_password=SECRET,
        )
    )
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "vigil"
    assert options["sasl_plain_password"] == SECRET
    assert "ssl_context" not in options


def test_sasl_password_can_come_from_a_file(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    options = client_options(
        kafka(
            protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="vigil",
            sasl_password_file=secret_file,
        )
    )
    assert options["sasl_plain_password"] == SECRET


def test_sasl_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("VIGIL_KAFKA__BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("VIGIL_KAFKA__SECURITY__PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("VIGIL_KAFKA__SECURITY__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("VIGIL_KAFKA__SECURITY__SASL_USERNAME", "vigil")
    monkeypatch.setenv("VIGIL_KAFKA__SECURITY__SASL_PASSWORD", SECRET)
    settings = Settings()
    options = producer_options(settings.kafka)
    assert options["sasl_plain_password"] == SECRET
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True
    assert SECRET not in repr(settings)
    assert SECRET not in settings.model_dump_json()
    assert SECRET not in str(describe_options(options))


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"protocol": "SASL_SSL"}, "needs sasl_mechanism and sasl_username"),
        (
            {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            "sasl_password or sasl_password_file",
        ),
        ({"protocol": "SSL", "ca_file": "/nope/ca.pem"}, "kafka.security.ca_file: no such file"),
    ],
)
def test_incomplete_security_settings_fail_fast_naming_the_setting(security, message):
    with pytest.raises(KafkaConfigError, match=message):
        client_options(kafka(**security))


def test_unreadable_password_file_is_named_but_not_its_content(tmp_path):
    with pytest.raises(KafkaConfigError, match="cannot read the SASL password from"):
        client_options(
            kafka(
                protocol="SASL_PLAINTEXT",
                sasl_mechanism="PLAIN",
                sasl_username="u",
                sasl_password_file=tmp_path / "missing",
            )
        )


def test_secrets_never_reach_a_log_line(caplog):
    options = client_options(
        kafka(
            protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password=SECRET,
        )
    )
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("vigil.test").info("connecting: %s", describe_options(options))
    assert SECRET not in caplog.text
    assert "sasl_plain_password" in caplog.text


def test_memory_buffer_keeps_order_acks_subsets_and_bounds_bytes():
    buffer = MemoryBuffer(max_bytes=100)
    buffer.append([("t", b"a", b"x" * 10), ("t", b"b", b"y" * 10), ("t", b"a", b"z" * 10)])
    records = buffer.peek(10)
    assert [r.value[:1] for r in records] == [b"x", b"y", b"z"]
    buffer.ack([records[1].seq])
    assert [r.value[:1] for r in buffer.peek(10)] == [b"x", b"z"]
    buffer.append([("t", None, b"w" * 90)])
    assert buffer.bytes_used() <= 100
    assert buffer.dropped >= 1
    assert buffer.peek(10)[-1].value[:1] == b"w"


@pytest.mark.parametrize(
    "records",
    [[], [(None, b"")], [(b"cam-1", b'{"a":1}'), (None, b"x" * 70_000), (b"", b"y")]],
)
def test_pack_unpack_round_trip(records):
    from vigil.events.kafka_publisher import pack_records, unpack_records

    assert unpack_records(pack_records(records)) == [
        (k if k is not None else None, v) for k, v in records
    ]
