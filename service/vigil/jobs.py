"""One-shot jobs: run a set of video files through a model to their end.

This is what ``vigil run`` does, as a function that tests and benchmarks call too. It
wires the pieces (Triton connection, model, parser, sinks, pipeline) and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vigil.config import Settings
from vigil.events.builder import EventBuilder
from vigil.events.schema import PlaceInfo
from vigil.events.sinks import EventSink, JsonlSink
from vigil.parsers import make_parser
from vigil.pipeline.runner import Pipeline
from vigil.pipeline.stream import StreamState, StreamStatus
from vigil.sources.base import Source
from vigil.triton.runtime import TritonConnection, connect

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    """What a job did.

    Attributes:
        streams: Final status (state, reason, counters) of every stream.
        model: Name of the model that ran.
        events_written: Events written to the JSONL file (0 without one).
        elapsed_s: Wall time of the pipeline run (Triton start-up excluded).
    """

    streams: dict[str, StreamStatus] = field(default_factory=dict)
    model: str = ""
    events_written: int = 0
    elapsed_s: float = 0.0

    @property
    def failed(self) -> list[StreamStatus]:
        """Streams that ended in ``error``."""
        return [s for s in self.streams.values() if s.state is StreamState.ERROR]


async def run_sources(
    settings: Settings,
    sources: Sequence[Source],
    *,
    on_pipeline: Callable[[Pipeline], None] | None = None,
    extra_sinks: Sequence[EventSink] = (),
    connection: TritonConnection | None = None,
) -> JobResult:
    """Run ``sources`` to their end through the configured model.

    Args:
        settings: Vigil settings (Triton, model, pipeline, events).
        sources: The streams; each must have a distinct ``stream_id``.
        on_pipeline: Called with the pipeline once it exists (progress display).
        extra_sinks: Sinks in addition to the JSONL file.
        connection: An open Triton connection to use (default: connect per settings).

    Raises:
        ModelNotFoundError: the model is not in the repository (lists the available ones).
        TritonServerError: Triton could not start or died (with its log tail).
    """
    if connection is not None:
        return await _run(settings, sources, connection, on_pipeline, extra_sinks)
    async with connect(settings) as triton:
        return await _run(settings, sources, triton, on_pipeline, extra_sinks)


async def _run(
    settings: Settings,
    sources: Sequence[Source],
    triton: TritonConnection,
    on_pipeline: Callable[[Pipeline], None] | None,
    extra_sinks: Sequence[EventSink],
) -> JobResult:
    model = await triton.client.load_model(settings.model.name)
    parser = make_parser(model, settings.model.confidence_threshold)
    sinks: list[EventSink] = list(extra_sinks)
    jsonl = JsonlSink(settings.events.jsonl_path) if settings.events.jsonl_path else None
    if jsonl:
        sinks.append(jsonl)
    builder = EventBuilder(
        model,
        PlaceInfo(id=settings.events.place_id, name=settings.events.place_name),
        settings.events.analytics_module_id,
        {s.stream_id: s.url for s in sources},
    )
    pipeline = Pipeline(
        client=triton.client,
        model=model,
        parser=parser,
        events=builder,
        sinks=sinks,
        settings=settings.pipeline,
        watchdog=triton.check_alive,
    )
    if on_pipeline:
        on_pipeline(pipeline)
    started = time.monotonic()
    streams = await pipeline.run(sources)
    return JobResult(
        streams=streams,
        model=model.name,
        events_written=jsonl.written if jsonl else 0,
        elapsed_s=time.monotonic() - started,
    )
