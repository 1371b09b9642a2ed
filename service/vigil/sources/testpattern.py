"""A synthetic live camera: a bright box moving over a gradient, made with numpy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from vigil.frame import Frame
from vigil.sources.base import Source, VideoInfo
from vigil.sources.errors import SourceError

SCHEME = "test"
PATTERN = "pattern"
MAX_SIDE_PX = 7680
MIN_SIDE_PX = 16
MAX_FPS = 240.0


class TestPatternSource(Source):
    """Endless (or counted) synthetic frames, paced in real time like a camera.

    The picture is a colour gradient with a white box that bounces across it, so a
    detector or a motion filter sees something change in every frame. Frames are made on
    demand: a consumer that falls behind gets the next frame at once, without a burst to
    catch up, as a real camera drops what nobody reads.

    URL form (every parameter optional)::

        test://pattern?width=640&height=360&fps=10&frames=0

    ``frames=0`` means endless; otherwise ``frames()`` ends normally after that many.

    Args:
        stream_id: Id of the stream.
        url: The ``test://pattern`` URL.

    Raises:
        SourceError: the URL is not ``test://pattern``, or a parameter is unknown or out of
            range (the message names it).
    """

    # pytest would otherwise try to collect this class from test modules that import it.
    __test__ = False
    is_live = True

    def __init__(self, stream_id: str, url: str) -> None:
        super().__init__(stream_id, url)
        self.width, self.height, self.fps, self.frame_limit = _parse(url)
        self._background: np.ndarray | None = None

    def open(self) -> VideoInfo:
        """Prepare the background; never fails."""
        self._background = _gradient(self.width, self.height)
        return VideoInfo(
            width=self.width,
            height=self.height,
            fps=self.fps,
            frame_count=self.frame_limit or None,
        )

    def frames(self) -> Iterator[Frame]:
        """Frames at ``fps`` until ``frames`` have been made (forever if 0).

        Raises:
            SourceError: the source is not open.
        """
        if self._background is None:
            raise SourceError(self.url, "source is not open")
        background = self._background
        period_s = 1.0 / self.fps
        due = time.monotonic()
        number = 0
        while self.frame_limit == 0 or number < self.frame_limit:
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elif now - due > period_s:
                due = now  # behind: carry on from now rather than burst
            image = _draw_box(background, number)
            yield Frame.captured_now(self.stream_id, number, number * period_s, image)
            number += 1
            due += period_s

    def close(self) -> None:
        """Release the background; idempotent."""
        self._background = None


def _parse(url: str) -> tuple[int, int, float, int]:
    parts = urlsplit(url)
    if parts.scheme != SCHEME or parts.netloc != PATTERN or parts.path not in ("", "/"):
        raise SourceError(url, f"expected {SCHEME}://{PATTERN}?width=..&height=..&fps=..")
    values = {"width": "640", "height": "360", "fps": "10", "frames": "0"}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in values:
            raise SourceError(url, f"unknown parameter {key!r}; known: {', '.join(values)}")
        values[key] = value
    width = _number(url, "width", values["width"], int, MIN_SIDE_PX, MAX_SIDE_PX)
    height = _number(url, "height", values["height"], int, MIN_SIDE_PX, MAX_SIDE_PX)
    fps = _number(url, "fps", values["fps"], float, 0.0, MAX_FPS, low_inclusive=False)
    frames = _number(url, "frames", values["frames"], int, 0, None)
    return int(width), int(height), float(fps), int(frames)


def _number(
    url: str,
    name: str,
    text: str,
    kind: type[int] | type[float],
    low: float,
    high: float | None,
    *,
    low_inclusive: bool = True,
) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise SourceError(url, f"parameter {name}={text!r} is not {kind.__name__}") from None
    too_low = value < low if low_inclusive else value <= low
    if too_low or (high is not None and value > high) or value != value:  # NaN too
        bounds = f"{'>=' if low_inclusive else '>'} {low:g}"
        if high is not None:
            bounds += f" and <= {high:g}"
        raise SourceError(url, f"parameter {name}={text!r} out of range; must be {bounds}")
    return value


def _gradient(width: int, height: int) -> np.ndarray:
    """A dim red-to-blue gradient across, green down: a background with no hard edges."""
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    red, green, blue = np.broadcast_arrays(40 + 100 * (1 - x), 40 + 100 * y, 40 + 100 * x)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def _bounce(step: int, span: int) -> int:
    """Position ``step`` pixels along a back-and-forth path of length ``span``."""
    if span <= 0:
        return 0
    position = step % (2 * span)
    return position if position <= span else 2 * span - position


def _draw_box(background: np.ndarray, number: int) -> np.ndarray:
    """The background with the white box where it is at frame ``number``."""
    height, width = background.shape[:2]
    side = max(4, min(width, height) // 5)
    speed_px = max(1, min(width, height) // 40)
    x = _bounce(number * speed_px, width - side)
    y = _bounce(number * speed_px * 2 // 3, height - side)
    image = background.copy()
    image[y : y + side, x : x + side] = 250
    return image
