"""The example plugin package, installed with pip, end to end: real Triton, real video, Kafka.

``examples/plugins/vigil-example-plugins`` holds a parser (``flat_detections``), a stage
(``zone_alert``) and a sink (``webhook``). The test installs it editable into this
environment (removed again afterwards), serves a model whose config names the parser (the
reference SSD with its outputs re-laid out as one tensor), and checks that the stage's
alerts reach the JSONL file, the Kafka topic and the webhook; that a per-stream stage added
over REST that fails on every 10th frame leaves the stream running with 90 % of its output;
and that bad plugin references are refused with a message naming them while the running
pipeline goes on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ROOT, ServiceProcess, run_vigil, wait_for
from tests.support.flat_model import NAME as FLAT_MODEL
from tests.support.flat_model import write_flat_ssd
from tests.support.kafka import TansuBroker, consume_all, require_kafka

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "examples" / "plugins" / "vigil-example-plugins"
PARSER_FILE = EXAMPLE / "src" / "vigil_example_plugins" / "parser.py"
TOPIC = "vigil-events"


@pytest.fixture(scope="module")
def example_plugins() -> Iterator[None]:
    """``pip install -e`` the example package (offline: no index, no build isolation)."""
    pip = [sys.executable, "-m", "pip"]
    install = [*pip, "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e"]
    done = subprocess.run(
        [*install, str(EXAMPLE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"pip install -e failed:\n{done.stdout}\n{done.stderr}"
    try:
        yield
    finally:
        subprocess.run(
            [*pip, "uninstall", "-y", "-q", "vigil-example-plugins"],
            capture_output=True,
            timeout=120,
            check=False,
        )


class Webhook:
    """A real HTTP server on a free port that keeps every JSON body POSTed to it, with
    the path it was posted to."""

    def __init__(self) -> None:
        received: list[tuple[str, list[dict]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                received.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _alerts(path: Path, rule: str) -> list[dict]:
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [
        e
        for e in events
        if e["event"]["type"] == "alert" and e["object"].get("analytics", {}).get("rule") == rule
    ]


def _stream(api: httpx.Client, stream_id: str) -> dict:
    return api.get(f"/api/v1/streams/{stream_id}").json()


def test_example_package_runs_end_to_end_through_triton_kafka_and_a_webhook(
    tmp_path, example_plugins, sample_video, reference_model
):
    require_kafka()
    parser_lines = len(PARSER_FILE.read_text().splitlines())
    assert parser_lines <= 30, f"the example parser has {parser_lines} lines"
    repo = tmp_path / "repo"
    write_flat_ssd(repo)
    events_path = tmp_path / "events.jsonl"
    with TansuBroker() as broker, Webhook() as hook:
        config = {
            "data_dir": str(tmp_path / "data"),
            # The parser is chosen by the model's config.pbtxt only (vigil.parser).
            "triton": {"model_repository": str(repo)},
            "model": {"name": FLAT_MODEL},
            "stages": [{"plugin": "zone_alert", "options": {"zone": [0.0, 0.0, 1.0, 1.0]}}],
            "sinks": [
                {"plugin": "webhook", "options": {"url": hook.url, "event_types": ["alert"]}}
            ],
            "kafka": {
                "bootstrap_servers": broker.bootstrap,
                "outbox": {"path": str(tmp_path / "outbox.db")},
            },
            "streams": [{"id": "cam", "url": sample_video.as_uri(), "max_fps": 10}],
        }
        with (
            ServiceProcess(tmp_path, config) as svc,
            httpx.Client(base_url=svc.url, timeout=10) as api,
        ):
            assert wait_for(lambda: len(_alerts(events_path, "no_helmet")) >= 2, 90), svc.log()[
                -3000:
            ]
            alerts = _alerts(events_path, "no_helmet")
            assert all("person" in a["object"] for a in alerts), alerts[0]
            assert all(a["object"]["id"] != "18446744073709551615" for a in alerts), "tracked"
            assert len({a["object"]["id"] for a in alerts}) == len(alerts), "once per track"

            # A per-stream stage over REST that fails on every 10th frame.
            flaky = {"plugin": "zone_alert", "options": {"fail_every": 10, "alert": "flaky"}}
            own_hook = {"plugin": "webhook", "options": {"url": hook.url + "/flaky"}}
            spec = {
                "id": "flaky",
                "url": sample_video.as_uri(),
                "max_fps": 10,
                "stages": [flaky],
                "sinks": [own_hook],
            }
            assert api.post("/api/v1/streams", json=spec).status_code == 201
            assert wait_for(lambda: _stream(api, "flaky").get("frames_processed", 0) >= 60, 90)
            assert _stream(api, "flaky")["state"] == "running"
            assert wait_for(lambda: _alerts(events_path, "flaky"), 30), "the 90 % still alert"
            health = api.get("/api/v1/health").json()
            plugins = {(p["kind"], p["name"]): p for p in health["plugins"]}
            assert plugins["parser", "flat_detections"]["version"] == "0.1.0"
            assert plugins["sink", "webhook"]["version"] == "0.1.0"
            stage = plugins["stage", "zone_alert"]
            assert stage["instances"] == 2
            processed = _stream(api, "flaky")["frames_processed"]
            # Each of the stage's two instances counts its own frames; the flaky one's
            # failures are one in ten of the frames it saw.
            assert stage["failures"] >= processed // 10 - 2, (stage, processed)
            metrics = api.get("/metrics").text
            assert 'vigil_plugin_seconds_count{plugin="zone_alert"}' in metrics
            assert 'vigil_plugin_failures_total{plugin="zone_alert"}' in metrics

            # Bad references: refused with a message naming them; nothing else changes.
            before = {s["id"] for s in api.get("/api/v1/streams").json()["streams"]}
            for stages, words in [
                ([{"plugin": "nope"}], "unknown stage plugin 'nope'"),
                ([{"plugin": "no_such_module:Stage"}], "cannot import module 'no_such_module'"),
                ([{"plugin": "json:JSONDecoder"}], "not a subclass of vigil.ext.FrameStage"),
                ([{"plugin": "zone_alert", "options": {"bogus": 1}}], "bad options"),
                ([{"plugin": "zone_alert", "options": {"zone": [0, 0, 2, 2]}}], "failed to start"),
            ]:
                body = {"id": "bad", "url": sample_video.as_uri(), "stages": stages}
                response = api.post("/api/v1/streams", json=body)
                assert response.status_code == 422, response.text
                assert words in response.json()["detail"], response.text
                assert "stages[0]" in response.json()["detail"]
            assert {s["id"] for s in api.get("/api/v1/streams").json()["streams"]} == before
            count = _stream(api, "flaky")["frames_processed"]
            assert wait_for(lambda: _stream(api, "flaky")["frames_processed"] > count, 20)
        delivered = [json.loads(m.value) for m in consume_all(broker.bootstrap, TOPIC, timeout_s=5)]
    kafka_alerts = {e["messageid"] for e in delivered if e["event"]["type"] == "alert"}
    jsonl_alerts = {e["messageid"] for e in _alerts(events_path, "no_helmet")}
    assert jsonl_alerts <= kafka_alerts, "every alert in the file reached Kafka"
    hooked = [e for path, batch in hook.received if path == "/hook" for e in batch]
    assert {e["event"]["type"] for e in hooked} == {"alert"}
    assert jsonl_alerts <= {e["messageid"] for e in hooked}, "and the webhook"
    own = [e for path, batch in hook.received if path == "/hook/flaky" for e in batch]
    assert own, "the stream's own sink got its events"
    assert {e["sensor"]["id"] for e in own} == {"flaky"}, "and only those"


def test_bad_plugin_in_settings_stops_the_start_with_its_name(tmp_path, example_plugins):
    code, out, _ = run_vigil(
        ["run", "--source", "test://pattern?fps=10", "--no-progress"],
        tmp_path,
        timeout_s=60,
        VIGIL_STAGES='[{"plugin": "zone_alert", "options": {"radius": 3}}]',
    )
    assert code == 2, out
    assert "stage plugin 'zone_alert': bad options" in out
    assert "radius" in out
