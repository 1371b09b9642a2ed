"""Idle NVDEC decoders kept for the next stream, so that it does not wait for a new session.

Opening PyNvVideoCodec's threaded decoder returns at once, but the NVDEC session behind it is
created at the stream's first picture, and those creations run one after another: measured
on an H100 (docs/benchmarks.md, 2026-12-05 night), one session takes ~65 ms, so of 16 streams
started together the last decodes its first frame after ~1 s, and of 32 after ~2.2 s. A
camera that reconnects, a stream that is replaced, or a job that runs file after file pays
that each time. A decoder that finished its stream cleanly goes into this pool instead of
being ended; the next stream on the same device takes it and points it at its own source
(``reconfigure_decoder``), which keeps the session.

The pool is bounded (``capacity`` decoders) and a decoder left idle longer than ``idle_s`` is
ended at the next visit, so an idle service holds no more than ``capacity`` decoders' memory,
and only for a while. (A decoder that has switched between files of different sizes may
hold more than one session: PyNvVideoCodec keeps up to 4 per decoder for such switches.)
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class DecoderPool:
    """Idle threaded decoders by CUDA device; thread-safe.

    Args:
        capacity: Idle decoders kept at most (0: none, every decoder is ended).
        idle_s: An idle decoder older than this is ended at the next take or give.
        clock: Monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        capacity: int = 32,
        idle_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.idle_s = idle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[tuple[int, float, Any]] = []  # (device, idle since, decoder), oldest first
        self.reused = 0
        self.ended = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._idle)

    def take(self, device_id: int) -> Any | None:
        """The most recently idle decoder of ``device_id`` (removed from the pool), or None."""
        with self._lock:
            stale = self._expire()
            decoder = None
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i][0] == device_id:
                    decoder = self._idle.pop(i)[2]
                    self.reused += 1
                    break
        self._end(stale)
        return decoder

    def give(self, device_id: int, decoder: Any) -> None:
        """Keep ``decoder`` for the next stream of ``device_id``; when the pool is full, the
        oldest idle decoder is ended instead."""
        with self._lock:
            stale = self._expire()
            self._idle.append((device_id, self._clock(), decoder))
            while len(self._idle) > self.capacity:
                stale.append(self._idle.pop(0)[2])
        self._end(stale)

    def clear(self) -> None:
        """End every idle decoder."""
        with self._lock:
            stale = [decoder for _, _, decoder in self._idle]
            self._idle.clear()
        self._end(stale)

    def _expire(self) -> list[Any]:
        """Remove (under the lock) and return the decoders idle longer than ``idle_s``."""
        cutoff = self._clock() - self.idle_s
        stale = [decoder for _, since, decoder in self._idle if since < cutoff]
        if stale:
            self._idle = [entry for entry in self._idle if entry[1] >= cutoff]
        return stale

    def _end(self, decoders: list[Any]) -> None:
        """End decoders outside the lock: ending one joins its native thread."""
        for decoder in decoders:
            self.ended += 1
            with contextlib.suppress(Exception):
                decoder.end()


#: The process's pool: NVDEC sessions belong to the process's CUDA context.
DECODERS = DecoderPool()
atexit.register(DECODERS.clear)
