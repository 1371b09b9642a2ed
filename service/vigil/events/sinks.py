"""Where events go. Every sink takes each inference batch's events in pipeline order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from vigil.events.schema import Event, to_json_line


class EventSink(ABC):
    """A destination for events."""

    @abstractmethod
    async def emit(self, events: Sequence[Event]) -> None:
        """Accept the events of one inference batch (several frames, in order; maybe none)."""

    @abstractmethod
    async def close(self) -> None:
        """Flush and release resources; idempotent."""


class JsonlSink(EventSink):
    """Appends events as JSON lines (nvmsgconv full schema) to a file.

    Args:
        path: The file; its directory is created if needed. An existing file is replaced.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8", buffering=1 << 16)
        self.written = 0

    async def emit(self, events: Sequence[Event]) -> None:
        """Write one line per event."""
        if events:
            self._file.write("".join(to_json_line(e) + "\n" for e in events))
            self._file.flush()  # a frame's events reach the file (not the disk) at once
            self.written += len(events)

    async def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.close()
