"""The pipeline: sources → queues → batcher → preprocess → Triton → parse → events → sinks.

Threads and tasks:

* one decoder thread per stream (PyAV releases the GIL) puts frames into its bounded
  :class:`~vigil.pipeline.queues.FrameQueue`;
* the *producer* coroutine takes cross-stream batches, waits for a free shared-memory slot
  (that wait is the back-pressure), preprocesses into it in a worker thread, and starts the
  inference request — up to ``inflight_requests`` requests run at once;
* the *emitter* coroutine finishes requests in the order they were started (so events of a
  stream stay in frame order), parses the outputs, builds events and hands them to the sinks;
* an optional *watchdog* (e.g. "is the embedded Triton still alive?") aborts the run.

A stream that fails is marked ``error`` with its reason; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from vigil.config import PipelineSettings
from vigil.events.builder import EventBuilder
from vigil.events.sinks import EventSink
from vigil.frame import Frame
from vigil.infer.client import TritonClient
from vigil.infer.errors import InferError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import Slot, SystemShmRing, new_prefix
from vigil.parsers.base import Parser
from vigil.pipeline.batcher import Batcher
from vigil.pipeline.queues import DropPolicy, FrameQueue
from vigil.pipeline.stream import StreamState, StreamStatus
from vigil.preprocess.cpu import CpuPreprocessor, InputFormat
from vigil.sources.base import Source
from vigil.sources.errors import SourceError

log = logging.getLogger(__name__)

_Pending = tuple[list[Frame], Slot, "asyncio.Task[None]"]


class Pipeline:
    """Runs a set of sources through one model until they end.

    Args:
        client: Connection to Triton.
        model: The loaded model.
        parser: Parser for the model's outputs.
        events: Builds events from detections.
        sinks: Where events go.
        settings: Batching and flow-control settings.
        watchdog: Called about twice a second and after a failed request; raising aborts
            the run with that exception (used to notice Triton dying).
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
        self.max_batch = min(settings.max_batch_size, model.max_batch_size or 1)
        self.input = model.inputs[0]
        self.preprocess = CpuPreprocessor(InputFormat.from_tensor(self.input))
        self.streams: dict[str, StreamStatus] = {}
        self._queues: dict[str, FrameQueue] = {}
        self._threads: list[threading.Thread] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preprocess")

    async def run(self, sources: Sequence[Source]) -> dict[str, StreamStatus]:
        """Process every source to its end; returns the final status of each stream.

        Raises:
            InferError: shared memory could not be registered with Triton.
            Exception: whatever the watchdog raised.
        """
        for source in sources:
            if source.stream_id in self.streams:
                raise ValueError(f"duplicate stream id {source.stream_id!r}")
            self.streams[source.stream_id] = StreamStatus(source.stream_id, source.url)
        ring = SystemShmRing(
            new_prefix("ring"),
            self.settings.inflight_requests,
            self.max_batch,
            self.model.inputs,
            self.model.outputs,
        )
        batcher = Batcher(self.max_batch, self.settings.batch_timeout_ms)
        pending: asyncio.Queue[_Pending | None] = asyncio.Queue()
        try:
            for slot in ring.slots:
                await self.client.register_slot(slot)
            for source in sources:
                self._start_stream(source, batcher)
            batcher.close()
            try:
                async with asyncio.TaskGroup() as group:
                    emitter = group.create_task(self._emit(pending, ring))
                    watchdog = group.create_task(self._watch())
                    await self._produce(batcher, ring, pending)
                    pending.put_nowait(None)
                    await emitter
                    watchdog.cancel()
            except BaseExceptionGroup as group_error:
                raise _first_error(group_error) from None
        finally:
            await self._shutdown(ring, pending)
        for status in self.streams.values():
            self._sync_drops(status)
            status.try_transition(StreamState.STOPPED, "end of stream")
        return self.streams

    def _start_stream(self, source: Source, batcher: Batcher) -> None:
        status = self.streams[source.stream_id]
        policy = DropPolicy.DROP_OLDEST if source.is_live else DropPolicy.BLOCK
        queue = FrameQueue(self.settings.queue_size, policy, batcher.notify)
        self._queues[source.stream_id] = queue
        batcher.add(source.stream_id, queue)
        thread = threading.Thread(
            target=_decode,
            args=(source, queue, status),
            name=f"decode-{source.stream_id}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    async def _produce(
        self, batcher: Batcher, ring: SystemShmRing, pending: asyncio.Queue[_Pending | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        async for batch in batcher.batches():
            slot = await ring.acquire()
            try:
                await loop.run_in_executor(
                    self._executor, self.preprocess, batch, slot.inputs[self.input.name]
                )
            except BaseException:
                ring.release(slot)
                raise
            task = asyncio.create_task(self.client.infer(self.model, slot, len(batch)))
            pending.put_nowait((batch, slot, task))

    async def _emit(self, pending: asyncio.Queue[_Pending | None], ring: SystemShmRing) -> None:
        while (item := await pending.get()) is not None:
            batch, slot, task = item
            try:
                await task
            except InferError as e:
                ring.release(slot)
                self.watchdog()
                log.error("batch of %d frames lost: %s", len(batch), e)
                for frame in batch:
                    self.streams[frame.stream_id].stats.dropped["infer_error"] += 1
                continue
            try:
                outputs = {spec.name: slot.outputs[spec.name] for spec in self.model.outputs}
                detections = self.parser.parse(outputs, [(f.width, f.height) for f in batch])
            finally:
                ring.release(slot)
            for frame, dets in zip(batch, detections, strict=True):
                events = self.events.build(frame, dets)
                for sink in self.sinks:
                    await sink.emit(events)
                stats = self.streams[frame.stream_id].stats
                now = time.monotonic()
                stats.frames_processed += 1
                stats.last_processed_monotonic_s = now
                stats.latencies_s.append(now - frame.decoded_monotonic_s)
                for class_id in dets.class_id:
                    stats.detections[self.model.label(int(class_id))] += 1

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.watchdog()

    async def _shutdown(self, ring: SystemShmRing, pending: asyncio.Queue[_Pending | None]) -> None:
        for queue in self._queues.values():
            queue.abort()
        while not pending.empty():
            item = pending.get_nowait()
            if item is not None:
                item[2].cancel()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 5)
        for slot in ring.slots:
            await self.client.unregister_slot(slot)
        ring.close()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for sink in self.sinks:
            await sink.close()

    def _sync_drops(self, status: StreamStatus) -> None:
        queue = self._queues.get(status.stream_id)
        if queue is not None and queue.dropped:
            status.stats.dropped["queue_full"] = queue.dropped


def _decode(source: Source, queue: FrameQueue, status: StreamStatus) -> None:
    """Decoder thread body: frames into the queue until the end, an error, or an abort."""
    try:
        info = source.open()
        status.expected_frames = info.frame_count
        status.try_transition(StreamState.RUNNING)
        for frame in source.frames():
            status.stats.frames_decoded += 1
            if not queue.put(frame):
                break
    except SourceError as e:
        log.error("stream %s failed: %s", status.stream_id, e)
        status.try_transition(StreamState.ERROR, str(e))
    except Exception as e:  # a bug in one source must not take the others down
        log.exception("stream %s crashed", status.stream_id)
        status.try_transition(StreamState.ERROR, f"{source.url}: unexpected error: {e!r}")
    finally:
        status.stats.decode_errors = source.decode_errors
        source.close()
        queue.close()


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real exception in a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
