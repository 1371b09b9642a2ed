"""NetworkSource against a real RTSP camera (GStreamer's RTSP server in a subprocess).

Every camera is stopped on every exit path (fixtures), and each test closes its sources.
Measured times are printed; see them with ``pytest -s`` or ``-rP``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator

import pytest

from tests.support.process import free_port
from tests.support.rtsp import RtspCamera, rtsp_server_available
from vigil.sources.base import VideoInfo
from vigil.sources.errors import SourceError
from vigil.sources.network import NetworkSource

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 2.0
OPEN_TIMEOUT_S = 3.0
# Allowance for scheduling on a loaded 2-core machine.
MARGIN_S = 1.0

SourceFactory = Callable[..., NetworkSource]


@pytest.fixture(scope="module", autouse=True)
def _rtsp_server_installed() -> None:
    reason = rtsp_server_available()
    if reason:
        pytest.fail(f"RTSP test camera unavailable: {reason}")


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    """A started test-pattern camera (640x360, 10 fps, H.264), stopped however the test ends."""
    cam = RtspCamera()
    try:
        cam.start()
        yield cam
    finally:
        cam.stop()
        assert not cam.running


@pytest.fixture
def make_source() -> Iterator[SourceFactory]:
    """Builds NetworkSources with short timeouts and closes them all at the end."""
    sources: list[NetworkSource] = []

    def make(url: str, **kwargs: float) -> NetworkSource:
        kwargs.setdefault("open_timeout_s", OPEN_TIMEOUT_S)
        kwargs.setdefault("read_timeout_s", READ_TIMEOUT_S)
        source = NetworkSource("cam", url, **kwargs)
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


def read_until_error(source: NetworkSource, frames: Iterator) -> tuple[SourceError, float]:
    """Drain ``frames`` until it raises; returns the error and how long that took."""
    started = time.monotonic()
    try:
        for _ in frames:
            assert time.monotonic() - started < 30, "frames() never failed"
    except SourceError as error:
        return error, time.monotonic() - started
    pytest.fail("frames() of a live source ended without SourceError")


def open_error(source: NetworkSource) -> tuple[SourceError, float]:
    """Open ``source``, which must fail; returns the error and how long that took."""
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        source.open()
    return caught.value, time.monotonic() - started


def test_network_source_yields_rgb_frames_of_camera_size(camera, make_source) -> None:
    source = make_source(camera.url)
    assert source.is_live

    started = time.monotonic()
    info = source.open()
    open_s = time.monotonic() - started

    assert info == VideoInfo(width=640, height=360, fps=10.0, frame_count=None)
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 10:
            break
    print(f"\nopen {open_s:.3f} s; 10 frames after {time.monotonic() - started:.2f} s")
    assert [f.frame_number for f in frames] == list(range(10))
    assert all(f.image.shape == (360, 640, 3) and f.stream_id == "cam" for f in frames)
    # Live pace: 10 frames at 10 fps, not a burst of stale frames read while opening.
    assert frames[-1].decoded_monotonic_s - frames[0].decoded_monotonic_s > 0.6
    # FFmpeg knows no timestamp for the very first RTP packet; the others have one.
    pts = [f.pts_s for f in frames[1:]]
    assert None not in pts
    assert pts == sorted(pts)
    assert source.decode_errors == 0


@pytest.mark.parametrize("codec", ["h265", "mjpeg"])
def test_network_source_decodes_other_codecs(codec, make_source) -> None:
    with RtspCamera(codec=codec, width=320, height=240) as cam:
        source = make_source(cam.url)
        assert source.open().width == 320
        frames = source.frames()
        shapes = {next(frames).image.shape for _ in range(5)}
    assert shapes == {(240, 320, 3)}


def test_network_source_when_camera_killed_raises_disconnected(camera, make_source) -> None:
    source = make_source(camera.url)
    source.open()
    frames = source.frames()
    for _ in range(3):
        next(frames)

    camera.kill()
    error, detect_s = read_until_error(source, frames)

    print(f"\nkill noticed after {detect_s:.3f} s")
    assert error.reason == "stream ended (disconnected)"
    assert detect_s < 3.0


def test_network_source_reopens_after_camera_restart(camera, make_source) -> None:
    first = make_source(camera.url)
    first.open()
    frames = first.frames()
    next(frames)
    old_pid = camera.pid
    camera.kill()
    read_until_error(first, frames)
    first.close()

    started = time.monotonic()
    camera.restart()
    restart_s = time.monotonic() - started
    assert camera.pid != old_pid
    second = make_source(camera.url)
    started = time.monotonic()
    info = second.open()
    frame = next(second.frames())
    reopen_s = time.monotonic() - started

    print(f"\nserver restart {restart_s:.3f} s; open + first frame {reopen_s:.3f} s")
    assert (info.width, info.height) == (640, 360)
    assert frame.frame_number == 0
    assert reopen_s < OPEN_TIMEOUT_S


def test_network_source_when_camera_frozen_raises_within_read_timeout(camera, make_source) -> None:
    source = make_source(camera.url)
    source.open()
    frames = source.frames()
    for _ in range(3):
        next(frames)

    camera.freeze()  # the camera fixture thaws and stops it whatever happens
    error, detect_s = read_until_error(source, frames)

    print(f"\nfreeze noticed after {detect_s:.3f} s (read_timeout_s={READ_TIMEOUT_S:g})")
    assert error.reason == f"timed out: no data for {READ_TIMEOUT_S:g} s"
    assert READ_TIMEOUT_S - 0.5 <= detect_s < READ_TIMEOUT_S + MARGIN_S
    # close() must not wait for the frozen camera's answer (to RTSP TEARDOWN): such a wait
    # would end only when the read timeout interrupts it.
    started = time.monotonic()
    source.close()
    close_s = time.monotonic() - started
    print(f"close() on the frozen camera took {close_s:.3f} s")
    assert close_s < READ_TIMEOUT_S, "close() waited for the frozen camera"


def test_network_source_open_when_camera_frozen_times_out(camera, make_source) -> None:
    camera.freeze()  # the kernel still accepts the connection; nothing answers
    source = make_source(camera.url, open_timeout_s=1.5)

    error, elapsed_s = open_error(source)

    print(f"\nopen on a frozen camera failed after {elapsed_s:.3f} s")
    assert error.reason == "timed out after 1.5 s"
    assert elapsed_s < 1.5 + MARGIN_S


def test_network_source_open_when_nothing_listens_fails_fast(make_source) -> None:
    source = make_source(f"rtsp://127.0.0.1:{free_port()}/cam")

    error, elapsed_s = open_error(source)

    print(f"\nopen with nothing listening failed after {elapsed_s:.3f} s")
    # Fails on the refusal, not by waiting out open_timeout_s (the reason says which).
    assert error.reason == "cannot connect: Connection refused"
    assert elapsed_s < OPEN_TIMEOUT_S


def test_network_source_open_when_mount_unknown_names_server_answer(camera, make_source) -> None:
    source = make_source(camera.url.replace("/cam", "/nope"))
    with pytest.raises(SourceError, match=r"cannot connect: .*404"):
        source.open()


def test_network_source_redacts_credentials_in_errors(camera, make_source) -> None:
    secret_url = f"rtsp://admin:hunter2@127.0.0.1:{camera.port}/cam"
    refused_url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/cam"

    refused = make_source(refused_url)
    with pytest.raises(SourceError) as open_error:
        refused.open()
    # The camera has no authentication; the credentials are accepted and ignored.
    live = make_source(secret_url)
    live.open()
    frames = live.frames()
    next(frames)
    camera.kill()
    read_error, _ = read_until_error(live, frames)

    assert open_error.value.reason == "cannot connect: Connection refused"
    for error in (open_error.value, read_error):
        # FFmpeg's own exception quotes the URL: it must not be chained into tracebacks.
        shown = "".join(traceback.format_exception(error))
        assert "hunter2" not in shown
        assert "admin" not in shown
        assert error.url.startswith("rtsp://***@127.0.0.1:")
