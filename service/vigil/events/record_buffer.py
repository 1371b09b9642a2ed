"""Where Kafka records wait for the broker: the interface the publisher needs, and a buffer in
memory.

:class:`RecordBuffer` is met by the durable :class:`~vigil.events.outbox.Outbox` (the default)
and by :class:`MemoryBuffer` (``kafka.outbox.enabled: false``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class RecordBuffer(Protocol):
    """What the publisher needs of an outbox (durable or in memory)."""

    def append(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> int: ...
    def peek(self, limit: int, max_bytes: int | None = None) -> list[Any]: ...
    def ack(self, seqs: Iterable[int]) -> int: ...
    def depth(self) -> int: ...
    def bytes_used(self) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class MemoryRecord:
    """A record of the in-memory buffer (same fields the publisher reads from the outbox)."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes


class MemoryBuffer:
    """The outbox's interface without durability (``kafka.outbox.enabled: false``).

    Bounded by ``max_bytes`` (the oldest records go first, counted); everything in it is lost
    if the process dies. Exists for deployments that prefer speed and for the outbox on/off
    benchmark.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: deque[MemoryRecord] = deque()
        self._bytes = 0
        self._seq = 0
        self._lock = threading.Lock()
        self.dropped = 0

    def append(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> int:
        with self._lock:
            for topic, key, value in records:
                self._seq += 1
                self._items.append(MemoryRecord(self._seq, topic, key, value))
                self._bytes += _size(topic, key, value)
            while self._bytes > self.max_bytes and self._items:
                old = self._items.popleft()
                self._bytes -= _size(old.topic, old.key, old.value)
                self.dropped += 1
            return len(records)

    def peek(self, limit: int, max_bytes: int | None = None) -> list[MemoryRecord]:
        with self._lock:
            out, total = [], 0
            for record in self._items:
                size = _size(record.topic, record.key, record.value)
                if out and (len(out) >= limit or (max_bytes and total + size > max_bytes)):
                    break
                out.append(record)
                total += size
            return out

    def ack(self, seqs: Iterable[int]) -> int:
        done = set(seqs)
        with self._lock:
            kept = deque(r for r in self._items if r.seq not in done)
            removed = len(self._items) - len(kept)
            self._items = kept
            self._bytes = sum(_size(r.topic, r.key, r.value) for r in kept)
            return removed

    def depth(self) -> int:
        return len(self._items)

    def bytes_used(self) -> int:
        return self._bytes

    def close(self) -> None:
        pass


def _size(topic: str, key: bytes | None, value: bytes) -> int:
    return len(topic) + len(key or b"") + len(value)
