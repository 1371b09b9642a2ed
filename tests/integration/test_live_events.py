"""``GET /api/v1/events/live`` against a real `vigil serve`: Server-Sent Events from the event
path (real Triton, the exact synthetic detector on a rendered clip), the stream filter, the
subscriber cap, clients leaving, and a shutdown with a client still connected."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.scenes import Mover, Scene, render
from tests.support.synthetic_detector import NAME, write_detector

pytestmark = pytest.mark.integration


@pytest.fixture
def service(tmp_path: Path):
    repository = tmp_path / "repository"
    write_detector(repository, 320, 192)
    clip = tmp_path / "walk.mp4"
    render(
        Scene(duration_s=60, movers=[Mover(0, (16, 40), [(0.0, 20, 20), (60.0, 280, 20)])]), clip
    )
    config = {
        "data_dir": str(tmp_path / "data"),
        "triton": {"model_repository": str(repository)},
        "model": {"name": NAME},
        "events": {"jsonl_path": None, "live_max_subscribers": 2},
    }
    with ServiceProcess(tmp_path, config) as svc, httpx.Client(base_url=svc.url, timeout=30) as api:
        for sid in ("a", "b"):
            body = {"id": sid, "url": clip.as_uri(), "max_fps": 10}
            assert api.post("/api/v1/streams", json=body).status_code == 201
        yield svc, api


def _read_events(response: httpx.Response, count: int) -> list[dict]:
    """The first ``count`` events of an open feed (comments and other messages skipped)."""
    found: list[dict] = []
    for line in response.iter_lines():
        if line.startswith("data: {") and '"dropped"' not in line[:20]:
            found.append(json.loads(line.removeprefix("data: ")))
            if len(found) == count:
                break
    return found


def _subscribers(api: httpx.Client) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith("vigil_live_event_subscribers "):
            return float(line.split()[1])
    raise AssertionError("vigil_live_event_subscribers is not exported")


def test_feed_streams_the_events_of_one_or_every_stream(service) -> None:
    _, api = service
    with api.stream("GET", "/api/v1/events/live") as everything:
        assert everything.status_code == 200
        assert everything.headers["content-type"].startswith("text/event-stream")
        events = _read_events(everything, 30)
    assert {e["sensor"]["id"] for e in events} == {"a", "b"}
    assert all(e["mdsversion"] == "1.0" and e["object"]["person"] for e in events)

    with api.stream("GET", "/api/v1/events/live?stream_id=b") as one:
        assert {e["sensor"]["id"] for e in _read_events(one, 10)} == {"b"}

    unknown = api.get("/api/v1/events/live?stream_id=nope")
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["detail"]
    bad = api.get("/api/v1/events/live?stream_id=bad id")
    assert bad.status_code == 422
    assert "stream_id" in bad.text


def test_subscriber_cap_and_clients_that_leave_free_their_place(service) -> None:
    _, api = service
    with (
        api.stream("GET", "/api/v1/events/live") as first,
        api.stream("GET", "/api/v1/events/live") as second,
    ):
        assert first.status_code == second.status_code == 200
        assert wait_for(lambda: _subscribers(api) == 2, 10)
        refused = api.get("/api/v1/events/live")
        assert refused.status_code == 503
        assert "events.live_max_subscribers" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "5"
    # both left: their places are free again
    assert wait_for(lambda: _subscribers(api) == 0, 20), _subscribers(api)
    with api.stream("GET", "/api/v1/events/live") as again:
        assert again.status_code == 200
        assert _read_events(again, 1)


def test_service_stops_promptly_with_a_client_connected(service) -> None:
    svc, api = service
    ended = threading.Event()

    def follow() -> None:
        try:
            with httpx.stream("GET", f"{svc.url}/api/v1/events/live", timeout=60) as feed:
                for _ in feed.iter_lines():
                    pass
        except httpx.HTTPError:
            pass
        ended.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert wait_for(lambda: _subscribers(api) == 1, 10)
    assert svc.stop(signal.SIGTERM, timeout_s=30) == 128 + signal.SIGTERM, svc.output[-3000:]
    assert svc.stopped_how == "sigterm"
    assert ended.wait(10), "the feed did not end with the service"
    reader.join(5)
    svc.assert_clean_exit()
