"""The frame tap: the latest frame of each *watched* stream, handed to viewers on the event loop.

The pipeline shows every batch to :meth:`FrameTap.observe` in the stage chain's thread. For a
stream nobody watches that is one dict lookup and nothing else: no copy, no drawing, no
reference kept. For a watched stream the tap keeps only the newest frame and what is needed
to draw it (a :class:`LiveFrame`, holding references, never copies: the CPU path's numpy
images and the GPU path's tensors are never written after decoding) and wakes the viewers.

The hand-off from the chain's thread to the event loop never blocks and never queues: the
tap replaces the latest frame and, if no wake-up is already on its way, schedules one with
``call_soon_threadsafe``. A viewer that is busy (rendering, or sending to a slow client)
finds the newest frame when it comes back; the frames in between are simply gone. So a slow
viewer drops frames; it never lags behind and never holds up the pipeline.

Watching is counted (:meth:`FrameTap.watching`, a context manager): the first watcher of a
stream starts the keeping, the last one's exit frees it. :meth:`FrameTap.stream_removed`
ends every watch of a removed stream at once (viewers see :class:`StreamGoneError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from vigil.detections import Detections
from vigil.frame import Frame
from vigil.stages.base import FrameResult

if TYPE_CHECKING:
    from vigil.analytics import AnalyticsCounts, AnalyticsResult
    from vigil.events.schema import Event
    from vigil.infer.model import ModelInfo

log = logging.getLogger(__name__)


class StreamGoneError(Exception):
    """The watched stream was removed."""


class ViewerLimitError(RuntimeError):
    """Too many viewers (of the stream, or overall)."""


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """The newest frame of a watched stream and what the overlay draws on it.

    Attributes:
        seq: Publication number within the watch (1, 2, ...): a viewer never shows the same
            ``seq`` twice.
        frame: The frame (its pixels on the host or the GPU, untouched).
        detections: The objects after every stage (tracked, ROI-filtered).
        model: The model that found them (``model.label(class_id)`` names a class).
        analytics: This frame's analytics (None without analytics).
        counts: The stream's cumulative analytics counts after this frame's batch.
    """

    seq: int
    frame: Frame
    detections: Detections
    model: ModelInfo | None = None
    analytics: AnalyticsResult | None = None
    counts: AnalyticsCounts | None = None

    def label(self, class_id: int) -> str:
        """The class's name (its id when the model has no labels)."""
        return self.model.label(class_id) if self.model is not None else str(class_id)


class LiveMetrics:
    """Prometheus figures of the live view.

    Attributes:
        viewers: MJPEG viewers connected now (a tiled view counts once).
        frames_rendered: JPEG frames drawn and encoded (one per frame and overlay choice,
            shared by the viewers that asked for the same).
        frames_dropped: Frames a viewer did not get because it was slower than its ``fps``
            (rendering or sending took longer than the frame interval).
        render_seconds: Time to draw and encode one JPEG.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.viewers = Gauge("vigil_live_viewers", "MJPEG viewers connected now", registry=registry)
        self.frames_rendered = Counter(
            "vigil_live_frames_rendered", "Live frames drawn and JPEG-encoded", registry=registry
        )
        self.frames_dropped = Counter(
            "vigil_live_frames_dropped",
            "Frames live viewers missed because they were slower than their fps",
            registry=registry,
        )
        self.render_seconds = Histogram(
            "vigil_live_render_seconds",
            "Time to draw and encode one live frame",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
            registry=registry,
        )


@dataclass(eq=False)
class Watch:
    """One watched stream: its latest frame and the wake-up of its viewers.

    Written by the chain's thread (:meth:`publish`) and read on the event loop; the latest
    frame is one attribute, replaced in one assignment, so a reader never sees half of it.
    """

    stream_id: str
    loop: asyncio.AbstractEventLoop
    watchers: int = 0
    viewers: int = 0
    latest: LiveFrame | None = None
    gone: bool = False
    #: Rendered JPEGs shared by viewers asking for the same thing: key → (seq, task).
    rendered: dict[object, tuple[int, asyncio.Future[bytes]]] = field(default_factory=dict)
    _seq: int = 0
    _wake_pending: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, result: FrameResult, counts: AnalyticsCounts | None) -> None:
        """Make ``result`` the latest frame and wake the viewers (chain's thread; never
        blocks)."""
        self._seq += 1
        self.latest = LiveFrame(
            self._seq, result.frame, result.detections, result.model, result.analytics, counts
        )
        # Set after the frame: a wake-up that clears the flag always finds this frame.
        if not self._wake_pending:
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # a closed loop: the service is stopping
                self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def end(self) -> None:
        """The stream is gone: drop the frame and wake every viewer (event loop)."""
        self.gone = True
        self.latest = None
        self.rendered.clear()
        self._wake()

    async def next(self, after: int, timeout_s: float | None = None) -> LiveFrame | None:
        """The latest frame if it is newer than ``after`` (a ``seq``), else wait for one.

        Returns None when ``timeout_s`` passes first.

        Raises:
            StreamGoneError: the stream was removed.
        """
        while True:
            if self.gone:
                raise StreamGoneError(self.stream_id)
            latest = self.latest
            if latest is not None and latest.seq > after:
                return latest
            try:
                await asyncio.wait_for(self._changed.wait(), timeout_s)
            except TimeoutError:
                return None

    def changed(self) -> asyncio.Event:
        """Set at the next publication (or removal); for waiting on several watches."""
        return self._changed


class FrameTap:
    """A :class:`~vigil.pipeline.taps.ResultTap` keeping the latest frame of watched streams.

    Args:
        max_viewers_per_stream: Viewers of one stream at once (:meth:`watching` with
            ``viewer=True``).
        max_viewers: Viewers at once, overall.
        counts_of: The analytics counts of a stream now (read in the chain's thread, right
            after the stages, so they match the frame).
        registry: Where to register :attr:`metrics` (None: a private registry).
    """

    def __init__(
        self,
        max_viewers_per_stream: int = 8,
        max_viewers: int = 32,
        counts_of: Callable[[str], AnalyticsCounts | None] = lambda _: None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.max_viewers_per_stream = max_viewers_per_stream
        self.max_viewers = max_viewers
        self.counts_of = counts_of
        self.metrics = LiveMetrics(registry or CollectorRegistry())
        # Replaced, never mutated, on the event loop: the chain's thread only reads it.
        self._watches: dict[str, Watch] = {}
        self._viewers = 0

    # --- the chain's side --------------------------------------------------------------------

    def observe(self, results: Sequence[FrameResult], events: list[Event]) -> None:
        """Keep the newest frame of each watched stream in the batch (chain's thread)."""
        watches = self._watches
        if not watches:  # nobody watches anything: the common case costs this test
            return
        seen: set[str] = set()
        for result in reversed(results):  # the newest frame of each stream comes last
            sid = result.stream_id
            watch = watches.get(sid)
            if watch is None or sid in seen:
                continue
            seen.add(sid)
            watch.publish(result, self.counts_of(sid))

    # --- the viewers' side (event loop) ------------------------------------------------------

    @property
    def watched(self) -> list[str]:
        """Streams watched now."""
        return list(self._watches)

    @property
    def viewer_count(self) -> int:
        """Viewers connected now."""
        return self._viewers

    def check_room(self, stream_ids: Sequence[str]) -> None:
        """Raise :class:`ViewerLimitError` if one more viewer of ``stream_ids`` would be
        too many (the router asks before it starts a response)."""
        if self._viewers >= self.max_viewers:
            raise ViewerLimitError(
                f"{self._viewers} live viewers already (live.max_viewers = {self.max_viewers})"
            )
        for sid in stream_ids:
            watch = self._watches.get(sid)
            if watch is not None and watch.viewers >= self.max_viewers_per_stream:
                raise ViewerLimitError(
                    f"stream {sid!r} has {watch.viewers} live viewers already "
                    f"(live.max_viewers_per_stream = {self.max_viewers_per_stream})"
                )

    @contextlib.contextmanager
    def watching(self, stream_ids: Sequence[str], viewer: bool = False) -> Iterator[list[Watch]]:
        """Watch streams for the duration of the block: their frames are kept meanwhile.

        Args:
            stream_ids: The streams.
            viewer: Count this as a viewer (an MJPEG connection) against the limits; a
                snapshot is not one.

        Raises:
            ViewerLimitError: a limit would be passed (nothing is watched then).
        """
        if viewer:
            self.check_room(stream_ids)
        loop = asyncio.get_running_loop()
        watches: list[Watch] = []
        for sid in stream_ids:
            watch = self._watches.get(sid)
            if watch is None:
                watch = Watch(sid, loop)
                self._watches = {**self._watches, sid: watch}
            watch.watchers += 1
            watch.viewers += int(viewer)
            watches.append(watch)
        if viewer:
            self._viewers += 1
            self.metrics.viewers.inc()
        try:
            yield watches
        finally:
            if viewer:
                self._viewers -= 1
                self.metrics.viewers.dec()
            for watch in watches:
                watch.watchers -= 1
                watch.viewers -= int(viewer)
                if watch.watchers == 0 and self._watches.get(watch.stream_id) is watch:
                    self._watches = {k: v for k, v in self._watches.items() if k != watch.stream_id}

    def stream_removed(self, stream_id: str) -> None:
        """The stream is gone: end its watch (viewers see :class:`StreamGoneError`) and drop its
        frame (event loop)."""
        watch = self._watches.get(stream_id)
        if watch is None:
            return
        self._watches = {k: v for k, v in self._watches.items() if k != stream_id}
        watch.end()
