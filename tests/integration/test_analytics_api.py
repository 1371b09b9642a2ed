"""Analytics and DeepStream runtime-configuration calls against the real `vigil serve`, with
the real Triton running the exact synthetic detector on a rendered clip."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.scenes import DOOR
from tests.support.synthetic_detector import NAME, write_detector

pytestmark = pytest.mark.integration

CURL_FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "deepstream" / "config_nvdsanalytics.txt"


@pytest.fixture
def service(tmp_path: Path):
    repository = tmp_path / "repository"
    write_detector(repository, 320, 192)
    config = {
        "triton": {"model_repository": str(repository)},
        "model": {"name": NAME},
    }
    with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url, timeout=10) as api:
        yield svc, api


def _finished(api: httpx.Client, sid: str) -> bool:
    s = api.get(f"/api/v1/streams/{sid}").json()
    return s["state"] == "stopped" and s["frames_processed"] >= s["frames_decoded"] > 0


def test_analytics_counts_in_rest_and_prometheus_and_hot_reload(service, crossing_clip) -> None:
    _, api = service
    body = {"id": "cam", "url": crossing_clip.as_uri(), "analytics": {"lines": [DOOR]}}
    assert api.post("/api/v1/streams", json=body).status_code == 201
    assert wait_for(lambda: _finished(api, "cam"), 60)
    info = api.get("/api/v1/streams/cam/analytics").json()
    assert info["config"]["lines"][0]["name"] == "door"
    assert info["counts"]["lines"]["door"] == {"in": {"0": 1}, "out": {"0": 1}}
    metrics = api.get("/metrics").text
    assert (
        'vigil_line_crossings_total{class="person",direction="in",line="door",stream="cam"} 1.0'
        in metrics
    )

    # hot reload: the kept rule keeps its counts, a new one starts at zero, reset clears
    two = {"lines": [DOOR, {**DOOR, "name": "exit"}]}
    info = api.put("/api/v1/streams/cam/analytics", json=two).json()
    assert info["counts"]["lines"]["door"]["in"] == {"0": 1}
    assert info["counts"]["lines"]["exit"] == {"in": {}, "out": {}}
    info = api.put("/api/v1/streams/cam/analytics?reset_counts=true", json=two).json()
    assert info["counts"]["lines"]["door"] == {"in": {}, "out": {}}


BOWTIE = [[0, 0], [9, 9], [9, 0], [0, 9]]
OUTSIDE = {"name": "z", "polygon": [[0, 0], [3, 0], [0, 1]], "threshold": 2}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rois": [{"name": "a", "polygon": [[0, 0], [5, 5]]}]}, "polygon"),
        ({"rois": [{"name": "a", "polygon": BOWTIE}]}, "self-intersecting"),
        ({"coordinates": "normalized", "crowding": [OUTSIDE]}, "outside"),
        ({"lines": [{"name": "l", "line": [[4, 4], [4, 4]]}]}, "zero length"),
        ({"lines": [{"name": "l", "line": [[0, 0], [1, 1]]}], "typo": 1}, "typo"),
    ],
)
def test_bad_analytics_config_is_refused_naming_the_field_and_changes_nothing(
    service, crossing_clip, body, field
) -> None:
    _, api = service
    good = {"lines": [DOOR]}
    assert (
        api.post(
            "/api/v1/streams", json={"id": "cam", "url": crossing_clip.as_uri(), "analytics": good}
        ).status_code
        == 201
    )
    reply = api.put("/api/v1/streams/cam/analytics", json=body)
    assert reply.status_code == 422, reply.text
    assert field in reply.text
    assert api.get("/api/v1/streams/cam/analytics").json()["config"]["lines"][0]["name"] == "door"
    nan = api.put(
        "/api/v1/streams/cam/analytics",
        content=b'{"lines": [{"name": "l", "line": [[NaN, 0], [1, 1]]}]}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422
    assert "NaN" in nan.text
    assert api.put("/api/v1/streams/nope/analytics", json=good).status_code == 404


def test_deepstream_runtime_calls_as_its_readme_sends_them(service, crossing_clip) -> None:
    _, api = service
    assert (
        api.post("/api/v1/streams", json={"id": "cam", "url": crossing_clip.as_uri()}).status_code
        == 201
    )
    ok = "HTTP/1.1 200 OK"

    def post(path: str, body: dict) -> httpx.Response:
        return api.post(path, content=json.dumps(body), headers=CURL_FORM)

    roi = {"stream": {"stream_id": "0", "roi_count": 2, "roi": [
        {"roi_id": "0", "left": 10, "top": 10, "width": 100, "height": 100},
        {"roi_id": "1", "left": 150, "top": 50, "width": 100, "height": 100}]}}  # fmt: skip
    reply = post("/api/v1/roi/update", roi)
    assert reply.json() == {"status": ok, "reason": "ROI_UPDATE_SUCCESS"}
    rois = api.get("/api/v1/streams/cam/analytics").json()["config"]["rois"]
    assert [r["name"] for r in rois] == ["roi-0", "roi-1"]

    reply = post("/api/v1/infer/set-interval", {"stream": {"stream_id": "0", "interval": 2}})
    assert reply.json()["reason"] == "INFER_INTERVAL_UPDATE_SUCCESS"
    assert api.get("/api/v1/streams/cam").json()["inference_interval"] == 3
    reply = post(
        "/api/v1/inferserver/set-interval", {"stream": {"stream_id": "cam", "interval": 0}}
    )
    assert reply.status_code == 200
    assert api.get("/api/v1/streams/cam").json()["inference_interval"] == 1
    reply = post(
        "/api/v1/dec/drop-frame-interval", {"stream": {"stream_id": "0", "drop_frame_interval": 2}}
    )
    assert reply.json()["reason"] == "DROP_FRAME_INTERVAL_UPDATE_SUCCESS"
    assert api.get("/api/v1/streams/cam").json()["drop_frame_interval"] == 2
    reply = post("/api/v1/mux/batched-push-timeout", {"stream": {"batched_push_timeout": 40000}})
    assert reply.json()["reason"] == "BATCHED_PUSH_TIMEOUT_UPDATE_SUCCESS"
    ready = api.get("/api/v1/health/get-dsready-state").json()
    assert ready["health-info"] == {"ds-ready": "YES"}

    # what cannot be honoured is a clear 4xx, never a silent 200
    missing = post("/api/v1/infer/set-interval", {"stream": {"stream_id": "7", "interval": 1}})
    assert missing.status_code == 404
    assert "no stream" in missing.json()["reason"]
    bad_count = post("/api/v1/roi/update", {"stream": {**roi["stream"], "roi_count": 3}})
    assert bad_count.status_code == 422
    assert "roi_count" in bad_count.text
    encoder = post("/api/v1/enc/bitrate", {"stream": {"stream_id": "0", "bitrate": 2000000}})
    assert encoder.status_code == 404
    assert "not supported by Vigil" in encoder.json()["reason"]


def test_deepstream_analytics_config_file_imports_over_rest(service, crossing_clip) -> None:
    _, api = service
    assert (
        api.post("/api/v1/streams", json={"id": "cam", "url": crossing_clip.as_uri()}).status_code
        == 201
    )
    reply = api.put(
        "/api/v1/streams/cam/analytics/deepstream?source=1",
        content=SAMPLE.read_text(),
        headers={"content-type": "text/plain"},
    )
    assert reply.status_code == 200, reply.text
    config = reply.json()["config"]
    assert config["reference_size"] == [1920, 1080]
    assert [z["name"] for z in config["crowding"]] == ["OC"]
    bad = api.put(
        "/api/v1/streams/cam/analytics/deepstream?source=9",
        content=SAMPLE.read_text(),
        headers={"content-type": "text/plain"},
    )
    assert bad.status_code == 422
    assert "source" in bad.text
