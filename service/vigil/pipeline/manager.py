"""The set of streams a running pipeline serves: add, remove, change, start, stop.

Every operation is a coroutine on the event loop and returns promptly: decoder threads are
started and stopped here, but never waited for on the caller's time (a thread blocked in a
camera read ends within the source's read timeout, and is joined in the background).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vigil.pipeline.pipeline import Pipeline
from vigil.pipeline.stream_state import IllegalTransitionError, StreamState, StreamStatus
from vigil.pipeline.worker import Pacing, ReconnectPolicy, StreamWorker
from vigil.sources.base import Source
from vigil.sources.confine import FileRoots
from vigil.specs import StreamPatch, StreamSpec

log = logging.getLogger(__name__)


class StreamExistsError(ValueError):
    """A stream with this id is already there."""


# StreamSpec fields that decide which decoded frames go on (the worker's Pacing)
_PACING_FIELDS = ("inference_interval", "max_fps", "drop_frame_interval")


class StreamLimitError(RuntimeError):
    """The service already runs as many streams as it may (``pipeline.max_streams``)."""


class StreamNotFoundError(KeyError):
    """No stream has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "stream not found"


@dataclass
class ManagedStream:
    """A stream's spec, status and current decoder."""

    spec: StreamSpec
    status: StreamStatus
    worker: StreamWorker | None = None


class StreamManager:
    """Owns the decoder threads of a pipeline's streams.

    Args:
        pipeline: The started engine the streams feed.
        make_source: Builds a source for a spec (called for every (re)open).
        reconnect: Reopen policy for live sources.
        max_streams: More streams than this are refused.
        file_roots: Where file streams from clients may lie (``None``: anywhere).
        prepare: Checks a spec and gets what it needs ready before the stream starts (its
            plugin stages); raises ``ValueError`` to refuse it.
        release: Frees what ``prepare`` got once the stream is removed.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        make_source: Callable[[StreamSpec], Source],
        reconnect: ReconnectPolicy,
        max_streams: int = 256,
        file_roots: FileRoots | None = None,
        prepare: Callable[[StreamSpec], None] | None = None,
        release: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.max_streams = max_streams
        self.file_roots = file_roots
        self.prepare = prepare
        self.release = release
        self.pipeline = pipeline
        self.make_source = make_source
        self.reconnect = reconnect
        self._streams: dict[str, ManagedStream] = {}
        self._joins: set[asyncio.Task[None]] = set()

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._streams

    def get(self, stream_id: str) -> ManagedStream:
        """The stream with this id.

        Raises:
            StreamNotFoundError: no such stream.
        """
        try:
            return self._streams[stream_id]
        except KeyError:
            raise StreamNotFoundError(f"no stream with id {stream_id!r}") from None

    def list(self) -> list[ManagedStream]:
        """All streams, in the order they were added."""
        return list(self._streams.values())

    def statuses(self) -> list[StreamStatus]:
        """The status of every stream."""
        return [m.status for m in self._streams.values()]

    async def add(self, spec: StreamSpec, *, trusted: bool = False) -> ManagedStream:
        """Add a stream and start it.

        Args:
            spec: The stream.
            trusted: The operator's own stream (config file, command line): its file path is
                not confined to ``file_roots``.

        Raises:
            StreamExistsError: the id is taken.
            StreamLimitError: ``max_streams`` streams exist already.
            FileNotAllowedError: a client's file stream outside ``file_roots``.
            ValueError: ``prepare`` refused the spec (a plugin stage that cannot be loaded).
        """
        if not trusted and self.file_roots is not None:
            self.file_roots.check(spec)
        if spec.id in self._streams:
            raise StreamExistsError(f"stream {spec.id!r} already exists")
        if len(self._streams) >= self.max_streams:
            raise StreamLimitError(
                f"stream limit reached: {len(self._streams)} streams run "
                f"(pipeline.max_streams = {self.max_streams}); remove one first"
            )
        if self.prepare is not None:  # last: nothing is left prepared for a refused stream
            self.prepare(spec)
        managed = ManagedStream(spec, StreamStatus(spec.id, spec.url))
        self._start(managed)
        self._streams[spec.id] = managed
        return managed

    async def remove(self, stream_id: str) -> None:
        """Stop a stream and forget it.

        Raises:
            StreamNotFoundError: no such stream.
        """
        managed = self.get(stream_id)
        del self._streams[stream_id]
        self._stop(managed)
        if self.release is not None:
            await self.release(stream_id)

    async def update(self, stream_id: str, patch: StreamPatch) -> ManagedStream:
        """Apply a change: name, inference or drop-frame interval, max fps, or desired state.

        Raises:
            StreamNotFoundError: no such stream.
            IllegalTransitionError: e.g. stopping a stopped stream.
        """
        managed = self.get(stream_id)
        given = patch.model_fields_set
        changes = {k: getattr(patch, k) for k in ("name", *_PACING_FIELDS) if k in given}
        for key in ("inference_interval", "drop_frame_interval"):  # None: leave as is
            if key in changes and changes[key] is None:
                del changes[key]
        pacing_changed = not changes.keys().isdisjoint(_PACING_FIELDS)
        if patch.state == "stopped":
            if managed.status.state in (StreamState.STOPPED, StreamState.ERROR):
                raise IllegalTransitionError(
                    f"stream {stream_id!r} is already {managed.status.state}"
                )
            managed.spec = managed.spec.model_copy(update=changes)
            self._stop(managed)
            managed.status.try_transition(StreamState.STOPPED, "stopped by request")
        elif patch.state == "running":
            if managed.status.state not in (StreamState.STOPPED, StreamState.ERROR):
                raise IllegalTransitionError(
                    f"stream {stream_id!r} is already {managed.status.state}"
                )
            managed.spec = managed.spec.model_copy(update=changes)
            managed.status.transition(StreamState.STARTING)
            self._start(managed)
        else:
            managed.spec = managed.spec.model_copy(update=changes)
            if pacing_changed and managed.worker is not None:
                managed.worker.pacing = self._pacing(managed.spec)
        return managed

    async def stop_all(self, timeout_s: float = 10.0) -> None:
        """Stop every stream and wait (bounded) for their threads."""
        for managed in list(self._streams.values()):
            self._stop(managed)
        self._streams.clear()
        if self._joins:
            await asyncio.wait(self._joins, timeout=timeout_s)

    async def wait_ended(self) -> None:
        """Wait until every stream's decoder has ended (files at their end, failures)."""
        for managed in list(self._streams.values()):
            if managed.worker is not None:
                await managed.worker.ended()

    @property
    def threads_alive(self) -> int:
        """Decoder threads still running (including ones being stopped)."""
        return sum(1 for m in self._streams.values() if m.worker and m.worker.alive) + len(
            self._joins
        )

    def _start(self, managed: ManagedStream) -> None:
        spec = managed.spec
        probe = self.make_source(spec)
        queue = self.pipeline.make_queue(probe.is_live, spec.drop_policy)
        first = [probe]

        def make_source() -> Source:
            return first.pop() if first else self.make_source(spec)

        worker = StreamWorker(
            make_source,
            managed.status,
            queue,
            self.reconnect,
            self._pacing(spec),
        )
        managed.worker = worker
        self.pipeline.attach(spec, managed.status, queue)
        worker.start()

    def _pacing(self, spec: StreamSpec) -> Pacing:
        return Pacing(
            inference_interval=spec.inference_interval,
            max_fps=spec.max_fps,
            # a tracked stream's skipped frames still go through, for the tracker to predict
            pass_skipped=self.pipeline.chain.tracks,
            drop_frame_interval=spec.drop_frame_interval,
        )

    def _stop(self, managed: ManagedStream) -> None:
        worker, managed.worker = managed.worker, None
        self.pipeline.detach(managed.spec.id)
        if worker is None:
            return
        worker.stop()
        task = asyncio.create_task(worker.ended())
        self._joins.add(task)
        task.add_done_callback(self._joins.discard)
