"""An event sink for tests that keeps the Event objects (which, unlike the JSON, carry
their frame number)."""

from __future__ import annotations

from collections.abc import Sequence

from vigil.events.schema import Event
from vigil.events.sinks import EventSink


class RecordingSink(EventSink):
    """Keeps every event it is given, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    async def close(self) -> None:
        pass
