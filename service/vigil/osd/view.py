"""What the live endpoints send: MJPEG parts, snapshots and tiled views, drawn on demand.

Everything here runs on the event loop except drawing and encoding, which go to a worker
thread (``asyncio.to_thread``). Viewers of one stream asking for the same picture (same
overlay and size) share one rendering of each frame.

An MJPEG stream sends at most ``fps`` frames a second, each frame once, as soon as it is
both due and new; between frames it waits on the tap (no polling). A client that reads
slowly makes its own ``yield`` wait: it then gets the newest frame, never a backlog.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vigil.osd.render import Overlay, encode_jpeg, output_size, render
from vigil.osd.tap import FrameTap, LiveFrame, StreamGoneError, ViewerLimitError, Watch

if TYPE_CHECKING:
    from vigil.analytics import AnalyticsConfig

BOUNDARY = "frame"
"""The multipart boundary of MJPEG responses (``multipart/x-mixed-replace; boundary=frame``)."""

MAX_TILES = 16
"""Most streams in one tiled view."""

_TILED_ASPECT = 16 / 9
_PLACEHOLDER_BGR = (48, 48, 48)


@dataclass(frozen=True, slots=True)
class View:
    """One viewer's request.

    Attributes:
        overlay: What to draw.
        height: Picture height (None: the source's, at most ``default_height``).
        fps: Most frames a second (MJPEG).
        quality: JPEG quality.
        default_height: Height cap when ``height`` is None.
    """

    overlay: Overlay
    height: int | None
    fps: float
    quality: int
    default_height: int


def part(jpeg: bytes, live: LiveFrame | None = None) -> bytes:
    """One MJPEG part, closed by the next boundary so a browser shows it at once (it would
    otherwise wait for the next frame to know this one ended).

    A single stream's part names its frame: ``X-Frame-Number`` and ``X-Capture-Time`` (UNIX
    seconds), so a client can measure how old what it shows is.
    """
    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
    if live is not None:
        frame = live.frame
        head += f"X-Frame-Number: {frame.frame_number}\r\n"
        head += f"X-Capture-Time: {frame.capture_time_s:.6f}\r\n"
    return (head + "\r\n").encode() + jpeg + f"\r\n--{BOUNDARY}\r\n".encode()


class LiveView:
    """Renders the frames of a :class:`FrameTap` for the live endpoints.

    Args:
        tap: The pipeline's frame tap.
        analytics_of: A stream's analytics rules now (None: none), for drawing zones.
        snapshot_timeout_s: How long a snapshot waits for a frame.
    """

    def __init__(
        self,
        tap: FrameTap,
        analytics_of: Callable[[str], AnalyticsConfig | None],
        snapshot_timeout_s: float = 3.0,
    ) -> None:
        self.tap = tap
        self.analytics_of = analytics_of
        self.snapshot_timeout_s = snapshot_timeout_s
        self.metrics = tap.metrics

    # --- one stream ----------------------------------------------------------------------------

    async def jpeg(self, watch: Watch, live: LiveFrame, view: View) -> bytes:
        """``live`` drawn and encoded as ``view`` asks; viewers asking for the same frame the
        same way share one rendering (which finishes even if the viewer that started it
        leaves)."""
        key = (view.overlay, view.height, view.quality)
        cached = watch.rendered.get(key)
        if cached is None or cached[0] != live.seq:
            config = self.analytics_of(watch.stream_id) if view.overlay.zones else None
            task = asyncio.ensure_future(asyncio.to_thread(self._draw, live, view, config))
            if len(watch.rendered) >= 8 and key not in watch.rendered:  # bounded by choices
                watch.rendered.pop(next(iter(watch.rendered)))
            watch.rendered[key] = cached = (live.seq, task)
        return await asyncio.shield(cached[1])

    def _draw(self, live: LiveFrame, view: View, config: AnalyticsConfig | None) -> bytes:
        start = time.perf_counter()
        frame = live.frame
        size = output_size(frame.width, frame.height, view.height, view.default_height)
        data = encode_jpeg(render(live, view.overlay, size, config), view.quality)
        self.metrics.render_seconds.observe(time.perf_counter() - start)
        self.metrics.frames_rendered.inc()
        return data

    async def mjpeg(self, stream_id: str, view: View) -> AsyncIterator[bytes]:
        """The MJPEG body of one stream: parts until the stream is removed or the client
        leaves (then the generator is closed, and the watch with it)."""
        try:
            with self.tap.watching([stream_id], viewer=True) as (watch,):
                yield f"--{BOUNDARY}\r\n".encode()
                interval = 1.0 / view.fps
                sent = 0
                due = 0.0
                overran = False
                while True:
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    live = await watch.next(sent)
                    if live is None:  # pragma: no cover - next() without timeout waits
                        continue
                    if overran and sent and live.seq > sent + 1:
                        self.metrics.frames_dropped.inc(live.seq - sent - 1)
                    started = time.monotonic()
                    due = next_tick(started, interval)
                    jpeg = await self.jpeg(watch, live, view)
                    sent = live.seq
                    yield part(jpeg, live)
                    # Rendering and sending took longer than a frame interval: the frames
                    # that came meanwhile are lost to slowness, not to the fps limit.
                    overran = time.monotonic() > due
        except (StreamGoneError, ViewerLimitError):  # removed, or full since the router checked
            return

    async def snapshot(self, stream_id: str, view: View) -> bytes | None:
        """The latest frame as JPEG: the one viewers see now, else the next one within
        ``snapshot_timeout_s`` (None if none comes).

        Raises:
            StreamGoneError: the stream was removed while waiting.
        """
        with self.tap.watching([stream_id]) as (watch,):
            live = await watch.next(0, self.snapshot_timeout_s)
            if live is None:
                return None
            return await self.jpeg(watch, live, view)

    # --- tiled (DeepStream's tiler) ------------------------------------------------------------

    async def tiled_mjpeg(self, stream_ids: Sequence[str], view: View) -> AsyncIterator[bytes]:
        """A grid of streams as MJPEG: a new picture when any tile has a new frame, at most
        ``fps`` a second. A removed stream's tile turns into a placeholder."""
        with self.tap.watching(stream_ids, viewer=True) as watches:
            tiler = _Tiler(self, watches, view)
            yield f"--{BOUNDARY}\r\n".encode()
            interval = 1.0 / view.fps
            due = 0.0
            while True:
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not tiler.changed():
                    if all(w.gone for w in watches):  # every stream removed: nothing more
                        return
                    await tiler.wait()
                    continue
                due = next_tick(time.monotonic(), interval)
                yield part(await tiler.jpeg())

    async def tiled_snapshot(self, stream_ids: Sequence[str], view: View) -> bytes:
        """One tiled picture; waits up to ``snapshot_timeout_s`` for every tile to have a
        frame (tiles still without one show a placeholder)."""
        with self.tap.watching(stream_ids) as watches:
            tiler = _Tiler(self, watches, view)
            deadline = time.monotonic() + self.snapshot_timeout_s
            while not all(w.latest is not None or w.gone for w in watches):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                await tiler.wait(left)
            return await tiler.jpeg()


def next_tick(now: float, interval: float) -> float:
    """The first multiple of ``interval`` on the monotonic clock at least half an interval
    after ``now`` (so two parts are never closer than that; after the first, one interval).

    Viewers pace themselves on these shared ticks, not each on its own start time: two
    viewers of a stream at one rate then ask for a frame at the same instant, get the same
    latest frame and share one rendering (:meth:`LiveView.jpeg`). Paced from their own
    start, they picked different frames of a fast stream and each paid for its own (4
    viewers on 2 streams rendered 2× what they needed)."""
    return math.ceil((now + interval / 2) / interval) * interval


def grid(n: int) -> tuple[int, int]:
    """``(rows, columns)`` for ``n`` tiles, as deepstream-app sizes its tiler: rows =
    ⌊√n⌋, columns = ⌈n / rows⌉ (1 → 1×1, 2 → 1×2, 4 → 2×2, 5 → 2×3, 9 → 3×3)."""
    rows = max(1, math.isqrt(n))
    return rows, math.ceil(n / rows)


class _Tiler:
    """Composes one tiled picture; re-draws only the tiles whose stream has a new frame."""

    def __init__(self, view: LiveView, watches: list[Watch], request: View) -> None:
        self.view = view
        self.watches = watches
        self.request = request
        height = request.height or request.default_height
        height -= height % 2
        width = round(height * _TILED_ASPECT / 2) * 2
        self.rows, self.cols = grid(len(watches))
        self.size = (width, height)
        self.cell = (width // self.cols, height // self.rows)
        self._tiles: dict[str, tuple[int, np.ndarray]] = {}
        self._shown: dict[str, int] = {}

    def _state(self) -> dict[str, int]:
        # -1: removed, 0: no frame yet, else the tile's frame
        return {
            w.stream_id: -1 if w.gone else (w.latest.seq if w.latest else 0) for w in self.watches
        }

    def changed(self) -> bool:
        """Whether any tile differs from the last picture (or none was made yet)."""
        return not self._shown or self._state() != self._shown

    async def wait(self, timeout_s: float | None = None) -> None:
        """Until any stream publishes a frame (or is removed), or ``timeout_s``."""
        waits = [asyncio.ensure_future(w.changed().wait()) for w in self.watches]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def jpeg(self) -> bytes:
        """The picture now, as JPEG."""
        self._shown = self._state()
        latest = {w.stream_id: (w.latest, w.gone) for w in self.watches}
        config = {
            sid: self.view.analytics_of(sid) if self.request.overlay.zones else None
            for sid in latest
        }
        return await asyncio.to_thread(self._compose, latest, config)

    def _compose(
        self,
        latest: dict[str, tuple[LiveFrame | None, bool]],
        config: dict[str, AnalyticsConfig | None],
    ) -> bytes:
        start = time.perf_counter()
        canvas = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        cw, ch = self.cell
        for i, (sid, (live, gone)) in enumerate(latest.items()):
            x0, y0 = (i % self.cols) * cw, (i // self.cols) * ch
            cell = canvas[y0 : y0 + ch, x0 : x0 + cw]
            if live is None:
                _placeholder(cell, sid, "removed" if gone else "no frame yet")
                continue
            tile = self._tile(sid, live, config[sid])
            ty, tx = (ch - tile.shape[0]) // 2, (cw - tile.shape[1]) // 2
            cell[ty : ty + tile.shape[0], tx : tx + tile.shape[1]] = tile
        data = encode_jpeg(canvas, self.request.quality)
        metrics = self.view.metrics
        metrics.render_seconds.observe(time.perf_counter() - start)
        metrics.frames_rendered.inc()
        return data

    def _tile(self, sid: str, live: LiveFrame, config: AnalyticsConfig | None) -> np.ndarray:
        cached = self._tiles.get(sid)
        if cached is not None and cached[0] == live.seq:
            return cached[1]
        frame = live.frame
        cw, ch = self.cell
        scale = min(cw / frame.width, ch / frame.height)  # fit, keeping the aspect ratio
        size = (max(2, int(frame.width * scale)), max(2, int(frame.height * scale)))
        tile = render(live, self.request.overlay, size, config)
        self._tiles[sid] = (live.seq, tile)
        return tile


def _placeholder(cell: np.ndarray, stream_id: str, reason: str) -> None:
    """A grey tile naming the stream and why it has no picture."""
    cell[:] = _PLACEHOLDER_BGR
    h, w = cell.shape[:2]
    scale = max(0.35, 0.6 * h / 360)
    for row, text in enumerate((stream_id, reason)):
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        org = ((w - tw) // 2, h // 2 + (row * 2 - 1) * th)
        cv2.putText(
            cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (220, 220, 220), 1, cv2.LINE_AA
        )
