"""`vigil serve` over HTTP: real service process, real Triton, real video."""

from __future__ import annotations

import signal
import tempfile

import httpx
import pytest

from tests.conftest import SAMPLE_VIDEO
from tests.integration.helpers import ServiceProcess, assert_clean, wait_for

pytestmark = pytest.mark.integration


DEEPSTREAM_MEDIA = "/opt/nvidia/deepstream/deepstream/samples/streams"


@pytest.fixture(scope="module")
def service(tmp_path_factory, reference_model):
    run_dir = tmp_path_factory.mktemp("service")
    svc = ServiceProcess(
        run_dir,
        {
            "sources": {
                "open_timeout_s": 2,
                "read_timeout_s": 2,
                # DeepStream's documented add body names a file in its samples directory
                "file_roots": [str(SAMPLE_VIDEO.parent), tempfile.gettempdir(), DEEPSTREAM_MEDIA],
            }
        },
        VIGIL_API__API_KEYS='["secret-key"]',
    )
    with svc:
        yield svc
    assert svc.proc.returncode == 128 + signal.SIGTERM, svc.output
    assert_clean(run_dir, svc.pid)


@pytest.fixture
def api(service):
    with httpx.Client(
        base_url=service.url, headers={"X-API-Key": "secret-key"}, timeout=10
    ) as client:
        yield client


def stream(api: httpx.Client, sid: str) -> dict:
    response = api.get(f"/api/v1/streams/{sid}")
    assert response.status_code == 200, response.text
    return response.json()


def test_stream_lifecycle_add_get_patch_delete(api, sample_video):
    url = sample_video.as_uri()
    created = api.post(
        "/api/v1/streams", json={"id": "life", "url": url, "name": "door", "max_fps": 20}
    )
    assert created.status_code == 201, created.text
    assert created.json()["state"] in ("starting", "running")
    assert wait_for(lambda: stream(api, "life")["frames_processed"] > 5, 60)
    assert any(s["id"] == "life" for s in api.get("/api/v1/streams").json()["streams"])

    stopped = api.patch("/api/v1/streams/life", json={"state": "stopped"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] == "stopped"
    again = api.patch("/api/v1/streams/life", json={"state": "stopped"})
    assert again.status_code == 409
    assert "already stopped" in again.json()["detail"]

    restarted = api.patch("/api/v1/streams/life", json={"state": "running", "name": "back door"})
    assert restarted.status_code == 200
    assert restarted.json()["name"] == "back door"
    assert api.delete("/api/v1/streams/life").status_code == 204
    assert api.get("/api/v1/streams/life").status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"id": "x1", "url": "not a url"}, "url", "whitespace"),
        ({"id": "x2", "url": "ftp://host/video"}, "url", "unsupported url scheme 'ftp'"),
        ({"id": "x3", "url": "rtsp:///nohost"}, "url", "needs a host"),
        ({"id": "x4", "url": "rtsp://host:99999/x"}, "url", "invalid port"),
        ({"id": "bad id!", "url": "test://pattern"}, "id", "pattern"),
        ({"id": "x5", "url": "test://pattern", "inference_interval": 0}, "inference_interval", ""),
        ({"id": "x6", "url": "test://pattern", "color": "red"}, "color", "Extra inputs"),
    ],
)
def test_add_stream_with_bad_input_is_422_naming_the_field(api, body, field, message):
    response = api.post("/api/v1/streams", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(field in e["loc"] for e in errors), errors
    assert any(message in e["msg"] for e in errors), errors


def test_duplicate_and_unknown_ids_are_409_and_404(api):
    assert (
        api.post("/api/v1/streams", json={"id": "dup", "url": "test://pattern"}).status_code == 201
    )
    try:
        second = api.post("/api/v1/streams", json={"id": "dup", "url": "test://pattern"})
        assert second.status_code == 409
        assert "already exists" in second.json()["detail"]
    finally:
        api.delete("/api/v1/streams/dup")
    for method in ("get", "delete"):
        response = getattr(api, method)("/api/v1/streams/nope")
        assert response.status_code == 404
        assert "nope" in response.json()["detail"]
    assert api.patch("/api/v1/streams/nope", json={"name": "x"}).status_code == 404


def test_unreachable_camera_is_reconnecting_with_reason_and_others_unaffected(api):
    api.post("/api/v1/streams", json={"id": "steady", "url": "test://pattern?fps=10"})
    api.post("/api/v1/streams", json={"id": "ghost", "url": "rtsp://127.0.0.1:9/nothing"})
    try:
        assert wait_for(lambda: stream(api, "ghost")["reconnects"] >= 2, 30)
        ghost = stream(api, "ghost")
        assert ghost["state"] == "reconnecting"
        assert "127.0.0.1:9" in ghost["last_error"]
        before = stream(api, "steady")["frames_processed"]
        assert wait_for(lambda: stream(api, "steady")["frames_processed"] > before + 5, 20)
        assert api.get("/api/v1/ready").status_code == 200
    finally:
        api.delete("/api/v1/streams/ghost")
        api.delete("/api/v1/streams/steady")


def test_credentials_in_urls_never_come_back(api):
    url = "rtsp://admin:hunter2@127.0.0.1:9/cam"
    created = api.post("/api/v1/streams", json={"id": "creds", "url": url})
    try:
        assert created.status_code == 201
        assert wait_for(lambda: stream(api, "creds")["last_error"], 30)
        text = api.get("/api/v1/streams").text + api.get("/metrics").text
        assert "hunter2" not in text
        assert "hunter2" not in created.text
    finally:
        api.delete("/api/v1/streams/creds")


def test_api_keys_guard_mutations(service):
    body = {"id": "auth", "url": "test://pattern"}
    assert httpx.post(f"{service.url}/api/v1/streams", json=body).status_code == 401
    wrong = httpx.post(f"{service.url}/api/v1/streams", json=body, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 403
    assert httpx.get(f"{service.url}/api/v1/streams").status_code == 200, "reads are open"


def test_health_ready_live_and_metrics(api):
    api.post("/api/v1/streams", json={"id": "metered", "url": "test://pattern?fps=10"})
    try:
        assert wait_for(lambda: stream(api, "metered")["frames_processed"] > 3, 30)
        assert api.get("/api/v1/live").json() == {"status": "ok"}
        ready = api.get("/api/v1/ready").json()
        assert ready["ready"] is True
        assert ready["model"] == "ssd_mobilenet_v2_coco"
        health = api.get("/api/v1/health").json()
        assert health["status"] == "ok"
        assert health["streams"]["running"] >= 1
        metrics = api.get("/metrics").text
        for name in (
            'vigil_stream_frames_total{stream="metered"}',
            'vigil_stream_fps{stream="metered"}',
            "vigil_batch_size_bucket",
            "vigil_triton_request_seconds_bucket",
            "vigil_frame_latency_seconds_bucket",
            'vigil_queue_depth{stream="metered"}',
            'vigil_stream_reconnects_total{stream="metered"}',
        ):
            assert name in metrics, name
    finally:
        api.delete("/api/v1/streams/metered")
    assert 'stream="metered"' not in api.get("/metrics").text, "removed streams leave no series"


def test_deepstream_documented_bodies_work_against_the_real_service(api):
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / "deepstream"
    add = (data / "add_file.json").read_bytes()
    remove = (data / "remove.json").read_bytes()
    # sent as DeepStream's documented curl sends them (form content type, raw JSON)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    added = api.post("/api/v1/stream/add", content=add, headers=headers)
    assert added.status_code == 200, added.text
    assert added.json()["reason"] == "STREAM_ADD_SUCCESS"
    info = api.get("/api/v1/stream/get-stream-info").json()
    assert info["reason"] == "GET_LIVE_STREAM_INFO_SUCCESS"
    assert any(c["camera_name"] for c in info["stream-info"]["stream-info"])
    removed = api.post("/api/v1/stream/remove", content=remove, headers=headers)
    assert removed.status_code == 200, removed.text
    assert removed.json()["reason"] == "STREAM_REMOVE_SUCCESS"
