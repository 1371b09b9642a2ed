"""Hand freed heap memory back to the operating system, periodically.

Frames are megabyte buffers allocated and freed by several threads. glibc serves them from
per-thread arenas once its adaptive mmap threshold has risen past a frame's size, and keeps
the pages of freed chunks inside an arena: after a burst (a slow batch, a camera catching
up) the process's RSS stays at the burst's high-water mark, and a long run reads as a slow
leak. ``malloc_trim(0)`` releases those pages (``MADV_DONTNEED`` on free chunks) without
moving anything. It is a no-op elsewhere than on glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


def _malloc_trim() -> ctypes._CFuncPtr | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Release free heap pages to the OS; True if memory was released, False if none
    was or the C library has no ``malloc_trim``."""
    return bool(_TRIM(0)) if _TRIM is not None else False


class HeapTrimmer:
    """Calls :func:`trim_heap` every ``interval_s`` seconds in a worker thread (the trim
    takes the allocator's locks for a few milliseconds; the event loop must not wait).

    Args:
        interval_s: Seconds between trims.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.trims = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start trimming (idempotent; a no-op without ``malloc_trim``)."""
        if self._task is None and _TRIM is not None:
            self._task = asyncio.create_task(self._run(), name="heap-trim")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await asyncio.to_thread(trim_heap)
            self.trims += 1

    async def close(self) -> None:
        """Stop trimming."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
