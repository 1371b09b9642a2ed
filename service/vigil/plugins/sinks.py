"""Plugin sinks behind a guard: a sink that raises loses that batch, never the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from vigil.events.schema import Event
from vigil.events.sinks import EventSink
from vigil.plugins.discovery import PluginError, PluginInfo, instantiate
from vigil.retry import FailureRun
from vigil.specs import StreamSpec

log = logging.getLogger(__name__)


class GuardedSink(EventSink):
    """Wraps a plugin sink: an exception from ``emit`` is counted and logged (with the
    traceback, at most once a minute) and the pipeline goes on; Kafka and the JSONL file,
    which come first, already have the events.

    Args:
        sink: The plugin's sink.
        info: Its name and version.
    """

    def __init__(self, sink: EventSink, info: PluginInfo) -> None:
        self.sink = sink
        self.info = info
        self._run = FailureRun()  # loud on the first failure, then once a minute

    @property
    def failures(self) -> int:
        """Batches the sink raised on."""
        return self._run.count

    async def emit(self, events: Sequence[Event]) -> None:
        """Hand the batch to the plugin; an exception loses only this batch for it."""
        try:
            await self.sink.emit(events)
        except Exception:
            if self._run.failed():
                log.exception(
                    "sink plugin %s raised (%d batches lost to it so far)",
                    self.info.name,
                    self.failures,
                )

    async def close(self) -> None:
        """Close the plugin's sink; an exception is logged, not raised (shutdown goes on)."""
        try:
            await self.sink.close()
        except Exception:
            log.exception("sink plugin %s raised on close", self.info.name)


class StreamSinks(EventSink):
    """The plugin sinks of single streams (``sinks`` of a stream's spec): each gets the
    events of its own stream only, from the stream's start until it is removed.

    Sits in the pipeline's sink list after the global sinks; costs nothing while no stream
    has sinks of its own.
    """

    def __init__(self) -> None:
        self._by_stream: dict[str, list[GuardedSink]] = {}

    def check(self, spec: StreamSpec) -> None:
        """Load the sinks ``spec`` names (the stream is about to start).

        Raises:
            PluginError: one cannot be loaded (the message names ``sinks[i]``).
        """
        loaded = []
        for i, ref in enumerate(spec.sinks):
            try:
                loaded.append(GuardedSink(*instantiate("sink", ref)))
            except PluginError as e:
                raise PluginError(f"sinks[{i}]: {e}") from e
        if loaded:
            self._by_stream[spec.id] = loaded

    def sinks(self) -> list[GuardedSink]:
        """Every per-stream sink, for the health endpoint."""
        return [sink for sinks in self._by_stream.values() for sink in sinks]

    async def emit(self, events: Sequence[Event]) -> None:
        """Hand each stream's events of the batch to that stream's sinks."""
        if not self._by_stream or not events:
            return
        for stream_id, sinks in list(self._by_stream.items()):
            mine = [e for e in events if e.sensor.id == stream_id]
            if mine:
                for sink in sinks:
                    await sink.emit(mine)

    async def release(self, stream_id: str) -> None:
        """The stream was removed: close its sinks."""
        for sink in self._by_stream.pop(stream_id, []):
            await sink.close()

    async def close(self) -> None:
        """Close every per-stream sink."""
        for stream_id in list(self._by_stream):
            await self.release(stream_id)
