"""Assemble a running pipeline from settings: Triton, model, parser, sinks, streams.

Both ``vigil run`` (a one-shot job) and ``vigil serve`` (the service) start here; this
module only wires components, it holds no logic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from vigil.accel import Acceleration, AccelerationError, choose_acceleration
from vigil.analytics import AnalyticsConfig
from vigil.classifiers import open_secondary_classifiers
from vigil.collectors import AnalyticsCollector, KafkaCollector, StreamCollector
from vigil.commands.consumer import make_command_consumer
from vigil.config import Settings
from vigil.events.builder import EventBuilder
from vigil.events.kafka import make_kafka_sink
from vigil.events.schema import PlaceInfo
from vigil.events.sinks import EventSink, JsonlSink
from vigil.heap import HeapTrimmer
from vigil.infer.errors import InferError, RegistryError
from vigil.infer.model import ModelInfo
from vigil.infer.model_formats import ModelFormat
from vigil.infer.registry import ModelRegistry
from vigil.lifecycle import ModelCommands, ModelLifecycle, read_state
from vigil.metrics import PipelineMetrics
from vigil.parsers import make_parser
from vigil.pipeline.manager import StreamManager
from vigil.pipeline.pipeline import Pipeline
from vigil.pipeline.worker import ReconnectPolicy
from vigil.plugins.discovery import describe, find_parser, instantiate
from vigil.plugins.sinks import GuardedSink, StreamSinks
from vigil.plugins.stages import PluginMetrics, PluginStages
from vigil.recovery import TritonRecovery
from vigil.sources.confine import FileRoots
from vigil.sources.urls import redact_url
from vigil.specs import StreamSpec
from vigil.stages.analytics import AnalyticsStage
from vigil.stages.base import Stage, StageChain
from vigil.stages.secondary import ClassifyTracksStage
from vigil.stages.tracking import TrackingStage
from vigil.triton_connection import TritonConnection, connect

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a running Vigil needs, started and ready for streams.

    Attributes:
        settings: The settings it was built from.
        triton: The Triton connection (embedded or external).
        pipeline: The inference engine.
        acceleration: The CPU or GPU path in use.
        streams: Adds, removes and changes streams.
        metrics: Prometheus histograms and registry.
        jsonl: The JSONL sink, if one is configured.
        registry: Models and versions in the repository.
        models: Swaps and rolls back the served model version.
        analytics: Per-stream analytics (configure through ``pipeline.in_chain``).
        recovery: Brings Triton back after a failure (None with recovery off).
        plugins: The plugin stages (global and per stream).
        plugin_sinks: The plugin sinks of the settings.
        stream_sinks: The plugin sinks of single streams.
    """

    settings: Settings
    triton: TritonConnection
    pipeline: Pipeline
    streams: StreamManager
    metrics: PipelineMetrics
    jsonl: JsonlSink | None
    registry: ModelRegistry
    models: ModelLifecycle
    acceleration: Acceleration
    analytics: AnalyticsStage
    recovery: TritonRecovery | None = None
    plugins: PluginStages | None = None
    plugin_sinks: list[GuardedSink] = dataclasses.field(default_factory=list)
    stream_sinks: StreamSinks | None = None

    def plugin_list(self) -> list[dict[str, object]]:
        """Every plugin in use (parser, stages, sinks) with its version, for the health
        endpoint."""
        parser = type(self.pipeline.route.parser)
        found: list[dict[str, object]] = []
        if not parser.__module__.startswith("vigil."):
            info = describe("parser", self.pipeline.model.parser, parser)
            found.append({"kind": "parser", "name": info.name, "class": info.cls,
                          "version": info.version})  # fmt: skip
        if self.plugins is not None:
            found += self.plugins.plugins()
        per_stream = self.stream_sinks.sinks() if self.stream_sinks else []
        for sink in [*self.plugin_sinks, *per_stream]:
            info = sink.info
            found.append({"kind": info.kind, "name": info.name, "class": info.cls,
                          "version": info.version, "failures": sink.failures})  # fmt: skip
        return found

    @property
    def model(self) -> ModelInfo:
        """The model version serving now (it changes with every swap)."""
        return self.pipeline.model

    async def configure_analytics(
        self, stream_id: str, config: AnalyticsConfig | None, reset_counts: bool = False
    ) -> None:
        """Set, change (hot, without restarting the stream) or remove a stream's analytics.

        Counts of rules that keep their name survive unless ``reset_counts``.

        Raises:
            StreamNotFoundError: no such stream.
        """
        managed = self.streams.get(stream_id)
        managed.spec = managed.spec.model_copy(update={"analytics": config})
        await self.pipeline.in_chain(
            lambda: self.analytics.configure(stream_id, config, reset_counts)
        )


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    extra_sinks: Sequence[EventSink] = (),
    connection: TritonConnection | None = None,
) -> AsyncIterator[Runtime]:
    """Connect to Triton, load the model, start the pipeline; undo it all on exit.

    Args:
        settings: Vigil settings.
        extra_sinks: Sinks besides the JSONL file.
        connection: An open Triton connection to use instead of connecting per settings.

    Raises:
        ModelNotFoundError: the model is not in the repository (lists the available ones).
        TritonServerError: Triton could not start or died (with its log tail).
        AccelerationError: the GPU settings ask for what the host cannot give.
    """
    acceleration = choose_acceleration(settings.gpu)
    if connection is not None:
        async with _runtime(settings, connection, extra_sinks, acceleration) as runtime:
            yield runtime
        return
    async with (
        connect(settings, acceleration) as triton,
        _runtime(settings, triton, extra_sinks, acceleration) as runtime,
    ):
        yield runtime


@asynccontextmanager
async def _runtime(
    settings: Settings,
    triton: TritonConnection,
    extra_sinks: Sequence[EventSink],
    acceleration: Acceleration,
) -> AsyncIterator[Runtime]:
    registry = ModelRegistry(
        settings.triton.model_repository,
        publish=triton.publish,
        loadable={ModelFormat.ONNX, ModelFormat.PYTHON} if triton.embedded else None,
        max_upload_bytes=settings.model.max_upload_bytes,
        import_roots=settings.model.import_roots,
    )
    state_file = settings.data_dir / "model-state.json"
    try:
        model = await _load_serving_model(settings, triton, registry, state_file)
    except InferError:
        await _raise_if_died(triton)
        raise
    parser = make_parser(model, settings.model.confidence_threshold, find_parser)
    metrics = PipelineMetrics()
    # Plugins first: a bad reference stops the start before anything else is opened.
    plugin_stages = PluginStages(settings.stages, PluginMetrics(metrics.registry))
    plugin_sinks = [GuardedSink(*instantiate("sink", ref)) for ref in settings.sinks]
    # Kafka first: an event is in the durable outbox before any other sink has seen it.
    kafka = make_kafka_sink(settings) if settings.kafka.bootstrap_servers else None
    jsonl = JsonlSink(settings.events.jsonl_path) if settings.events.jsonl_path else None
    sinks: list[EventSink] = [s for s in (kafka, jsonl) if s is not None] + list(extra_sinks)
    sinks += plugin_sinks
    stream_sinks = StreamSinks()
    sinks.append(stream_sinks)
    builder = EventBuilder(
        model,
        PlaceInfo(id=settings.events.place_id, name=settings.events.place_name),
        settings.events.analytics_module_id,
        video_path=lambda sid: _redacted(manager.get(sid).spec.url) if sid in manager else "",
    )
    if settings.secondary and acceleration.decode == "gpu":
        # Crops are cut with OpenCV in host memory; NVDEC frames never leave the GPU.
        raise AccelerationError(
            "secondary: classifiers need frames in host memory; set gpu.decode to cpu"
        )
    secondary = await open_secondary_classifiers(triton.client, model, settings.secondary)
    stages: list[Stage] = []
    if settings.tracking.enabled:
        stages.append(TrackingStage(settings.tracking))
        if secondary is not None:
            stages.append(ClassifyTracksStage(secondary, asyncio.get_running_loop()))
    analytics = AnalyticsStage()
    stages.append(analytics)
    stages.append(plugin_stages)
    pipeline = Pipeline(
        client=triton.client,
        model=model,
        parser=parser,
        events=builder,
        sinks=sinks,
        settings=settings.pipeline,
        # With recovery on, Triton failures pause the engine instead of stopping it.
        watchdog=None if settings.triton.recovery.enabled else triton.check_alive,
        metrics=metrics,
        secondary=secondary,
        acceleration=acceleration,
        chain=StageChain(stages),
    )
    reconnect = settings.sources.reconnect
    manager = StreamManager(
        pipeline,
        lambda spec: acceleration.make_source(spec, settings.sources),
        ReconnectPolicy(**reconnect.model_dump()),
        max_streams=settings.pipeline.max_streams,
        file_roots=_file_roots(settings),
        prepare=functools.partial(_prepare_plugins, plugin_stages, stream_sinks),
        release=stream_sinks.release,
    )
    metrics.registry.register(StreamCollector(manager.statuses, pipeline.queue_depths))
    metrics.registry.register(
        AnalyticsCollector(
            lambda: analytics.snapshot,
            lambda class_id: pipeline.model.label(class_id),
            lambda: pipeline.chain.failures,
        )
    )
    lifecycle = ModelLifecycle(
        registry=registry,
        client=triton.client,
        pipeline=pipeline,
        make_parser=lambda info: make_parser(
            info, settings.model.confidence_threshold, find_parser
        ),
        metrics=metrics,
        state_file=state_file,
        configured_model=settings.model.name,
        warmup_rounds=settings.model.warmup_rounds,
        keep_previous=settings.model.keep_previous_loaded,
    )
    recovery = None
    if settings.triton.recovery.enabled:
        recovery = TritonRecovery(
            triton, settings.triton.recovery, pipeline, manager.statuses, lifecycle.lock
        )
        pipeline.watchdog = recovery.suspect
    commands = make_command_consumer(settings, manager, ModelCommands(lifecycle)) if kafka else None
    if kafka:
        metrics.registry.register(
            KafkaCollector(
                kafka.publisher.counters,
                kafka.buffer_stats,
                commands.figures if commands else None,
            )
        )
    plugin_stages.start()
    await pipeline.start()
    interval = settings.pipeline.heap_trim_interval_s
    trimmer = HeapTrimmer(interval) if interval else None
    if trimmer:
        trimmer.start()
    if recovery:
        recovery.start()
    if kafka:
        kafka.publisher.start()
    if commands:
        commands.start()
    try:
        yield Runtime(
            settings,
            triton,
            pipeline,
            manager,
            metrics,
            jsonl,
            registry,
            lifecycle,
            acceleration,
            analytics,
            recovery,
            plugin_stages,
            plugin_sinks,
            stream_sinks,
        )
    finally:
        if trimmer:
            await trimmer.close()
        if recovery:
            await recovery.close()
        if commands:
            await commands.close()
        await manager.stop_all()
        await pipeline.stop()
        if secondary:
            await secondary.stop()


async def _load_serving_model(
    settings: Settings, triton: TritonConnection, registry: ModelRegistry, state_file: Path
) -> ModelInfo:
    """Load the version to serve: the one last swapped in (if it still exists), else the
    configured one."""
    name, version = settings.model.name, settings.model.version
    persisted = read_state(state_file, name)
    if persisted is not None:
        model, number = persisted.serving
        try:
            registry.resolve(model, number)
        except RegistryError as e:
            log.warning(
                "not serving the remembered %s:%d (%s); using the configuration", model, number, e
            )
        else:
            log.info("serving %s:%d, the version last swapped in", model, number)
            name, version = model, number
    with contextlib.suppress(RegistryError):
        registry.sweep_staging()
    if version == "latest":
        return await triton.client.load_model(name)
    return await triton.client.load_model(name, int(version))


async def _raise_if_died(triton: TritonConnection, grace_s: float = 2.0) -> None:
    """Raise :class:`TritonDiedError` if the server died: a request that failed because the
    server was killed should say so (with its log), not "could not load model". The socket
    closes a moment before the process is reaped, hence the short grace period."""
    check = triton.check_alive
    deadline = asyncio.get_running_loop().time() + grace_s
    while True:
        check()
        if asyncio.get_running_loop().time() >= deadline:
            return
        await asyncio.sleep(0.05)


def _prepare_plugins(stages: PluginStages, sinks: StreamSinks, spec: StreamSpec) -> None:
    """Load a new stream's own plugin stages and sinks (raises ``PluginError``)."""
    stages.check(spec)
    try:
        sinks.check(spec)
    except BaseException:
        stages.forget(spec.id)
        raise


@functools.lru_cache(maxsize=4096)
def _redacted(url: str) -> str:
    # the event builder asks for every frame; parse each URL once
    return redact_url(url)


def _file_roots(settings: Settings) -> FileRoots:
    """``sources.file_roots``, or by default the directories of the configured file streams."""
    roots = settings.sources.file_roots
    return FileRoots.of_streams(settings.streams) if roots is None else FileRoots(roots)
