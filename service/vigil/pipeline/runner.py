"""The inference engine: queues → batcher → preprocess → Triton → parse → events → sinks.

Tasks on the event loop:

* the *producer* takes cross-stream batches, waits for a free shared-memory slot (that wait
  is the back-pressure), preprocesses into it in a worker thread, and starts the inference
  request — up to ``inflight_requests`` requests run at once;
* the *emitter* finishes requests in the order they were started (so events of a stream
  stay in frame order), parses the outputs, builds events and hands them to the sinks;
* the *watchdog* (e.g. "is the embedded Triton still alive?") stops the engine when it
  raises; :attr:`Pipeline.failure` then holds the reason.

Streams are attached and detached while the engine runs (their decoder threads are managed
by :class:`~vigil.pipeline.manager.StreamManager`); neither pauses the other streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from vigil.accel import CPU_PATH, Acceleration
from vigil.config import PipelineSettings
from vigil.events.builder import EventBuilder
from vigil.events.sinks import EventSink
from vigil.frame import Frame
from vigil.infer.client import TritonClient
from vigil.infer.errors import InferError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import Slot, SlotRing, new_prefix
from vigil.metrics import PipelineMetrics
from vigil.parsers.base import Parser
from vigil.pipeline.batcher import Batcher
from vigil.pipeline.queues import DropPolicy, FrameQueue
from vigil.pipeline.stream import StreamStatus
from vigil.preprocess.base import InputFormat

log = logging.getLogger(__name__)

_Pending = tuple[list[Frame], Slot, "asyncio.Task[None]", float]


class Pipeline:
    """Batched inference for a changing set of streams.

    Args:
        client: Connection to Triton.
        model: The loaded model.
        parser: Parser for the model's outputs.
        events: Builds events from detections.
        sinks: Where events go.
        settings: Batching and flow-control settings.
        watchdog: Called about twice a second and after a failed request; raising stops
            the engine with that exception (used to notice Triton dying).
        metrics: Histograms to feed (batch size, request and frame latency).
        acceleration: CPU or GPU path: where the ring lives and who preprocesses
            (default: the CPU path).
    """

    def __init__(
        self,
        *,
        client: TritonClient,
        model: ModelInfo,
        parser: Parser,
        events: EventBuilder,
        sinks: Sequence[EventSink],
        settings: PipelineSettings,
        watchdog: Callable[[], None] | None = None,
        metrics: PipelineMetrics | None = None,
        acceleration: Acceleration = CPU_PATH,
    ) -> None:
        if len(model.inputs) != 1:
            raise InferError(f"model {model.name!r} must have one image input")
        self.client = client
        self.model = model
        self.parser = parser
        self.events = events
        self.sinks = list(sinks)
        self.settings = settings
        self.watchdog = watchdog or (lambda: None)
        self.metrics = metrics or PipelineMetrics()
        self.max_batch = min(settings.max_batch_size, model.max_batch_size or 1)
        self.input = model.inputs[0]
        self.acceleration = acceleration
        self.preprocess = acceleration.make_preprocessor(InputFormat.from_tensor(self.input))
        self.streams: dict[str, StreamStatus] = {}
        self.failure: BaseException | None = None
        self._queues: dict[str, FrameQueue] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preprocess")
        self._ring: SlotRing | None = None
        self._batcher: Batcher | None = None
        self._pending: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._main: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create and register the shared-memory ring and start the engine's tasks.

        Raises:
            InferError: Triton cannot map the shared memory.
        """
        self._ring = self.acceleration.make_ring(
            new_prefix("ring"),
            self.settings.inflight_requests,
            self.max_batch,
            self.model.inputs,
            self.model.outputs,
        )
        try:
            for slot in self._ring.slots:
                await self.client.register_slot(slot)
        except BaseException:
            await self._release_ring()
            raise
        self._batcher = Batcher(self.max_batch, self.settings.batch_timeout_ms)
        self._main = asyncio.create_task(self._supervise(), name="pipeline")

    async def stop(self) -> None:
        """Stop the engine: drop queued frames, cancel requests, free the ring, close sinks."""
        for queue in self._queues.values():
            queue.abort()
        if self._batcher is not None:
            self._batcher.close()
        if self._main is not None and not self._main.done():
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
        while not self._pending.empty():
            item = self._pending.get_nowait()
            if item is not None:
                item[2].cancel()
        await self._release_ring()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for sink in self.sinks:
            await sink.close()

    async def drain(self) -> None:
        """Wait until every attached queue is finished and every request is emitted.

        Raises:
            BaseException: whatever stopped the engine (see :attr:`failure`).
        """
        if self._batcher is None or self._main is None:
            raise RuntimeError("start() the pipeline first")
        self._batcher.close()
        await asyncio.wait([self._main])
        if self.failure is not None:
            raise self.failure

    async def wait_stopped(self) -> BaseException | None:
        """Wait until the engine stops by itself; returns why (None after a drain)."""
        if self._main is not None:
            await asyncio.wait([self._main])
        return self.failure

    # --- streams ---------------------------------------------------------------------------

    def attach(self, status: StreamStatus, queue: FrameQueue) -> None:
        """Start batching frames from ``queue`` for the stream ``status`` describes."""
        assert self._batcher is not None, "start() the pipeline first"
        self.streams[status.stream_id] = status
        self._queues[status.stream_id] = queue
        self._batcher.add(status.stream_id, queue)

    def detach(self, stream_id: str) -> None:
        """Stop taking frames from a stream; frames already in flight are still emitted."""
        queue = self._queues.pop(stream_id, None)
        self.streams.pop(stream_id, None)
        if queue is not None:
            queue.abort()
        if self._batcher is not None:
            self._batcher.notify()

    def make_queue(self, live: bool, policy: str | None = None) -> FrameQueue:
        """A frame queue wired to this pipeline's batcher."""
        assert self._batcher is not None, "start() the pipeline first"
        chosen = (
            DropPolicy(policy) if policy else (DropPolicy.DROP_OLDEST if live else DropPolicy.BLOCK)
        )
        return FrameQueue(self.settings.queue_size, chosen, self._batcher.notify)

    def queue_depths(self) -> dict[str, int]:
        """Frames waiting per stream."""
        return {sid: len(q) for sid, q in self._queues.items()}

    # --- tasks -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                emitter = group.create_task(self._emit())
                watchdog = group.create_task(self._watch())
                await self._produce()
                self._pending.put_nowait(None)
                await emitter
                watchdog.cancel()
        except BaseExceptionGroup as group_error:
            self.failure = _first_error(group_error)
            log.error("pipeline stopped: %s", self.failure)

    async def _produce(self) -> None:
        if self._batcher is None or self._ring is None:
            raise RuntimeError("start() the pipeline first")
        loop = asyncio.get_running_loop()
        async for batch in self._batcher.batches():
            slot = await self._ring.acquire()
            try:
                await loop.run_in_executor(
                    self._executor, self.preprocess, batch, slot.inputs[self.input.name]
                )
            except BaseException:
                self._ring.release(slot)
                raise
            self.metrics.batch_size.observe(len(batch))
            task = asyncio.create_task(self.client.infer(self.model, slot, len(batch)))
            self._pending.put_nowait((batch, slot, task, time.perf_counter()))

    async def _emit(self) -> None:
        assert self._ring is not None
        ring = self._ring
        while (item := await self._pending.get()) is not None:
            batch, slot, task, sent = item
            try:
                await task
            except InferError as e:
                ring.release(slot)
                self.watchdog()
                log.error("batch of %d frames lost: %s", len(batch), e)
                for frame in batch:
                    status = self.streams.get(frame.stream_id)
                    if status is not None:
                        status.stats.dropped["infer_error"] += 1
                continue
            self.metrics.request_seconds.observe(time.perf_counter() - sent)
            try:
                outputs = slot.host_outputs(len(batch))
                detections = self.parser.parse(outputs, [(f.width, f.height) for f in batch])
            finally:
                ring.release(slot)
            # One emit per inference batch (frames in order): sinks such as the Kafka outbox
            # then store a whole batch in one transaction.
            events = [
                e for f, d in zip(batch, detections, strict=True) for e in self.events.build(f, d)
            ]
            for sink in self.sinks:
                await sink.emit(events)
            for frame, dets in zip(batch, detections, strict=True):
                now = time.monotonic()
                self.metrics.frame_latency_seconds.observe(time.time() - frame.capture_time_s)
                status = self.streams.get(frame.stream_id)
                if status is None:  # detached while in flight: events still go out
                    continue
                stats = status.stats
                stats.frames_processed += 1
                stats.last_processed_monotonic_s = now
                stats.latencies_s.append(now - frame.decoded_monotonic_s)
                for class_id in dets.class_id:
                    stats.detections[self.model.label(int(class_id))] += 1

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.watchdog()

    async def _release_ring(self) -> None:
        if self._ring is None:
            return
        for slot in self._ring.slots:
            await self.client.unregister_slot(slot)
        self._ring.close()
        self._ring = None


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real exception in a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
