"""Plugin sinks behind a guard: a sink that raises loses that batch, never the pipeline."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

from vigil.events.schema import Event
from vigil.events.sinks import EventSink
from vigil.plugins.discovery import PluginInfo

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
        #: Batches the sink raised on.
        self.failures = 0
        self._logged = -math.inf

    async def emit(self, events: Sequence[Event]) -> None:
        """Hand the batch to the plugin; an exception loses only this batch for it."""
        try:
            await self.sink.emit(events)
        except Exception:
            self.failures += 1
            now = time.monotonic()
            if now - self._logged >= 60:
                self._logged = now
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
