"""The live view against the real `vigil serve`: real Triton running the exact synthetic
detector, real MJPEG bytes parsed and decoded with OpenCV."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.scenes import Mover, Scene, render
from tests.support.synthetic_detector import NAME, write_detector
from vigil.osd import class_colour

pytestmark = pytest.mark.integration

# A green object (the detector's class 0, "person") standing still at a known place.
STILL_BOX = (100, 60, 140, 140)  # x1, y1, x2, y2 in the 320 × 192 source
MOVING = "test://pattern?width=320&height=192&fps=10"
NO_OVERLAY_BUT_BOXES = {"labels": "false", "timestamp": "false", "zones": "false"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    base = tmp_path_factory.mktemp("live")
    repository = base / "repository"
    write_detector(repository, 320, 192)
    config = {
        "triton": {"model_repository": str(repository)},
        "model": {"name": NAME},
        "live": {"snapshot_timeout_s": 2, "max_viewers_per_stream": 2, "max_fps": 20},
    }
    with ServiceProcess(base, config) as svc:
        yield svc


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x1, y1, x2, y2 = STILL_BOX
    scene = Scene(
        fps=10,
        duration_s=60,
        movers=[Mover(1, (x2 - x1, y2 - y1), [(0.0, x1, y1), (60.0, x1, y1)])],
    )
    path = tmp_path_factory.mktemp("clips") / "still.mp4"
    render(scene, path)
    return path


@pytest.fixture
def api(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=15) as client:
        yield client
        for stream in client.get("/api/v1/streams").json()["streams"]:
            client.delete(f"/api/v1/streams/{stream['id']}")


def _add(api: httpx.Client, sid: str, url: str, **extra: object) -> None:
    reply = api.post("/api/v1/streams", json={"id": sid, "url": url, **extra})
    assert reply.status_code == 201, reply.text
    assert wait_for(lambda: api.get(f"/api/v1/streams/{sid}").json()["frames_processed"] > 3, 60)


def _viewers(api: httpx.Client) -> float:
    found = re.search(r"^vigil_live_viewers (\S+)$", api.get("/metrics").text, re.M)
    assert found, "no vigil_live_viewers gauge"
    return float(found.group(1))


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


class Parts:
    """Reads ``multipart/x-mixed-replace; boundary=frame`` parts off a streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.iter_bytes()
        self.buffer = b""
        self.headers: dict[str, str] = {}

    def _fill(self) -> bool:
        chunk = next(self.chunks, None)
        if chunk is None:
            return False
        self.buffer += chunk
        return True

    def next(self) -> tuple[bytes, float] | None:
        """The next JPEG and when it arrived, or None when the stream ended."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                return None
        if self.buffer.startswith(b"--frame\r\n"):
            self.buffer = self.buffer[len(b"--frame\r\n") :]
            return self.next()
        head, rest = self.buffer.split(b"\r\n\r\n", 1)
        self.headers = headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        assert headers["Content-Type"] == "image/jpeg"
        length = int(headers["Content-Length"])
        while len(rest) < length + 2:
            if not self._fill():
                return None
            rest = self.buffer.split(b"\r\n\r\n", 1)[1]
        jpeg, self.buffer = rest[:length], rest[length + 2 :]
        return jpeg, time.monotonic()


def test_mjpeg_sends_fresh_frames_at_the_asked_rate_and_a_leaving_viewer_is_freed(api) -> None:
    _add(api, "moving", MOVING)
    with api.stream("GET", "/api/v1/streams/moving/live.mjpeg", params={"fps": 4}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        parts = Parts(reply)
        got, numbers = [], []
        for _ in range(4):
            got.append(parts.next())
            numbers.append(int(parts.headers["X-Frame-Number"]))
            assert 0 < time.time() - float(parts.headers["X-Capture-Time"]) < 5  # fresh
        assert all(got)
        assert numbers == sorted(set(numbers))  # each frame once, in order
        images = [_decode(jpeg) for jpeg, _ in got]  # type: ignore[misc]
        assert images[0].shape == (192, 320, 3)  # the source's size (below default_height)
        for a, b in itertools.pairwise(images):  # the box moves: frames differ
            assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5
        gaps = [b[1] - a[1] for a, b in itertools.pairwise(got)]  # type: ignore[index]
        assert min(gaps) > 0.12, gaps  # at most 4 a second (250 ms, less jitter)
        assert _viewers(api) == 1
    # the client went away: its watch ends and nothing is kept for the stream any more
    assert wait_for(lambda: _viewers(api) == 0, 10)
    metrics = api.get("/metrics").text
    assert re.search(r"^vigil_live_frames_rendered_total [1-9]", metrics, re.M)


def test_snapshot_has_the_class_colour_where_the_box_is(api, still_clip) -> None:
    _add(api, "still", still_clip.as_uri(), max_fps=10)
    x1, y1, x2, y2 = STILL_BOX
    scale = 4  # 192 → 768 rows: boxes 4 px thick
    reply = api.get(
        "/api/v1/streams/still/snapshot.jpg", params={"height": 192 * scale, **NO_OVERLAY_BUT_BOXES}
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/jpeg"
    image = _decode(reply.content)
    assert image.shape == (768, 1280, 3)
    expected = np.array(class_colour(0)[::-1])  # BGR
    ymid = (y1 + y2) // 2 * scale
    for x, y in ((x1 * scale, ymid), ((x1 + x2) // 2 * scale, y1 * scale)):
        assert np.abs(image[y, x].astype(int) - expected).max() < 60, (x, y, image[y, x])
    inside = image[ymid, (x1 + x2) // 2 * scale].astype(int)  # the object's own green
    assert inside[1] > 180
    assert inside[2] < 90
    plain = _decode(
        api.get(
            "/api/v1/streams/still/snapshot.jpg",
            params={"height": 192 * scale, "bbox": "false", **NO_OVERLAY_BUT_BOXES},
        ).content
    )
    assert np.abs(plain[ymid, x1 * scale].astype(int) - expected).max() > 100  # no box drawn


def test_tiled_views_place_streams_in_a_grid_with_placeholders(api, still_clip) -> None:
    _add(api, "still", still_clip.as_uri(), max_fps=10)
    _add(api, "moving", MOVING)
    api.patch("/api/v1/streams/moving", json={"state": "stopped"})  # no frames from now on
    time.sleep(1)  # a batch still in flight when it stopped is done by then
    reply = api.get("/api/v1/live/tiled.jpg", params={"streams": "still,moving", "height": 360})
    assert reply.status_code == 200, reply.text
    picture = _decode(reply.content)
    assert picture.shape == (360, 640, 3)  # 16:9, one row of two tiles (deepstream-app's grid)
    left, right = picture[:, :320], picture[:, 320:]
    assert (np.abs(right[60:120, 40:280].astype(int) - 48) < 12).mean() > 0.8  # placeholder
    green = (left[:, :, 1] > 180) & (left[:, :, 2] < 90)
    assert green.sum() > 500  # the still object is in the left tile

    every = api.get("/api/v1/live/tiled.jpg")  # default: every stream
    assert every.status_code == 200
    with api.stream("GET", "/api/v1/live/tiled.mjpeg", params={"streams": "still"}) as live:
        assert live.status_code == 200
        part = Parts(live).next()
        assert part is not None
        assert _decode(part[0]).shape == (720, 1280, 3)  # default_height, 16:9
    assert wait_for(lambda: _viewers(api) == 0, 10)


def test_removing_a_watched_stream_ends_its_mjpeg_and_frees_it(api) -> None:
    _add(api, "gone", MOVING)
    with api.stream("GET", "/api/v1/streams/gone/live.mjpeg") as reply:
        parts = Parts(reply)
        assert parts.next() is not None
        assert api.delete("/api/v1/streams/gone").status_code == 204
        start = time.monotonic()
        while parts.next() is not None:  # frames already on their way, then the end
            assert time.monotonic() - start < 10, "the stream did not end"
    assert wait_for(lambda: _viewers(api) == 0, 10)
    assert api.get("/api/v1/streams/gone/snapshot.jpg").status_code == 404


def test_limits_and_a_stream_without_frames(api) -> None:
    _add(api, "busy", MOVING)
    url = "/api/v1/streams/busy/live.mjpeg"
    with api.stream("GET", url) as one, api.stream("GET", url) as two:
        assert one.status_code == two.status_code == 200
        # (kept in variables: a dropped reader closes its response, and the viewer leaves)
        reading_one, reading_two = Parts(one), Parts(two)
        assert reading_one.next() is not None
        assert reading_two.next() is not None
        third = api.get(url)
        assert third.status_code == 429
        assert "max_viewers_per_stream" in third.json()["detail"]
    api.patch("/api/v1/streams/busy", json={"state": "stopped"})
    start = time.monotonic()
    late = api.get("/api/v1/streams/busy/snapshot.jpg")
    assert late.status_code == 409, late.text
    assert "stopped" in late.json()["detail"]
    assert 1.5 < time.monotonic() - start < 10  # live.snapshot_timeout_s, bounded


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/streams/s/live.mjpeg", {"fps": "0"}, "fps"),
        ("/api/v1/streams/s/live.mjpeg", {"fps": "fast"}, "fps"),
        ("/api/v1/streams/s/live.mjpeg", {"fps": "nan"}, "fps"),
        ("/api/v1/streams/s/live.mjpeg", {"fps": "25"}, "max_fps"),
        ("/api/v1/streams/s/live.mjpeg", {"height": "8"}, "height"),
        ("/api/v1/streams/s/snapshot.jpg", {"height": "tall"}, "height"),
        ("/api/v1/streams/s/snapshot.jpg", {"bbox": "maybe"}, "bbox"),
        ("/api/v1/live/tiled.jpg", {"streams": ","}, "streams"),
        ("/api/v1/live/tiled.mjpeg", {"streams": ",".join("abcdefghijklmnopq")}, "streams"),
    ],
)
def test_bad_query_is_422_naming_the_field(api, path, params, field) -> None:
    _add(api, "s", MOVING)
    reply = api.get(path, params=params)
    assert reply.status_code == 422, reply.text
    assert field in reply.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/streams/nope/live.mjpeg",
        "/api/v1/streams/nope/snapshot.jpg",
        "/api/v1/live/tiled.jpg?streams=nope",
        "/api/v1/live/tiled.mjpeg?streams=nope",
    ],
)
def test_unknown_stream_is_404(api, path) -> None:
    reply = api.get(path)
    assert reply.status_code == 404, reply.text
    assert "nope" in reply.json()["detail"]
