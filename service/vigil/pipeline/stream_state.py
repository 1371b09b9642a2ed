"""Per-stream lifecycle (a locked state machine) and counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class StreamState(StrEnum):
    """Where a stream is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    ERROR = "error"
    STOPPED = "stopped"


_S = StreamState
_ALLOWED: dict[StreamState, set[StreamState]] = {
    _S.STARTING: {_S.RUNNING, _S.RECONNECTING, _S.ERROR, _S.STOPPED},
    _S.RUNNING: {_S.RECONNECTING, _S.ERROR, _S.STOPPED},
    _S.RECONNECTING: {_S.RUNNING, _S.RECONNECTING, _S.ERROR, _S.STOPPED},  # new reason
    _S.ERROR: {_S.STARTING},
    _S.STOPPED: {_S.STARTING},
}


class IllegalTransitionError(RuntimeError):
    """A state change that the lifecycle does not allow."""


class LatencyWindow:
    """The last ``size`` frame latencies, in a ring preallocated at creation.

    A stream's memory must not grow with its age: a deque of Python floats costs 32 bytes
    a frame and, at 100,000 frames, 3 MB a camera, reached only after hours (a slow rise
    that a soak reads as a leak). 4,096 frames cover minutes of a live camera, which is
    also what an operator asks "what is the latency now" about.
    """

    def __init__(self, size: int = 4096) -> None:
        self._values = np.zeros(size)
        self._count = 0

    def append(self, seconds: float) -> None:
        """Record one frame's latency, overwriting the oldest when full."""
        self._values[self._count % len(self._values)] = seconds
        self._count += 1

    def __len__(self) -> int:
        return min(self._count, len(self._values))

    def percentile_ms(self, q: float) -> float | None:
        """The ``q``-th percentile of the window in milliseconds; None if empty."""
        n = len(self)
        return float(np.percentile(self._values[:n], q) * 1000) if n else None

    def values(self) -> list[float]:
        """The latencies held, in seconds, oldest first."""
        n = len(self)
        start = self._count % len(self._values) if self._count > n else 0
        return np.roll(self._values[:n], -start).tolist()


@dataclass
class StreamStats:
    """Counters of one stream, updated by the decoder thread and the pipeline."""

    frames_decoded: int = 0
    frames_processed: int = 0
    frames_skipped: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    detections: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    started_monotonic_s: float = field(default_factory=time.monotonic)
    last_processed_monotonic_s: float | None = None
    latencies_s: LatencyWindow = field(default_factory=LatencyWindow)
    model_version: str = ""

    @property
    def frames_dropped(self) -> int:
        """All dropped frames, any reason."""
        return sum(self.dropped.values())

    @property
    def fps(self) -> float:
        """Processed frames per second since the stream started."""
        end = self.last_processed_monotonic_s or time.monotonic()
        elapsed = end - self.started_monotonic_s
        return self.frames_processed / elapsed if elapsed > 0 else 0.0

    def latency_percentile_ms(self, q: float) -> float | None:
        """Frame latency (decode → event) percentile over the last 4,096 frames, in
        milliseconds; None if no frames."""
        return self.latencies_s.percentile_ms(q)


#: The integer counters of :class:`StreamStats`, as a snapshot carries them.
_COUNTERS = ("frames_decoded", "frames_processed", "frames_skipped", "decode_errors", "reconnects")


class StreamStatus:
    """The lifecycle of one stream: a state, the reason for it, and its counters.

    Transitions are checked against an allow-list under a lock; a refused one raises
    :class:`IllegalTransitionError`.
    """

    def __init__(self, stream_id: str, url: str) -> None:
        self.stream_id = stream_id
        self.url = url
        self.stats = StreamStats()
        self._state = StreamState.STARTING
        self._reason = ""
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self.expected_frames: int | None = None

    @property
    def state(self) -> StreamState:
        """The current state."""
        return self._state

    @property
    def reason(self) -> str:
        """Why the stream is in its state (error message, 'end of stream', ...)."""
        return self._reason

    def transition(self, new: StreamState, reason: str = "") -> None:
        """Move to ``new``.

        Raises:
            IllegalTransitionError: the lifecycle does not allow it.
        """
        with self._lock:
            if new not in _ALLOWED[self._state]:
                raise IllegalTransitionError(
                    f"stream {self.stream_id}: cannot go from {self._state} to {new}"
                )
            self._set(new, reason)

    def transition_if(self, expected: set[StreamState], new: StreamState, reason: str = "") -> bool:
        """Move to ``new`` only if the current state is in ``expected`` (atomically)."""
        with self._lock:
            if self._state not in expected or new not in _ALLOWED[self._state]:
                return False
            self._set(new, reason)
            return True

    def _set(self, new: StreamState, reason: str) -> None:
        self._state = new
        self._reason = reason
        if new in (StreamState.ERROR, StreamState.RECONNECTING):
            self.last_error = reason

    def snapshot(self, *, latencies: bool = False) -> dict[str, Any]:
        """The status as JSON-ready data (what a job's worker process reports to its
        parent); ``latencies`` adds the latency window. :meth:`restored` reads it back."""
        stats = self.stats
        data: dict[str, Any] = {
            "stream_id": self.stream_id,
            "url": self.url,
            "state": self._state.value,
            "reason": self._reason,
            "expected_frames": self.expected_frames,
            "stats": {
                name: getattr(stats, name)
                for name in (*_COUNTERS, "started_monotonic_s", "last_processed_monotonic_s")
            }
            | {"detections": dict(stats.detections), "dropped": dict(stats.dropped)}
            | {"model_version": stats.model_version},
        }
        if latencies:
            data["latencies_s"] = stats.latencies_s.values()
        return data

    @classmethod
    def restored(cls, data: dict[str, Any]) -> StreamStatus:
        """A status from :meth:`snapshot`'s data (monotonic times are host-wide, so they
        stay comparable across processes)."""
        status = cls(data["stream_id"], data["url"])
        status._set(StreamState(data["state"]), data["reason"])
        status.expected_frames = data["expected_frames"]
        fields = data["stats"]
        stats = status.stats
        for name in (*_COUNTERS, "started_monotonic_s", "last_processed_monotonic_s"):
            setattr(stats, name, fields[name])
        stats.detections = Counter(fields["detections"])
        stats.dropped = Counter(fields["dropped"])
        stats.model_version = fields["model_version"]
        for seconds in data.get("latencies_s", ()):
            stats.latencies_s.append(seconds)
        return status

    def try_transition(self, new: StreamState, reason: str = "") -> bool:
        """Like :meth:`transition`, returning False instead of raising."""
        try:
            self.transition(new, reason)
        except IllegalTransitionError:
            return False
        return True
