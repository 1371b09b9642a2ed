"""One-shot jobs: run a set of streams (normally video files) through a model to their end.

This is what ``vigil run`` does, as a function that tests and benchmarks call too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vigil.config import Settings
from vigil.events.sinks import EventSink
from vigil.pipeline.stream_state import StreamState, StreamStatus
from vigil.runtime import Runtime, open_runtime
from vigil.specs import StreamSpec
from vigil.triton_connection import TritonConnection


@dataclass
class JobResult:
    """What a job did.

    Attributes:
        streams: Final status (state, reason, counters) of every stream.
        model: Name of the model that ran.
        events_written: Events written to the JSONL file (0 without one).
        elapsed_s: Wall time from the first stream's start to the last event.
    """

    streams: dict[str, StreamStatus] = field(default_factory=dict)
    model: str = ""
    events_written: int = 0
    elapsed_s: float = 0.0

    @property
    def failed(self) -> list[StreamStatus]:
        """Streams that ended in ``error``."""
        return [s for s in self.streams.values() if s.state is StreamState.ERROR]


async def run_streams(
    settings: Settings,
    specs: Sequence[StreamSpec],
    *,
    on_start: Callable[[Runtime], None] | None = None,
    extra_sinks: Sequence[EventSink] = (),
    connection: TritonConnection | None = None,
    before_streams: Callable[[Runtime], Awaitable[None]] | None = None,
) -> JobResult:
    """Run ``specs`` to their end through the configured model.

    Args:
        settings: Vigil settings (Triton, model, pipeline, events).
        specs: The streams; ids must be distinct. Live streams never end by themselves.
        on_start: Called with the runtime once streams are added (progress display).
        extra_sinks: Sinks in addition to the JSONL file.
        connection: An open Triton connection to use (default: connect per settings).
        before_streams: Awaited once the runtime is open, before the first stream is added
            (a job's worker process waits there until every worker is ready).

    Raises:
        ModelNotFoundError: the model is not in the repository (lists the available ones).
        TritonServerError: Triton could not start or died (with its log tail).
    """
    async with open_runtime(settings, extra_sinks=extra_sinks, connection=connection) as rt:
        if before_streams:
            await before_streams(rt)
        started = time.monotonic()
        for spec in specs:
            await rt.streams.add(spec, trusted=True)
        statuses = {m.spec.id: m.status for m in rt.streams.list()}
        if on_start:
            on_start(rt)
        decoders = asyncio.create_task(rt.streams.wait_ended())
        engine = asyncio.create_task(rt.pipeline.wait_stopped())
        await asyncio.wait({decoders, engine}, return_when=asyncio.FIRST_COMPLETED)
        if engine.done():  # the engine stopped before the streams ended: Triton died
            decoders.cancel()
            raise engine.result() or RuntimeError("the pipeline stopped unexpectedly")
        engine.cancel()
        await rt.pipeline.drain()
        elapsed = time.monotonic() - started
        return JobResult(
            streams=statuses,
            model=rt.model.name,
            events_written=rt.jsonl.written if rt.jsonl else 0,
            elapsed_s=elapsed,
        )


def file_spec(stream_id: str, path: str) -> StreamSpec:
    """A stream spec for a local video file path (or an URL, passed through)."""
    if "://" in path:
        return StreamSpec(id=stream_id, url=path)
    return StreamSpec(id=stream_id, url=Path(path).absolute().as_uri())
