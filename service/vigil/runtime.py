"""Assemble a running pipeline from settings: Triton, model, parser, sinks, streams.

Both ``vigil run`` (a one-shot job) and ``vigil serve`` (the service) start here; this
module only wires components, it holds no logic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import importlib.util
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from vigil.accel import Acceleration, AccelerationError, choose_acceleration
from vigil.analytics import AnalyticsConfig
from vigil.classifiers import open_secondary_classifiers
from vigil.cluster.models import ClusterModelCommands
from vigil.cluster.peers import ClusterRecording
from vigil.cluster.streams import ClusterStreams
from vigil.cluster.worker import ClusterWorker
from vigil.collectors import (
    AnalyticsCollector,
    KafkaCollector,
    StreamCollector,
    ThreadCollector,
)
from vigil.commands.consumer import make_command_consumer
from vigil.config import Settings
from vigil.events.builder import EventBuilder
from vigil.events.kafka import make_kafka_sink
from vigil.events.live import LiveEvents
from vigil.events.schema import PlaceInfo
from vigil.events.sinks import EventSink, JsonlSink
from vigil.heap import HeapTrimmer
from vigil.infer.errors import InferError, RegistryError
from vigil.infer.model import ModelInfo
from vigil.infer.model_formats import ModelFormat
from vigil.infer.registry import ModelRegistry
from vigil.lifecycle import ModelCommands, ModelLifecycle, read_state
from vigil.metrics import PipelineMetrics
from vigil.osd import FrameTap
from vigil.parsers import make_parser
from vigil.pipeline.manager import StreamManager
from vigil.pipeline.pipeline import Pipeline
from vigil.pipeline.worker import ReconnectPolicy
from vigil.plugins.discovery import describe, find_parser, instantiate
from vigil.plugins.sinks import GuardedSink, StreamSinks
from vigil.plugins.stages import PluginMetrics, PluginStages
from vigil.record.service import RecordingCollector, RecordingService
from vigil.recovery import TritonRecovery
from vigil.sources.base import Source
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
        recording: Smart recording (None when ``recording.enabled`` is off).
        frame_tap: The latest frame of watched streams, for the live view.
        live_events: The live event feed (the console's ``GET /api/v1/events/live``).
        cluster: This process's membership of the worker group (None when
            ``cluster.enabled`` is off: it owns every stream).
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
    recording: RecordingService | None = None
    frame_tap: FrameTap = dataclasses.field(default_factory=FrameTap)
    live_events: LiveEvents = dataclasses.field(default_factory=lambda: LiveEvents(1, 1))
    cluster: ClusterWorker | None = None

    @property
    def stream_control(self) -> StreamManager | ClusterStreams:
        """What adds and removes streams for clients: the stream manager, or on a cluster
        worker the control topic."""
        if self.cluster is None:
            return self.streams
        return ClusterStreams(self.cluster, self.streams.file_roots)

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

        Counts of rules that keep their name survive unless ``reset_counts``. On a cluster
        worker, a cluster stream's analytics are part of its spec in the control topic (so
        they move with it): the spec is written there and applied from it, hot.

        Raises:
            StreamNotFoundError: no such stream.
            KafkaError: the control topic did not take the change (cluster streams).
        """
        managed = self.streams.get(stream_id)
        if self.cluster is not None and stream_id in self.cluster.running:
            spec = managed.spec.model_copy(update={"analytics": config})
            await self.cluster.apply(stream_id, spec)
            if reset_counts:
                await self._configure_here(stream_id, config, reset_counts=True)
            return
        await self._configure_here(stream_id, config, reset_counts)

    async def _configure_here(
        self, stream_id: str, config: AnalyticsConfig | None, reset_counts: bool = False
    ) -> None:
        await configure_analytics_here(
            self.streams, self.pipeline, self.analytics, stream_id, config, reset_counts
        )


async def configure_analytics_here(
    manager: StreamManager,
    pipeline: Pipeline,
    analytics: AnalyticsStage,
    stream_id: str,
    config: AnalyticsConfig | None,
    reset_counts: bool = False,
) -> None:
    """Change a running stream's analytics in this process, hot (between two batches).

    Raises:
        StreamNotFoundError: no such stream here.
    """
    managed = manager.get(stream_id)
    managed.spec = managed.spec.model_copy(update={"analytics": config})
    await pipeline.in_chain(lambda: analytics.configure(stream_id, config, reset_counts))


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
    live_events = LiveEvents(
        settings.events.live_max_subscribers, settings.events.live_queue_events, metrics.registry
    )
    sinks.append(live_events)
    builder = EventBuilder(
        model,
        PlaceInfo(id=settings.events.place_id, name=settings.events.place_name),
        settings.events.analytics_module_id,
        video_path=lambda sid: _redacted(manager.get(sid).spec.url) if sid in manager else "",
        source=settings.cluster.worker if settings.cluster.enabled else "Vigil",
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
    frame_tap = FrameTap(
        settings.live.max_viewers_per_stream,
        settings.live.max_viewers,
        lambda sid: analytics.snapshot.get(sid),
        metrics.registry,
    )
    pipeline.taps.add(frame_tap)
    recording = _recording(settings, pipeline, sinks)
    reconnect = settings.sources.reconnect
    manager = StreamManager(
        pipeline,
        functools.partial(_make_source, acceleration, settings, recording),
        ReconnectPolicy(**reconnect.model_dump()),
        max_streams=settings.pipeline.max_streams,
        file_roots=_file_roots(settings),
        prepare=functools.partial(_prepare_plugins, plugin_stages, stream_sinks),
        release=functools.partial(_release, stream_sinks, recording, frame_tap),
    )
    metrics.registry.register(StreamCollector(manager.statuses, pipeline.queue_depths))
    metrics.registry.register(ThreadCollector())
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
    cluster = (
        ClusterWorker(
            settings.kafka,
            settings.cluster,
            manager,
            lambda: f"{pipeline.model.name}:{pipeline.model.version}",
            api_url=_api_url(settings),
            lifecycle=lifecycle,
            reconfigure=functools.partial(configure_analytics_here, manager, pipeline, analytics),
        )
        if settings.cluster.enabled
        else None
    )
    if cluster and cluster.models and settings.triton.url:
        # Workers sharing one Triton: leave loaded what the others still serve.
        lifecycle.others_serve = cluster.models.others_serve
    # On a cluster worker, stream commands change the control topic, and model commands the
    # model topic, not this process.
    control = ClusterStreams(cluster, manager.file_roots) if cluster else manager
    model_commands = (
        ClusterModelCommands(lifecycle, cluster.models)
        if cluster and cluster.models
        else ModelCommands(lifecycle)
    )
    # On a cluster worker a recording command for another worker's stream goes to its owner.
    recording_commands = recording and recording.recorder
    if cluster:
        keys = settings.api.api_keys
        recording_commands = ClusterRecording(
            recording_commands, cluster, keys[0].get_secret_value() if keys else None
        )
    commands = (
        make_command_consumer(settings, control, model_commands, recording_commands)
        if kafka
        else None
    )
    if recording is not None:
        metrics.registry.register(RecordingCollector(recording))
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
    if recording is not None:
        await recording.start()
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
    if cluster:
        await cluster.start()
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
            recording,
            frame_tap,
            live_events=live_events,
            cluster=cluster,
        )
    finally:
        if cluster:
            await cluster.close()
        if trimmer:
            await trimmer.close()
        if recovery:
            await recovery.close()
        if commands:
            await commands.close()
        await manager.stop_all()
        if recording is not None:
            await recording.close()
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


def _recording(
    settings: Settings, pipeline: Pipeline, sinks: Sequence[EventSink]
) -> RecordingService | None:
    """Smart recording, if enabled: its rules see every batch's events."""
    if not settings.recording.enabled:
        return None
    if importlib.util.find_spec("av") is None:
        log.warning("smart recording is off: PyAV (the muxer) is not installed here")
        return None
    directory = settings.recording.directory or settings.data_dir / "recordings"
    service = RecordingService(settings.recording, directory, lambda: pipeline.route.events, sinks)
    if settings.recording.rules:
        pipeline.taps.add(service.recorder)
    return service


def _make_source(
    acceleration: Acceleration,
    settings: Settings,
    recording: RecordingService | None,
    spec: StreamSpec,
) -> Source:
    """A stream's source, with the recorder's packet tap when recording is on."""
    source = acceleration.make_source(spec, settings.sources)
    return recording.tap(source) if recording is not None else source


async def _release(
    sinks: StreamSinks, recording: RecordingService | None, frame_tap: FrameTap, stream_id: str
) -> None:
    """A stream is gone: its live view (viewers end), its own sinks, and its clip and cache."""
    frame_tap.stream_removed(stream_id)
    await sinks.release(stream_id)
    if recording is not None:
        await recording.stream_removed(stream_id)


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


def _api_url(settings: Settings) -> str:
    """Where this worker's REST API answers, as other workers' clients may reach it."""
    if settings.cluster.advertised_url:
        return settings.cluster.advertised_url
    scheme = "https" if settings.api.tls.cert_file else "http"
    host = settings.api.host
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: others know the host's name
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.api.port}"


def _file_roots(settings: Settings) -> FileRoots:
    """``sources.file_roots``, or by default the directories of the configured file streams."""
    roots = settings.sources.file_roots
    return FileRoots.of_streams(settings.streams) if roots is None else FileRoots(roots)
