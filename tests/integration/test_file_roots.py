"""The real service's front door: a client's file stream outside `sources.file_roots` is refused
(403 over REST and DeepStream's API, through '..' and links too; inside, it runs), and a
public address without API keys is refused at start."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from tests.integration.helpers import (
    ServiceProcess,
    assert_clean,
    processes_mentioning,
    run_vigil,
)

pytestmark = pytest.mark.integration


def deepstream_add(api: httpx.Client, camera_id: str, url: str) -> httpx.Response:
    value = {"camera_id": camera_id, "camera_url": url, "change": "camera_add"}
    body = {"key": "sensor", "value": value}
    return api.post(
        "/api/v1/stream/add",
        content=json.dumps(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def test_file_streams_from_clients_stay_under_file_roots(tmp_path, short_clip, reference_model):
    media, outside = tmp_path / "media", tmp_path / "outside"
    media.mkdir()
    outside.mkdir()
    shutil.copy(short_clip, media / "clip.mp4")
    shutil.copy(short_clip, outside / "secret.mp4")
    (media / "link.mp4").symlink_to(outside / "secret.mp4")
    refused = {
        "absolute": "file:///etc/passwd",
        "dotdot": f"{media.as_uri()}/../outside/secret.mp4",
        "symlink": (media / "link.mp4").as_uri(),
    }
    config = {"sources": {"file_roots": [str(media)]}}
    with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url, timeout=10) as api:
        for name, url in refused.items():
            reply = api.post("/api/v1/streams", json={"id": name, "url": url})
            assert reply.status_code == 403, (name, reply.text)
            assert reply.json()["detail"].startswith("url: ")
            assert "sources.file_roots" in reply.json()["detail"]
            ds = deepstream_add(api, name, url)
            assert ds.status_code == 403, (name, ds.text)
            assert "camera_url" in ds.json()["reason"]
        assert api.get("/api/v1/streams").json()["streams"] == []
        ok = api.post("/api/v1/streams", json={"id": "ok", "url": (media / "clip.mp4").as_uri()})
        assert ok.status_code == 201, ok.text
        assert api.get("/api/v1/streams/ok").json()["state"] in ("starting", "running", "ended")


def test_serve_on_a_public_address_without_keys_is_refused_at_start(tmp_path, reference_model):
    code, out, pid = run_vigil(["serve", "--host", "0.0.0.0", "--port", "0"], tmp_path)
    assert code == 2, out
    assert "refusing to serve the API on 0.0.0.0" in out
    assert "VIGIL_API__API_KEYS" in out
    assert "starting Triton" not in out, "refused before Triton starts"
    assert not processes_mentioning(str(tmp_path))
    assert_clean(tmp_path, pid)
