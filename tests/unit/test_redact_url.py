"""redact_url: no credential from a camera URL reaches an error message or a log."""

from __future__ import annotations

import pytest

from vigil.sources.errors import SourceError
from vigil.sources.network import NetworkSource
from vigil.sources.urls import redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("rtsp://admin@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1"),
        ("rtsps://u:p@[::1]:8322/cam?channel=1", "rtsps://***@[::1]:8322/cam?channel=1"),
        ("rtsp://user:p%40ss%3Aword@cam.local/h264", "rtsp://***@cam.local/h264"),
        ("rtsp://user:p@ss@cam.local/h264", "rtsp://***@cam.local/h264"),
        (
            "http://cam/video.mjpg?user=admin&password=s3cret",
            "http://cam/video.mjpg?user=***&password=***",
        ),
        ("https://cdn/live.m3u8?token=abc&res=720", "https://cdn/live.m3u8?token=***&res=720"),
        ("https://cdn/x?API_KEY=k&Signature=s", "https://cdn/x?API_KEY=***&Signature=***"),
        ("rtsp://127.0.0.1:8554/cam", "rtsp://127.0.0.1:8554/cam"),
        ("http://cam/video.mjpg?res=720&fps=10", "http://cam/video.mjpg?res=720&fps=10"),
        ("rtsp://u:p@[::1/broken", "rtsp://***@[::1/broken"),
        ("cam.local:554", "cam.local:554"),
        ("admin:hunter2@cam.local/h264", "***@cam.local/h264"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["ftp://admin:hunter2@cam/x", "admin:hunter2@cam/x", "rtp://admin:hunter2@[::1/x"],
)
def test_network_source_when_scheme_unsupported_raises_without_credentials(url: str) -> None:
    with pytest.raises(SourceError, match="unsupported scheme") as caught:
        NetworkSource("cam", url)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in caught.value.url


@pytest.mark.parametrize(("open_s", "read_s"), [(0, 5), (10, 0), (-1, 5)])
def test_network_source_when_timeout_not_positive_raises(open_s: float, read_s: float) -> None:
    with pytest.raises(ValueError, match="timeouts must be positive"):
        NetworkSource("cam", "rtsp://h/x", open_timeout_s=open_s, read_timeout_s=read_s)


def test_network_source_before_open_frames_raises() -> None:
    source = NetworkSource("cam", "rtsp://admin:hunter2@h/x")
    with pytest.raises(SourceError, match="not open") as caught:
        next(source.frames())
    assert "hunter2" not in str(caught.value)
    source.close()
    source.close()
