"""Cross-stream batcher: frames from many streams become one inference batch.

Like DeepStream's nvstreammux, a batch is sent when it is full (``max_batch_size``) or when
``batch_timeout_ms`` has passed since its first frame, whichever comes first. Streams are
served round-robin, one frame each per round, so a busy stream cannot starve a quiet one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from vigil.frame import Frame
from vigil.pipeline.queues import FrameQueue


class Batcher:
    """Collects batches from a changing set of frame queues.

    Args:
        max_batch_size: Frames per batch at most.
        batch_timeout_ms: How long an incomplete batch waits for more frames.

    Producers call :meth:`notify` (thread-safe) after putting frames, so the batcher
    sleeps when there is nothing to do instead of polling.
    """

    def __init__(self, max_batch_size: int, batch_timeout_ms: float) -> None:
        self.max_batch_size = max_batch_size
        self.batch_timeout_s = batch_timeout_ms / 1000
        self.queues: dict[str, FrameQueue] = {}
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._next = 0
        self._closed = False
        self._wake_pending = False
        self._inferred = 0  # frames of the batch being built that the model will see

    def notify(self) -> None:
        """Wake the batcher; safe to call from any thread.

        Wake-ups are coalesced: while one is scheduled and has not run yet, further calls
        add nothing (the batcher drains every queue when it wakes). At thousands of frames
        per second this saves a loop callback and a self-pipe write per frame.
        """
        if self._wake_pending:
            return
        self._wake_pending = True
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False  # before set(): a put after this schedules a new wake-up
        self._wakeup.set()

    def make_notifier(self) -> Callable[[], None]:
        """The callback a :class:`FrameQueue` should call after a put."""
        return self.notify

    def add(self, stream_id: str, queue: FrameQueue) -> None:
        """Start taking frames from ``queue``."""
        self.queues[stream_id] = queue
        self.notify()

    def close(self) -> None:
        """End :meth:`batches` once every queue is drained (no more queues will be added)."""
        self._closed = True
        self.notify()

    def _drop_finished(self) -> None:
        for sid in [sid for sid, q in self.queues.items() if q.finished]:
            del self.queues[sid]

    def _take_round(self, batch: list[Frame]) -> bool:
        """Take up to one frame from each queue, round-robin; True if any was taken.

        Only frames the model sees count towards the batch size: pass-through frames
        (``infer`` False) ride along with it.
        """
        queues = list(self.queues.values())
        took = False
        for i in range(len(queues)):
            if self._inferred >= self.max_batch_size:
                break
            frame = queues[(self._next + i) % len(queues)].get_nowait()
            if frame is not None:
                batch.append(frame)
                self._inferred += frame.infer
                took = True
        self._next += 1
        return took

    async def batches(self) -> AsyncIterator[list[Frame]]:
        """Yield batches until closed and every queue is finished."""
        while True:
            batch: list[Frame] = []
            self._inferred = 0
            deadline: float | None = None
            while self._inferred < self.max_batch_size:
                self._wakeup.clear()
                if self._take_round(batch):
                    if deadline is None:
                        deadline = time.monotonic() + self.batch_timeout_s
                    continue
                self._drop_finished()
                if self._closed and not self.queues:
                    break
                if deadline is None:
                    await self._wakeup.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns normally when
                # the wake-up and a cancellation arrive together, swallowing the cancellation
                # (the producer then outlives its TaskGroup and waits for a slot forever).
                try:
                    async with asyncio.timeout(remaining):
                        await self._wakeup.wait()
                except TimeoutError:
                    break
            if batch:
                yield batch
            elif self._closed and not self.queues:
                return
