"""`pipeline.max_streams`: the stream past the limit is refused with 429 and the reason, over
Vigil's REST API and DeepStream's, and the running streams are not disturbed."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.helpers import ServiceProcess

pytestmark = pytest.mark.integration


def test_stream_past_max_streams_is_429_with_the_reason(tmp_path, reference_model):
    config = {"pipeline": {"max_streams": 2}}
    with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url, timeout=10) as api:
        for sid in ("a", "b"):
            body = {"id": sid, "url": "test://pattern?fps=5"}
            assert api.post("/api/v1/streams", json=body).status_code == 201
        refused = api.post("/api/v1/streams", json={"id": "c", "url": "test://pattern?fps=5"})
        assert refused.status_code == 429
        assert "pipeline.max_streams = 2" in refused.json()["detail"]
        deepstream = api.post(
            "/api/v1/stream/add",
            content=json.dumps(
                {
                    "key": "sensor",
                    "value": {
                        "camera_id": "c",
                        "camera_url": "test://pattern",
                        "change": "camera_add",
                    },
                }
            ),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert deepstream.status_code == 429
        assert "STREAM_ADD_FAIL" in deepstream.json()["reason"]
        assert [s["id"] for s in api.get("/api/v1/streams").json()["streams"]] == ["a", "b"]
        assert api.delete("/api/v1/streams/a").status_code == 204
        again = api.post("/api/v1/streams", json={"id": "c", "url": "test://pattern?fps=5"})
        assert again.status_code == 201


def test_the_501st_stream_with_max_streams_500_is_429(tmp_path, reference_model):
    # 500 real streams, cheap ones: a tiny test pattern at 1 frame/s, every 100th inferred.
    url = "test://pattern?width=64&height=64&fps=1"
    config = {"pipeline": {"max_streams": 500}}
    with (
        ServiceProcess(tmp_path, config) as svc,
        httpx.Client(base_url=svc.url, timeout=30) as api,
    ):
        for i in range(500):
            body = {"id": f"s{i}", "url": url, "inference_interval": 100}
            assert api.post("/api/v1/streams", json=body).status_code == 201, i
        refused = api.post("/api/v1/streams", json={"id": "s500", "url": url})
        assert refused.status_code == 429
        assert "pipeline.max_streams = 500" in refused.json()["detail"]
        assert len(api.get("/api/v1/streams").json()["streams"]) == 500
