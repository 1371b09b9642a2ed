"""Bounded per-stream frame queues with an explicit overload policy.

A decoder thread puts frames; the asyncio batcher takes them. Every queue is bounded:

* ``BLOCK`` (files): the decoder waits for room, so nothing is dropped;
* ``DROP_OLDEST`` (live cameras): the oldest queued frame is discarded and counted, so a
  slow pipeline never makes a camera fall further and further behind.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from vigil.frame import Frame


class DropPolicy(StrEnum):
    """What a full queue does with a new frame."""

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


class FrameQueue:
    """A bounded, thread-safe FIFO of frames between one decoder and the batcher.

    Args:
        maxsize: Frames the queue holds at most.
        policy: Overload policy.
        notify: Called (from the producer's thread) after each put and on close; the
            batcher uses it to wake up.
    """

    def __init__(
        self, maxsize: int, policy: DropPolicy, notify: Callable[[], None] = lambda: None
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.policy = policy
        self._notify = notify
        self._items: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._aborted = False
        self.dropped = 0

    def put(self, frame: Frame) -> bool:
        """Add a frame, applying the overload policy.

        Returns:
            False if the queue was aborted (the producer should stop), else True.
        """
        with self._cond:
            if self.policy is DropPolicy.BLOCK:
                while len(self._items) >= self.maxsize and not self._aborted:
                    self._cond.wait()
            elif len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            if self._aborted:
                return False
            self._items.append(frame)
        self._notify()
        return True

    def get_nowait(self) -> Frame | None:
        """The oldest frame, or None if the queue is empty."""
        with self._cond:
            if not self._items:
                return None
            frame = self._items.popleft()
            self._cond.notify()
            return frame

    def close(self) -> None:
        """The producer is done: no more frames will come."""
        with self._cond:
            self._closed = True
        self._notify()

    def abort(self) -> None:
        """Stop the producer and discard queued frames: a blocked or later :meth:`put`
        returns False and the consumer sees the queue finished."""
        with self._cond:
            self._aborted = True
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        self._notify()

    @property
    def finished(self) -> bool:
        """Closed and empty: nothing more will ever come out."""
        with self._cond:
            return self._closed and not self._items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
