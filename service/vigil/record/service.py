"""Smart recording as the runtime runs it: recorder, store, housekeeping, events, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vigil.events.builder import EventBuilder
from vigil.events.schema import Event
from vigil.events.sinks import EventSink
from vigil.record.events import recording_event
from vigil.record.recorder import Recorder
from vigil.record.store import Recording, RecordingStore
from vigil.recording_settings import RecordingSettings
from vigil.sources.base import Source

log = logging.getLogger(__name__)

#: How often open clips of stalled streams are looked at.
TICK_S = 0.5


class RecordingService:
    """Owns the recorder and the recordings directory while Vigil runs.

    Args:
        settings: The ``recording`` settings.
        directory: The recordings directory (``recording.directory`` or the default).
        builder: The current event builder (for the ``recording`` events).
        sinks: Where ``recording`` events go.
    """

    def __init__(
        self,
        settings: RecordingSettings,
        directory: Path,
        builder: Callable[[], EventBuilder],
        sinks: Sequence[EventSink],
    ) -> None:
        self.settings = settings
        self.store = RecordingStore(directory)
        self.recorder = Recorder(settings, self.store, self._closed)
        self.builder = builder
        self.sinks = list(sinks)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._emits: set[asyncio.Task[None]] = set()

    def tap(self, source: Source) -> Source:
        """Give a new source the recorder's packet tap for its stream."""
        source.packets = self.recorder.sink(source.stream_id)
        return source

    async def start(self) -> None:
        """Start housekeeping: clips of stalled streams, retention."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._housekeep(), name="recording-housekeeping")

    async def close(self) -> None:
        """Close every open clip, send their events, stop housekeeping."""
        for stream_id in self.recorder.recording_now():
            self.recorder.stream_removed(stream_id)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._emits:
            await asyncio.gather(*self._emits, return_exceptions=True)

    async def stream_removed(self, stream_id: str) -> None:
        """The stream is gone: close its clip (off the loop, as it writes the file's end) and
        forget its cache (on the loop when there is no clip: nothing to write)."""
        if stream_id in self.recorder.recording_now():
            await asyncio.to_thread(self.recorder.stream_removed, stream_id)
        else:
            self.recorder.stream_removed(stream_id)

    def _closed(self, rec: Recording) -> None:
        """A clip closed (on any thread): its event goes to the sinks from the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._emit, rec)

    def _emit(self, rec: Recording) -> None:
        task = asyncio.create_task(self._send(recording_event(self.builder(), rec)))
        self._emits.add(task)
        task.add_done_callback(self._emits.discard)

    async def _send(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                await sink.emit([event])
            except Exception:
                log.exception("a sink failed on a recording event")

    async def _housekeep(self) -> None:
        retention = self.settings.retention
        since_retention = retention.check_interval_s  # enforce once at start-up
        while True:
            try:
                # Only open clips need the tick (it may write): with none, the shared thread
                # pool is left alone (it grows a thread whenever all are busy).
                if self.recorder.recording_now():
                    await asyncio.to_thread(self.recorder.tick)
                if since_retention >= retention.check_interval_s:
                    since_retention = 0.0
                    result = await asyncio.to_thread(self.store.enforce, retention)
                    self.recorder.deleted += len(result.deleted)
                    if result.deleted:
                        log.info(
                            "retention deleted %d clips (%d bytes)",
                            len(result.deleted), result.freed_bytes,
                        )  # fmt: skip
            except Exception:
                log.exception("recording housekeeping failed; trying again")
            await asyncio.sleep(TICK_S)
            since_retention += TICK_S


class RecordingCollector(Collector):
    """Recording figures read at scrape time."""

    def __init__(self, service: RecordingService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        """Yield the recording metric families."""
        recorder, store = self.service.recorder, self.service.store
        cache = GaugeMetricFamily(
            "vigil_recording_cache_bytes", "Bytes in the pre-event cache", labels=["stream"]
        )
        for stream_id, size in recorder.cache_bytes().items():
            cache.add_metric([stream_id], size)
        yield cache
        yield GaugeMetricFamily(
            "vigil_recordings_open", "Clips being written", value=len(recorder.recording_now())
        )
        yield GaugeMetricFamily(
            "vigil_recordings_bytes", "Bytes of clips in the recordings directory",
            value=store.total_bytes(),
        )  # fmt: skip
        failures = CounterMetricFamily(
            "vigil_recording_failures", "Clips that failed, by reason (no_space: disk full)",
            labels=["reason"],
        )  # fmt: skip
        for reason in ("no_space", "write_error"):
            failures.add_metric([reason], recorder.failures[reason])
        yield failures
        yield CounterMetricFamily(
            "vigil_recordings_deleted", "Clips deleted by retention", value=recorder.deleted
        )
