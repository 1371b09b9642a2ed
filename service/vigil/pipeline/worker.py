"""The decoder thread of one stream: open, decode, reconnect, pace, hand frames on.

A worker owns one stream's source for its whole life. Live sources that fail or end are
reopened with capped exponential backoff (the stream shows ``reconnecting`` meanwhile);
files end with ``stopped``. Whatever happens in one worker stays in that stream: a source
that raises marks only its own stream ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vigil.pipeline.queues import FrameQueue
from vigil.pipeline.stream_state import StreamState, StreamStatus
from vigil.retry import FailureRun
from vigil.sources.base import Source
from vigil.sources.errors import SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a live source is reopened after it fails.

    Attributes:
        enabled: Reopen at all.
        initial_delay_s: Wait before the first reopen.
        max_delay_s: Cap of the exponential backoff.
        multiplier: Backoff growth per failed attempt.
        max_attempts: Give up (state ``error``) after this many failed attempts in a row;
            None retries forever.
    """

    enabled: bool = True
    initial_delay_s: float = 0.5
    max_delay_s: float = 2.0
    multiplier: float = 2.0
    max_attempts: int | None = None

    def delay_s(self, attempt: int) -> float:
        """Delay before reopen number ``attempt`` (0-based)."""
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier**attempt)


@dataclass(frozen=True)
class Pacing:
    """Which decoded frames go to inference.

    Attributes:
        inference_interval: Infer every Nth frame (1 = all).
        max_fps: Live sources: skip frames above this rate; files: play at this rate.
        drop_frame_interval: Keep only every Nth decoded frame (DeepStream's decoder
            ``drop-frame-interval``; 0 or 1 = keep all): the others never reach the pipeline.
        pass_skipped: Frames between inferences still go to the pipeline, marked
            ``infer=False`` (a tracked stream: the tracker predicts their boxes); else they
            are dropped here.
    """

    inference_interval: int = 1
    max_fps: float | None = None
    pass_skipped: bool = False
    drop_frame_interval: int = 0


class StreamWorker:
    """Runs a stream's decoder thread.

    Args:
        make_source: Builds a fresh source (called for every (re)open).
        status: The stream's status, updated from the thread.
        queue: Where frames go.
        reconnect: Reopen policy for live sources.
        pacing: Frame selection and rate.
    """

    def __init__(
        self,
        make_source: Callable[[], Source],
        status: StreamStatus,
        queue: FrameQueue,
        reconnect: ReconnectPolicy,
        pacing: Pacing,
    ) -> None:
        self.make_source = make_source
        self.status = status
        self.queue = queue
        self.reconnect = reconnect
        self.pacing = pacing
        self._stop = threading.Event()
        self._outage = FailureRun()
        self._exit_lock = threading.Lock()
        self._exited = False
        self._on_exit: list[Callable[[], None]] = []
        self._thread = threading.Thread(
            target=self._run, name=f"decode-{status.stream_id}", daemon=True
        )

    def start(self) -> None:
        """Start the decoder thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; it does so after its current read returns."""
        self._stop.set()
        self.queue.abort()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread; True if it has ended."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    async def ended(self) -> None:
        """Wait until the thread has finished its work, without holding a thread to wait.

        A blocking ``join`` in ``asyncio.to_thread`` would park one of the loop's executor
        threads per stopped stream for as long as its last read takes, so removing cameras
        quickly would grow that pool.
        """
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def wake() -> None:
            # a loop that closed first has nobody waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        with self._exit_lock:
            if self._exited:
                return
            self._on_exit.append(wake)
        await done

    @property
    def alive(self) -> bool:
        """Whether the thread is still running."""
        return self._thread.is_alive()

    def _exit(self) -> None:
        with self._exit_lock:
            self._exited = True
            callbacks, self._on_exit = self._on_exit, []
        for callback in callbacks:
            callback()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                source = self.make_source()
                try:
                    if self._stream(source):
                        self.status.try_transition(StreamState.STOPPED, "end of stream")
                        return
                except SourceError as e:
                    if self._stop.is_set():
                        return
                    if not (source.is_live and self.reconnect.enabled) or (
                        self.reconnect.max_attempts is not None
                        and self._outage.count >= self.reconnect.max_attempts
                    ):
                        log.error("stream %s failed: %s", self.status.stream_id, e)
                        self.status.try_transition(StreamState.ERROR, str(e))
                        return
                    delay = self.reconnect.delay_s(self._outage.count)
                    loud = self._outage.failed()
                    self.status.stats.reconnects += 1
                    self.status.try_transition(StreamState.RECONNECTING, str(e))
                    log.log(
                        logging.WARNING if loud else logging.DEBUG,
                        "stream %s: %s; reconnecting in %.1f s (attempt %d)",
                        self.status.stream_id,
                        e,
                        delay,
                        self._outage.count,
                    )
                    if self._stop.wait(delay):
                        return
                finally:
                    self.status.stats.decode_errors += source.decode_errors
                    source.close()
        except Exception as e:  # a bug in one source must not take the others down
            log.exception("stream %s crashed", self.status.stream_id)
            self.status.try_transition(StreamState.ERROR, f"unexpected error: {e!r}")
        finally:
            if self._stop.is_set():
                self.status.try_transition(StreamState.STOPPED, "stopped")
            self.queue.close()
            self._exit()

    def _stream(self, source: Source) -> bool:
        """Open and decode until the end; True at a normal end, False if stopped."""
        info = source.open()
        self._outage.succeeded()  # the backoff starts over after every successful open
        if self.status.expected_frames is None:
            self.status.expected_frames = info.frame_count
        self.status.transition_if(
            {StreamState.STARTING, StreamState.RECONNECTING}, StreamState.RUNNING
        )
        stats = self.status.stats
        interval = self.pacing.inference_interval
        period_s = 1.0 / self.pacing.max_fps if self.pacing.max_fps else 0.0
        next_due = time.monotonic()
        for frame in source.frames():
            stats.frames_decoded += 1
            if self._stop.is_set():
                return False
            drop_every = self.pacing.drop_frame_interval
            if drop_every > 1 and frame.frame_number % drop_every:
                stats.frames_skipped += 1
                continue
            if interval > 1 and frame.frame_number % interval:
                stats.frames_skipped += 1
                if not self.pacing.pass_skipped:
                    continue
                frame = dataclasses.replace(frame, infer=False)
            if period_s:
                now = time.monotonic()
                if source.is_live:
                    if now < next_due:
                        stats.frames_skipped += 1
                        continue
                    next_due = max(next_due + period_s, now)
                else:
                    if now < next_due and self._stop.wait(next_due - now):
                        return False
                    next_due = max(next_due + period_s, time.monotonic() - period_s)
                    # A paced file plays a camera: its frame is captured when it is due, not
                    # when it was decoded (NVDEC hands over several frames per fetch), so
                    # latency figures do not count the wait for the frame's turn.
                    frame = dataclasses.replace(
                        frame, capture_time_s=time.time(), decoded_monotonic_s=time.monotonic()
                    )
            dropped = self.queue.dropped
            if not self.queue.put(frame):
                return False
            if self.queue.dropped != dropped:  # a live stream's full queue lost its oldest
                stats.dropped["queue_full"] += self.queue.dropped - dropped
        return not self._stop.is_set()
