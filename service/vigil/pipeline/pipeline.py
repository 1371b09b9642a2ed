"""The inference engine: queues → batcher → preprocess → Triton → parse → stages → sinks.

Tasks on the event loop:

* the *producer* takes cross-stream batches, waits for a free shared-memory slot (that wait
  is the back-pressure), preprocesses into it in a worker thread, and starts the inference
  request — up to ``inflight_requests`` requests run at once;
* the *emitter* waits for the requests in the order they were started (so events of a
  stream stay in frame order) and hands each finished batch to the *stage thread*, which
  parses the outputs and gives the slot back, then runs the stage chain (tracker,
  analytics, ...) and builds the events — CPU work kept off the loop that also serves the
  REST API — and gives the events to the sinks (with :attr:`Pipeline.overlap_stages`, the
  *deliverer* does that last part while the next batches go to the thread);
* the *watchdog* (e.g. "is the embedded Triton still alive?") stops the engine when it
  raises; :attr:`Pipeline.failure` then holds the reason.

Frames the model should not see (a stream's inference interval, when the stream is tracked)
travel with the batches as pass-through frames: they take no slot and no request, and the
tracker predicts their boxes.

Streams are attached and detached while the engine runs (their decoder threads are managed
by :class:`~vigil.pipeline.manager.StreamManager`); neither pauses the other streams.

Everything that depends on the model — preprocessing, the shared-memory ring, the parser,
the event builder — is bundled in a :class:`Route`. A hot swap prepares and warms up a new
route beside the serving one, then :meth:`Pipeline.switch` replaces it between two batches:
each batch is wholly on one version, so every stream changes version exactly once, at a
frame boundary. The old route drains (its requests finish and are emitted) before it is
retired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from vigil.accel import CPU_PATH, Acceleration
from vigil.classifiers import SecondaryClassifiers
from vigil.config import PipelineSettings
from vigil.events.builder import EventBuilder
from vigil.events.sinks import EventSink
from vigil.frame import Frame
from vigil.infer.client import TritonClient, cancelled_under_us
from vigil.infer.errors import InferError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import SlotRing
from vigil.metrics import PipelineMetrics
from vigil.parsers.base import Parser
from vigil.pipeline.batcher import Batcher
from vigil.pipeline.batches import (
    SentBatch,
    StagedBatch,
    finish_batch,
    frame_results,
    parse_and_release,
    run_stages,
)
from vigil.pipeline.queues import DropPolicy, FrameQueue
from vigil.pipeline.route import Route, check_model, same_tensors
from vigil.pipeline.stream_state import StreamStatus
from vigil.pipeline.taps import ResultTaps
from vigil.shm_segments import new_prefix
from vigil.specs import StreamSpec
from vigil.stages.base import FrameResult, StageChain

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        secondary: Classifiers on crops of the detections of untracked streams, run before
            the chain (started and stopped by the caller; tracked streams classify each
            track once, in the chain).
        acceleration: CPU or GPU path: where the ring lives and who preprocesses
            (default: the CPU path).
        chain: Stages after the parser (tracker, analytics, ...); they keep per-stream
            state, which survives model swaps.
    """

    #: Hand a finished batch to the stage thread (parse, slot back, stages, events in one
    #: visit) without waiting for the one before it to be delivered. Off: the design measured
    #: at 0.93–0.94 of the model on three H100 hosts; whether this helps on a slower host is
    #: not yet measured (GPU bench --overlap; docs/benchmarks.md, 2026-12-05 late).
    overlap_stages = False

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
        secondary: SecondaryClassifiers | None = None,
        acceleration: Acceleration = CPU_PATH,
        chain: StageChain | None = None,
    ) -> None:
        check_model(model)
        self.client = client
        self.sinks = list(sinks)
        self.settings = settings
        self.watchdog = watchdog or (lambda: None)
        self.metrics = metrics or PipelineMetrics()
        self.secondary = secondary
        self.acceleration = acceleration
        self.streams: dict[str, StreamStatus] = {}
        self.failure: BaseException | None = None
        self._initial = (model, parser, events)
        self._route: Route | None = None
        self._rings: set[SlotRing] = set()
        self._queues: dict[str, FrameQueue] = {}
        self.chain = chain or StageChain()
        #: Live view and recording triggers: see every batch's results after the chain.
        self.taps = ResultTaps()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preprocess")
        self._post = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stages")
        self._batcher: Batcher | None = None
        self._pending: asyncio.Queue[SentBatch | None] = asyncio.Queue()
        # overlap_stages: batches in the stage thread, for _deliver; bounded, so a stuck sink
        # still holds requests in their slots (3: in the thread, queued, being delivered).
        self._finishing: asyncio.Queue[StagedBatch | None] = asyncio.Queue(maxsize=3)
        self._main: asyncio.Task[None] | None = None
        self._recent: deque[Frame] = deque(maxlen=settings.max_batch_size)
        self._serving = asyncio.Event()  # cleared while inference is paused (Triton down)
        self._serving.set()
        self.paused_reason: str | None = None

    @property
    def route(self) -> Route:
        """The route new batches take."""
        if self._route is None:
            raise RuntimeError("start() the pipeline first")
        return self._route

    @property
    def model(self) -> ModelInfo:
        """The model version new batches go to."""
        return self.route.model if self._route else self._initial[0]

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create and register the shared-memory ring and start the engine's tasks.

        Raises:
            InferError: Triton cannot map the shared memory.
        """
        model, parser, events = self._initial
        self._route = await self.prepare_route(model, parser, events)
        self._batcher = Batcher(self._max_batch(model), self.settings.batch_timeout_ms)
        self._main = asyncio.create_task(self._supervise(), name="pipeline")

    async def stop(self) -> None:
        """Stop the engine: drop queued frames, cancel requests, free the rings, close sinks."""
        for queue in self._queues.values():
            queue.abort()
        if self._batcher is not None:
            self._batcher.close()
        if self._main is not None and not self._main.done():
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
        while not self._pending.empty():
            item = self._pending.get_nowait()
            if item is not None and item.task is not None:
                item.task.cancel()
        while not self._finishing.empty():
            entry = self._finishing.get_nowait()
            if entry is not None:
                entry.job.cancel()  # not started yet: it never reads its slot
                entry.batch.route.finished()
        # A batch the stage thread is parsing reads its slot: let it end before the rings go.
        await asyncio.get_running_loop().run_in_executor(self._post, lambda: None)
        for ring in list(self._rings):
            await self._release_ring(ring)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._post.submit(self.chain.close)
        self._post.shutdown(wait=True)
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

    def pause(self, reason: str) -> None:
        """Stop taking batches (Triton is down): frames wait in the streams' queues, where
        live streams drop the oldest (counted) and files wait; requests in flight fail and
        are counted as lost. Idempotent."""
        self.paused_reason = reason
        self._serving.clear()

    def resume(self, outage_s: float = 0.0) -> None:
        """Take batches again after :meth:`pause`; the stages hear of the ``outage_s`` gap
        (the tracker bridges it, so ids carry on)."""
        self.paused_reason = None
        self._post.submit(self.chain.inference_resumed, outage_s)
        self._serving.set()

    def fail(self, error: BaseException) -> None:
        """Stop the engine because of ``error`` (e.g. Triton could not be recovered)."""
        if self.failure is None:
            self.failure = error
        if self._main is not None:
            self._main.cancel()

    async def wait_stopped(self) -> BaseException | None:
        """Wait until the engine stops by itself; returns why (None after a drain)."""
        if self._main is not None:
            await asyncio.wait([self._main])
        return self.failure

    # --- model routes (hot swap) -----------------------------------------------------------

    async def prepare_route(
        self, model: ModelInfo, parser: Parser, events: EventBuilder | None = None
    ) -> Route:
        """Build a route for ``model`` beside the serving one; nothing is routed to it yet.

        The serving route's ring is reused when the tensors are the same; otherwise a new
        ring is made and registered with Triton.

        Raises:
            UnsupportedModelError: Vigil cannot feed the model's input.
            InferError: Triton cannot map the new ring.
        """
        check_model(model)
        preprocess = self.acceleration.make_preprocessor(model.input_format())
        if events is None:
            events = self.route.events.for_model(model)
        current = self._route
        if current is not None and same_tensors(current.model, model):
            ring = current.ring
        else:
            ring = await self._new_ring(model)
        return Route(model, parser, events, preprocess, ring)

    async def warm_up(self, route: Route, rounds: int = 2) -> None:
        """Run ``rounds`` real requests on a prepared route and parse their outputs.

        The inputs are the most recent frames the pipeline saw (a gray frame if none yet),
        so the new version has run — and its parser has read its outputs — before any
        stream depends on it.

        Raises:
            InferError: a request failed or the parser could not read the outputs.
        """
        # Two frames are enough to run every layer; a full batch would hold a shared ring
        # slot (and the preprocessing thread) longer while streams are waiting.
        frames = list(self._recent)[-2:] or [_gray_frame()]
        loop = asyncio.get_running_loop()
        for _ in range(rounds):
            slot = await route.ring.acquire()
            try:
                await loop.run_in_executor(
                    self._executor,
                    route.preprocess,
                    frames,
                    slot.inputs[route.model.inputs[0].name],
                )
                await self.client.infer(route.model, slot, len(frames))
                outputs = slot.host_outputs(len(frames))
                try:
                    route.parser.parse(outputs, [(f.width, f.height) for f in frames])
                except Exception as e:  # a parser bug or unexpected outputs: refuse the swap
                    raise InferError(f"{route.label}: parser could not read outputs: {e}") from e
            finally:
                route.ring.release(slot)

    def switch(self, route: Route) -> Route:
        """Send every batch from now on to ``route``; returns the route it replaces.

        The producer reads the route once per batch, so the change falls between two
        batches.
        """
        old = self.route
        self._route = route
        if self._batcher is not None:
            self._batcher.max_batch_size = self._max_batch(route.model)
        log.info("routing batches to %s (was %s)", route.label, old.label)
        return old

    async def retire(self, route: Route) -> None:
        """Wait for a replaced route's requests to be emitted, then free its ring if no
        other route uses it."""
        await route.drained()
        await self.discard(route)

    async def discard(self, route: Route) -> None:
        """Free a route that is not serving (a failed swap's, or a drained one's)."""
        in_use = {r.ring for r in (self._route,) if r is not None}
        if route.ring not in in_use:
            await self._release_ring(route.ring)

    # --- streams ---------------------------------------------------------------------------

    def attach(self, spec: StreamSpec, status: StreamStatus, queue: FrameQueue) -> None:
        """Start batching frames from ``queue`` for the stream ``spec`` describes."""
        assert self._batcher is not None, "start() the pipeline first"
        self.streams[status.stream_id] = status
        self._queues[status.stream_id] = queue
        self._post.submit(self.chain.stream_added, spec)
        self._batcher.add(status.stream_id, queue)

    def detach(self, stream_id: str) -> None:
        """Stop taking frames from a stream; frames already in flight are still emitted."""
        queue = self._queues.pop(stream_id, None)
        self.streams.pop(stream_id, None)
        if queue is not None:
            queue.abort()
            # In the chain's thread, so no stage sees a frame of this stream after this.
            self._post.submit(self.chain.stream_removed, stream_id)
        if self._batcher is not None:
            self._batcher.notify()

    def make_queue(self, live: bool, policy: str | None = None) -> FrameQueue:
        """A frame queue wired to this pipeline's batcher."""
        assert self._batcher is not None, "start() the pipeline first"
        chosen = (
            DropPolicy(policy) if policy else (DropPolicy.DROP_OLDEST if live else DropPolicy.BLOCK)
        )
        return FrameQueue(self.settings.queue_size, chosen, self._batcher.notify)

    def set_batch_timeout(self, timeout_ms: float) -> None:
        """Change how long an incomplete batch waits for more frames (from the next batch)."""
        self.settings = self.settings.model_copy(update={"batch_timeout_ms": timeout_ms})
        if self._batcher is not None:
            self._batcher.batch_timeout_s = timeout_ms / 1000

    def queue_depths(self) -> dict[str, int]:
        """Frames waiting per stream."""
        return {sid: len(q) for sid, q in self._queues.items()}

    # --- tasks -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                emitter = group.create_task(self._emit())
                deliverer = group.create_task(self._deliver())
                watchdog = group.create_task(self._watch())
                await self._produce()
                self._pending.put_nowait(None)
                await emitter
                await self._finishing.put(None)
                await deliverer
                watchdog.cancel()
        except BaseExceptionGroup as group_error:
            self.failure = _first_error(group_error)
            log.error("pipeline stopped: %s", self.failure)
        except asyncio.CancelledError:
            if self.failure is None:  # stop(), not fail()
                raise
            log.error("pipeline stopped: %s", self.failure)

    async def _produce(self) -> None:
        if self._batcher is None:
            raise RuntimeError("start() the pipeline first")
        loop = asyncio.get_running_loop()
        async for batch in self._batcher.batches():
            inferred = [f for f in batch if f.infer]
            if not inferred:  # only frames between inferences: they go to the tracker
                route = self.route
                route.started()
                self._pending.put_nowait(SentBatch(batch, [], route))
                if not self._serving.is_set():
                    await self._serving.wait()
                continue
            ring = self.route.ring
            slot = await ring.acquire()
            # Read the route once the slot is ours: a swap may have happened while waiting,
            # and the slot fits the new route only if it shares the ring.
            route = self.route
            if route.ring is not ring:
                if ring in self._rings:
                    ring.release(slot)
                slot = await route.ring.acquire()
            route.started()
            try:
                await loop.run_in_executor(
                    self._executor,
                    route.preprocess,
                    inferred,
                    slot.inputs[route.model.inputs[0].name],
                )
            except BaseException:
                route.ring.release(slot)
                route.finished()
                raise
            self._recent.extend(inferred)
            self.metrics.batch_size.observe(len(inferred))
            task = asyncio.create_task(self.client.infer(route.model, slot, len(inferred)))
            self._pending.put_nowait(
                SentBatch(batch, inferred, route, slot, task, time.perf_counter())
            )
            if not self._serving.is_set():  # the next batch waits until Triton is back
                await self._serving.wait()

    async def _emit(self) -> None:
        """Wait for the requests in the order they were started and hand each finished batch
        to the stage thread; deliver it before the next (or, with :attr:`overlap_stages`,
        let :meth:`_deliver` do that while the next batches go to the thread)."""
        loop = asyncio.get_running_loop()
        overlapped = False
        while (item := await self._pending.get()) is not None:
            # Untracked streams with secondary classifiers: the stages run after the (async)
            # classification, at delivery. Batches handed over before a change to inline
            # delivery are delivered first, to keep the stages' order.
            classify = self.secondary is not None and not self.chain.tracks
            overlap = self.overlap_stages and not classify
            if overlapped and not overlap:
                await self._finishing.join()
            overlapped = overlap
            done = False
            try:
                done = await self._request_done(item)
            finally:
                if not done:  # lost, or the engine is stopping
                    item.route.finished()
            if not done:
                continue
            if overlap:  # parse, slot back, stages and events in one visit to the thread
                job = loop.run_in_executor(
                    self._post, finish_batch, self.chain, self.taps, loop, item
                )
                try:
                    await self._finishing.put(StagedBatch(item, job, parsed_only=False))
                except BaseException:
                    item.route.finished()
                    raise
                continue
            job = loop.run_in_executor(self._post, parse_and_release, loop, item)
            await self._deliver_one(StagedBatch(item, job, parsed_only=True))

    async def _request_done(self, item: SentBatch) -> bool:
        """Wait for the batch's request; False when it was lost (counted, slot released)."""
        if item.task is None or item.slot is None:  # pass-through frames only
            return True
        route, inferred = item.route, item.inferred
        try:
            await item.task
        except (InferError, asyncio.CancelledError) as e:
            # A request cancelled under us (its gRPC channel closed) is a lost batch like
            # a failed one; ending here as if *we* were cancelled would stop the emitter
            # silently and keep the slot, and the next warm-up would wait for it forever.
            if isinstance(e, asyncio.CancelledError) and not cancelled_under_us():
                raise
            route.ring.release(item.slot)
            self.watchdog()
            reason = e if isinstance(e, InferError) else "its connection to Triton closed"
            log.error("batch of %d frames lost on %s: %s", len(inferred), route.label, reason)
            for status in filter(None, (self.streams.get(f.stream_id) for f in inferred)):
                status.stats.dropped["infer_error"] += 1
            return False
        self.metrics.request_seconds.observe(time.perf_counter() - item.sent)
        return True

    async def _deliver(self) -> None:
        """Deliver the batches :meth:`_emit` handed over with :attr:`overlap_stages`."""
        while (staged := await self._finishing.get()) is not None:
            try:
                await self._deliver_one(staged)
            finally:
                self._finishing.task_done()

    async def _deliver_one(self, staged: StagedBatch) -> None:
        """Give a batch's events to the sinks and count its frames (the stages first, when
        its job only parsed it)."""
        loop = asyncio.get_running_loop()
        item = staged.batch
        try:
            if staged.parsed_only:
                detections = await staged.job
                if self.secondary is not None and detections and not self.chain.tracks:
                    # untracked: classify every due frame's objects (tracked streams
                    # classify each track once, in the chain)
                    detections = await self.secondary.run(item.inferred, detections)
                results = frame_results(item, detections)
                # off the event loop (the REST API shares it); one thread, so per-stream
                # state sees frames in order
                events = await loop.run_in_executor(
                    self._post, run_stages, self.chain, self.taps, item.route, results
                )
            else:
                results, events = await staged.job
            # One emit per inference batch (frames in order): sinks such as the Kafka outbox
            # then store a whole batch in one transaction.
            for sink in self.sinks:
                await sink.emit(events)
            self._count(item.route, results)
        finally:
            item.route.finished()

    def _count(self, route: Route, results: list[FrameResult]) -> None:
        route.emitted += len(results)
        if not route.first_emit.done():
            route.first_emit.set_result(time.monotonic())
        self.metrics.frames_by_version.labels(route.model.name, route.model.version).inc(
            len(results)
        )
        now = time.monotonic()
        for result in results:
            frame = result.frame
            self.metrics.frame_latency_seconds.observe(time.time() - frame.capture_time_s)
            status = self.streams.get(frame.stream_id)
            if status is None:  # detached while in flight: events still go out
                continue
            stats = status.stats
            stats.frames_processed += 1
            stats.last_processed_monotonic_s = now
            stats.latencies_s.append(now - frame.decoded_monotonic_s)
            stats.model_version = route.model.version
            if result.inferred:
                for class_id in result.detections.class_id:
                    stats.detections[route.model.label(int(class_id))] += 1

    async def in_chain(self, call: Callable[[], T]) -> T:
        """Run ``call`` in the stage chain's thread, between two batches (stage state is
        only ever touched there: reconfiguring or reading a stage goes through here)."""
        return await asyncio.get_running_loop().run_in_executor(self._post, call)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.watchdog()

    # --- rings -----------------------------------------------------------------------------

    def _max_batch(self, model: ModelInfo) -> int:
        return min(self.settings.max_batch_size, model.max_batch_size or 1)

    async def _new_ring(self, model: ModelInfo) -> SlotRing:
        ring = self.acceleration.make_ring(
            new_prefix("ring"),
            self.settings.inflight_requests,
            self._max_batch(model),
            model.inputs,
            model.outputs,
        )
        self._rings.add(ring)
        try:
            for slot in ring.slots:
                await self.client.register_slot(slot)
        except BaseException:
            await self._release_ring(ring)
            raise
        return ring

    async def _release_ring(self, ring: SlotRing) -> None:
        if ring not in self._rings:
            return
        self._rings.discard(ring)
        for slot in ring.slots:
            await self.client.unregister_slot(slot)
        ring.close()


def _gray_frame() -> Frame:
    """A mid-gray 640×360 frame, to warm up a model before any stream has delivered one."""
    return Frame.captured_now("warm-up", 0, None, np.full((360, 640, 3), 128, np.uint8))


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real exception in a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
