"""TestPatternSource: a synthetic live camera with a moving box, paced in real time."""

from __future__ import annotations

import time
from itertools import pairwise

import numpy as np
import pytest

from vigil.sources import testpattern
from vigil.sources.base import VideoInfo
from vigil.sources.errors import SourceError
from vigil.sources.testpattern import TestPatternSource


def test_testpattern_defaults() -> None:
    source = TestPatternSource("cam", "test://pattern")
    assert source.is_live
    assert source.open() == VideoInfo(width=640, height=360, fps=10.0, frame_count=None)
    frame = next(source.frames())
    assert frame.image.shape == (360, 640, 3)
    assert frame.image.dtype == np.uint8
    source.close()


def test_testpattern_when_frames_given_ends_after_that_many() -> None:
    source = TestPatternSource("cam", "test://pattern?width=64&height=48&fps=200&frames=7")
    assert source.open() == VideoInfo(width=64, height=48, fps=200.0, frame_count=7)
    frames = list(source.frames())
    assert [f.frame_number for f in frames] == list(range(7))
    assert [f.pts_s for f in frames] == pytest.approx([n / 200 for n in range(7)])
    assert all(f.stream_id == "cam" and f.image.shape == (48, 64, 3) for f in frames)
    assert all(a.capture_time_s <= b.capture_time_s for a, b in pairwise(frames))


class FakeClock:
    """``time.monotonic`` and ``time.sleep`` for the source: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_testpattern_is_paced_at_fps(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pace the source asks for, on a clock it does not share with a loaded machine:
    # five periods of 50 ms between six frames, neither fewer (a burst) nor more.
    clock = FakeClock()
    monkeypatch.setattr(testpattern, "time", clock)
    source = TestPatternSource("cam", "test://pattern?width=32&height=32&fps=20&frames=6")
    source.open()
    assert len(list(source.frames())) == 6
    assert clock.slept == pytest.approx([0.05] * 5)


def test_testpattern_on_the_real_clock_never_runs_ahead_of_fps() -> None:
    source = TestPatternSource("cam", "test://pattern?width=32&height=32&fps=20&frames=6")
    source.open()
    started = time.monotonic()
    frames = list(source.frames())
    elapsed_s = time.monotonic() - started
    # Lower bounds only: a loaded machine can make it slower, never faster.
    assert elapsed_s >= 0.24
    gaps = np.diff([f.decoded_monotonic_s for f in frames])
    assert gaps.min() > 0.03


def test_testpattern_when_consumer_is_slow_does_not_burst() -> None:
    source = TestPatternSource("cam", "test://pattern?width=32&height=32&fps=50&frames=4")
    source.open()
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 1:
            time.sleep(0.2)  # ten periods behind
    gaps = np.diff([f.decoded_monotonic_s for f in frames[1:]])
    assert gaps.min() > 0.01


def test_testpattern_box_moves_over_a_fixed_background() -> None:
    source = TestPatternSource("cam", "test://pattern?width=160&height=90&fps=240&frames=5")
    source.open()
    images = [f.image for f in source.frames()]
    for before, after in pairwise(images):
        changed = np.any(before != after, axis=2)
        assert changed.any(), "consecutive frames are identical"
        assert changed.mean() < 0.2, "more than the box changed"
    box = np.all(images[0] >= 250, axis=2)
    assert box.sum() == (90 // 5) ** 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("test://pattern?width=abc", "width='abc' is not int"),
        ("test://pattern?width=0", "width='0' out of range"),
        ("test://pattern?width=", "width='' is not int"),
        ("test://pattern?height=99999", "height='99999' out of range"),
        ("test://pattern?height=1.5", "height='1.5' is not int"),
        ("test://pattern?fps=0", "fps='0' out of range"),
        ("test://pattern?fps=-5", "fps='-5' out of range"),
        ("test://pattern?fps=nan", "fps='nan' out of range"),
        ("test://pattern?fps=inf", "fps='inf' out of range"),
        ("test://pattern?frames=-1", "frames='-1' out of range"),
        ("test://pattern?frames=ten", "frames='ten' is not int"),
        ("test://pattern?colour=red", "unknown parameter 'colour'"),
        ("test://noise", "expected test://pattern"),
        ("rtsp://pattern", "expected test://pattern"),
        ("test://pattern/extra", "expected test://pattern"),
    ],
)
def test_testpattern_when_url_invalid_raises_naming_it(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message.replace("?", r"\?")) as caught:
        TestPatternSource("cam", url)
    assert caught.value.url == url


def test_testpattern_before_open_frames_raises() -> None:
    source = TestPatternSource("cam", "test://pattern")
    with pytest.raises(SourceError, match="not open"):
        next(source.frames())


def test_testpattern_close_is_idempotent_and_reopen_works() -> None:
    source = TestPatternSource("cam", "test://pattern?width=32&height=32&fps=100&frames=2")
    source.open()
    source.close()
    source.close()
    with pytest.raises(SourceError, match="not open"):
        next(source.frames())
    source.open()
    assert len(list(source.frames())) == 2
