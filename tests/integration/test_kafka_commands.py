"""Cloud-to-device commands through a real broker, against the real service."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.kafka import TansuBroker, consume_all, create_topic, produce, require_kafka

pytestmark = pytest.mark.integration

COMMANDS, DLQ = "vigil-commands", "vigil-commands-dlq"
SECRET = "Sup3r-s3cret-SASL"


@pytest.fixture(scope="module", autouse=True)
def _needs_kafka_tools() -> None:
    require_kafka()


def malformed_commands() -> list[tuple[bytes, str]]:
    """50 bad messages of assorted kinds, each with the reason it must be rejected for."""
    bad: list[tuple[bytes, str]] = []
    for i in range(10):
        bad.append((b"{not json " + str(i).encode(), "invalid_json"))
        bad.append((json.dumps([1, 2, i]).encode(), "not_an_object"))
        bad.append((json.dumps({"command": f"explode-{i}"}).encode(), "unknown_command"))
        bad.append(
            (
                json.dumps(
                    {"command": "add-stream", "stream": {"id": f"bad {i}", "url": "ftp://x/y"}}
                ).encode(),
                "invalid_fields",
            )
        )
        bad.append(
            (
                json.dumps(
                    {
                        "command": "start-recording",
                        "start": "2026-01-01T00:00:00Z",
                        "sensor": {"id": f"no-such-camera-{i}"},
                    }
                ).encode(),
                "unknown_sensor",
            )
        )
    bad[0] = (b"{" + b" " * 70_000 + b"}", "oversize")
    return bad


def test_malformed_commands_go_to_the_dead_letter_topic_and_valid_ones_apply(
    tmp_path, reference_model
):
    with TansuBroker() as broker:
        for topic in (COMMANDS, DLQ):
            create_topic(broker.bootstrap, topic)
        config = {
            "kafka": {
                "bootstrap_servers": broker.bootstrap,
                "commands": {"enabled": True},
                "outbox": {"path": str(tmp_path / "outbox.db")},
            },
            "data_dir": str(tmp_path / "data"),
        }
        with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url) as api:
            bad = malformed_commands()
            messages: list[bytes] = []
            for i, (raw, _) in enumerate(bad):
                messages.append(raw)
                if i % 10 == 9:  # valid commands interleaved with the bad ones
                    n = i // 10
                    messages.append(
                        json.dumps(
                            {
                                "command": "add-stream",
                                "command_id": f"add-{n}",
                                "stream": {"id": f"c2d-{n}", "url": "test://pattern?fps=2"},
                            }
                        ).encode()
                    )
            messages.append(json.dumps({"command": "remove-stream", "id": "c2d-0"}).encode())
            ds_add = json.loads(_deepstream("add_file.json"))
            ds_add["value"]["camera_url"] = "test://pattern?fps=2"
            messages.append(json.dumps(ds_add).encode())
            # the same command id again: applied once only
            messages.append(
                json.dumps(
                    {
                        "command": "add-stream",
                        "command_id": "add-1",
                        "stream": {"id": "c2d-1", "url": "test://pattern?fps=2"},
                    }
                ).encode()
            )
            produce(broker.bootstrap, COMMANDS, messages)

            def streams() -> set[str]:
                return {s["id"] for s in api.get("/api/v1/streams").json()["streams"]}

            expected = {"c2d-1", "c2d-2", "c2d-3", "c2d-4", "uniqueSensorID1"}
            assert wait_for(lambda: streams() == expected, 60), streams()
            dead = consume_all(broker.bootstrap, DLQ, expected=len(bad), timeout_s=30)
            metrics = api.get("/metrics").text
        assert len(dead) == len(bad)
        reasons = [json.loads(m.value)["reason"] for m in dead]
        assert reasons == [reason for _, reason in bad], "each rejected for its own reason"
        for message in dead:
            doc = json.loads(message.value)
            assert doc["detail"]
            assert doc["source"]["topic"] == COMMANDS
        applied = re.search(r'vigil_commands_applied_total\{result="applied"\} (\d+)', metrics)
        duplicate = re.search(r'vigil_commands_applied_total\{result="duplicate"\} (\d+)', metrics)
        assert applied
        assert int(float(applied.group(1))) == 7  # 5 adds, 1 remove, 1 DeepStream add
        assert duplicate
        assert int(float(duplicate.group(1))) == 1
        # the first bad JSON message was replaced by the oversize one
        assert 'vigil_commands_rejected_total{reason="invalid_json"} 9.0' in metrics


def test_sasl_secrets_appear_in_no_log_error_or_api_response(tmp_path, reference_model):
    with TansuBroker() as broker:
        config = {
            "kafka": {
                "bootstrap_servers": broker.bootstrap,
                "request_timeout_ms": 2000,
                "outbox": {"path": str(tmp_path / "outbox.db")},
                "security": {
                    "protocol": "SASL_PLAINTEXT",
                    "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_username": "vigil",
                },
                "commands": {"enabled": True},
            },
            "data_dir": str(tmp_path / "data"),
            "log_level": "DEBUG",
        }
        svc = ServiceProcess(tmp_path, config, VIGIL_KAFKA__SECURITY__SASL_PASSWORD=SECRET)
        with svc, httpx.Client(base_url=svc.url) as api:
            api.post("/api/v1/streams", json={"id": "cam", "url": "test://pattern?fps=5"})
            # this broker cannot do SASL: the client keeps failing, and says so
            assert wait_for(lambda: "cannot deliver events to Kafka" in svc.log(), 60)
            responses = "".join(
                api.get(path).text
                for path in (
                    "/api/v1/health",
                    "/api/v1/ready",
                    "/api/v1/streams",
                    "/metrics",
                    "/openapi.json",
                )
            )
        assert SECRET not in responses
        assert SECRET not in svc.output
        assert "SCRAM-SHA-512" in svc.output, "the log does show the (non-secret) settings"


def _deepstream(name: str) -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parents[1] / "data" / "deepstream" / name).read_text()
