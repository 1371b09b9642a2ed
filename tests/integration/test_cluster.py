"""Scale-out through a real broker (Tansu) and real `vigil serve` workers (docs/scale-out.md).

One worker here: the REST API writes the control topic, the worker runs what the group
assigns it, reports it in the status topic, stamps its id on its events, and rebuilds its
streams from the control topic after a restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.kafka import TansuBroker, consume_all, kafka_available, produce

pytestmark = pytest.mark.integration

CONTROL = "vigil-streams"
DATA = Path(__file__).resolve().parents[1] / "data" / "deepstream"


@pytest.fixture(scope="module", autouse=True)
def _needs_kafka_tools():
    reason = kafka_available()
    if reason:
        pytest.fail(f"Kafka test tools missing (run `make test`): {reason}")


def worker_config(bootstrap: str, base: Path, worker: str) -> dict:
    """A cluster worker's settings: short session so a dead worker is noticed in ~6 s."""
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "outbox": {"path": str(base / f"{worker}-outbox.db")},
            "commands": {"enabled": True},
        },
        "cluster": {
            "enabled": True,
            "worker_id": worker,
            "partitions": 12,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "status_interval_s": 1.0,
            "rebalance_delay_s": 1.0,
            "request_timeout_s": 20.0,
        },
        "data_dir": str(base / f"{worker}-data"),
        "log_level": "INFO",  # the cluster's decisions, for cluster_log() on a failure
    }


def cluster_log(base: Path, tail: int = 60) -> str:
    """The last cluster decisions of every worker under ``base`` (for failure messages)."""
    lines = []
    for log in sorted(base.glob("*/service.log")):
        mine = [
            f"{log.parent.name}: {line[:220]}"
            for line in log.read_text(errors="replace").splitlines()
            if "vigil.cluster" in line or "rebalanc" in line.lower()
        ]
        lines += mine[-tail:]
    return "\n".join(lines)


def cluster_view(api: httpx.Client) -> dict:
    response = api.get("/api/v1/cluster")
    assert response.status_code == 200, response.text
    return response.json()


def owners(api: httpx.Client) -> dict[str, tuple[str | None, str]]:
    """Stream id → (owner, state) as the cluster view shows it."""
    return {s["id"]: (s["owner"], s["state"]) for s in cluster_view(api)["streams"]}


def events_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_cluster_when_one_worker_then_rest_goes_through_the_control_topic_and_it_runs_all(
    tmp_path, reference_model, sample_video
):
    file_stream = {"id": "cam-1", "url": f"file://{sample_video}", "max_fps": 4}
    pattern = {"id": "pat-1", "url": "test://pattern?width=320&height=240&fps=2"}
    with TansuBroker() as broker:
        config = worker_config(broker.bootstrap, tmp_path, "w1")
        with (
            ServiceProcess(tmp_path, config) as svc,
            httpx.Client(base_url=svc.url, timeout=60) as api,
        ):
            first = api.post("/api/v1/streams", json=file_stream)
            # 201 once the owner reports it (the first join takes ~4 s on Tansu), else 202
            assert first.status_code in (201, 202), first.text
            assert first.json()["id"] == "cam-1"
            if first.status_code == 202:
                assert first.headers["location"] == "/api/v1/cluster/streams/cam-1"
            second = api.post("/api/v1/streams", json=pattern)
            assert second.status_code in (201, 202), second.text

            assert wait_for(
                lambda: owners(api) == {"cam-1": ("w1", "running"), "pat-1": ("w1", "running")},
                60,
                0.5,
            ), owners(api)
            view = cluster_view(api)
            assert view["worker"] == "w1"
            [me] = view["workers"]
            assert me["worker"] == "w1"
            assert sorted(me["partitions"]) == list(range(12))  # alone: every partition
            assert {s["id"] for s in me["streams"]} == {"cam-1", "pat-1"}
            # the local list is what this worker runs
            local = api.get("/api/v1/streams").json()["streams"]
            assert {s["id"] for s in local} == {"cam-1", "pat-1"}

            # bad input: 4xx naming the field; a duplicate: 409; nothing written
            bad = api.post("/api/v1/streams", json={"id": "x y", "url": "ftp://a/b"})
            assert bad.status_code == 422
            assert "id" in bad.text
            assert "url" in bad.text
            dup = api.post("/api/v1/streams", json=pattern)
            assert dup.status_code == 409, dup.text
            assert api.patch("/api/v1/streams/pat-1", json={"state": "stopped"}).status_code == 409
            assert api.get("/api/v1/cluster/streams/nope").status_code == 404

            # the control topic holds each spec keyed by its id
            records = consume_all(broker.bootstrap, CONTROL, expected=2, timeout_s=10)
            assert {r.key: json.loads(r.value)["url"] for r in records} == {
                b"cam-1": file_stream["url"],
                b"pat-1": pattern["url"],
            }

            # events carry the worker id (vtest.avi has people in most frames)
            events = tmp_path / "events.jsonl"
            assert wait_for(
                lambda: any(e["sensor"]["id"] == "cam-1" for e in events_of(events)), 60, 0.5
            )
            sources = {e["analyticsModule"]["source"] for e in events_of(events)}
            assert sources == {"w1"}

            # remove: a tombstone, then the owner stops it
            gone = api.delete("/api/v1/streams/pat-1")
            assert gone.status_code in (202, 204), gone.text
            assert wait_for(
                lambda: (
                    "pat-1" not in {s["id"] for s in api.get("/api/v1/streams").json()["streams"]}
                ),
                20,
                0.5,
            )
            assert api.get("/api/v1/cluster/streams/pat-1").status_code == 404
            assert api.delete("/api/v1/streams/pat-1").status_code == 404

            # DeepStream's REST and a Kafka command add through the control topic as well
            ds = json.loads((DATA / "add_file.json").read_text())
            ds["value"] |= {"camera_id": "ds-1", "camera_url": pattern["url"]}
            assert api.post("/api/v1/stream/add", json=ds).status_code == 200
            command = {"command": "add-stream", "stream": {**pattern, "id": "c2d-1"}}
            produce(broker.bootstrap, "vigil-commands", [json.dumps(command).encode()])
            assert wait_for(
                lambda: (
                    owners(api).get("ds-1") == ("w1", "running")
                    and owners(api).get("c2d-1") == ("w1", "running")
                ),
                60,
                0.5,
            ), owners(api)
            removal = json.loads((DATA / "remove.json").read_text())
            removal["value"]["camera_id"] = "ds-1"
            assert api.post("/api/v1/stream/remove", json=removal).status_code == 200
            remove = {"command": "remove-stream", "id": "c2d-1"}
            produce(broker.bootstrap, "vigil-commands", [json.dumps(remove).encode()])
            assert wait_for(lambda: set(owners(api)) == {"cam-1"}, 30, 0.5), owners(api)

        # A new worker process rebuilds the desired streams from the control topic alone.
        restarted = worker_config(broker.bootstrap, tmp_path, "w1")
        with (
            ServiceProcess(tmp_path, restarted) as svc,
            httpx.Client(base_url=svc.url, timeout=60) as api,
        ):
            assert wait_for(lambda: owners(api) == {"cam-1": ("w1", "running")}, 60, 0.5), owners(
                api
            )
