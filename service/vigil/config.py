"""All of Vigil's settings, in one place.

Settings come from pydantic models; environment variables with the prefix ``VIGIL_`` override
the defaults (nested fields use ``__``, e.g. ``VIGIL_PIPELINE__MAX_BATCH_SIZE=8``), and
command-line flags override both. Unknown keys are rejected. Nothing else in Vigil reads the
environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from vigil.api_settings import ApiSettings as ApiSettings
from vigil.api_settings import TlsSettings as TlsSettings
from vigil.api_settings import is_loopback as is_loopback
from vigil.api_settings import key_id as key_id
from vigil.cluster_settings import ClusterSettings
from vigil.recording_settings import RecordingSettings
from vigil.specs import PluginRef, StageRef, StreamSpec
from vigil.track import TrackerSettings

TRITON_VERSION = "2.51.0"


def default_cache_dir() -> Path:
    """Where `make` puts produced artifacts (Triton server, model weights, sample video)."""
    return Path.home() / ".cache" / "vigil"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


Port = Annotated[int, Field(ge=0, le=65535)]


class RecoverySettings(_Model):
    """What Vigil does when Triton dies or stops answering while streams run."""

    enabled: bool = Field(
        True,
        description="Recover in-process: restart an embedded Triton, wait for an external one, "
        "then re-register shared memory, reload the models and resume every stream; false: "
        "the pipeline stops and vigil exits with code 2 (`--no-recover`)",
    )
    check_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often Triton's health is checked"
    )
    failed_checks: int = Field(
        3, ge=1, le=100, description="Liveness checks failed in a row that make an outage"
    )
    initial_delay_s: float = Field(0.5, ge=0, le=300, description="First retry delay")
    max_delay_s: float = Field(10.0, gt=0, le=3600, description="Retry delay cap")
    max_restarts: int = Field(
        5, ge=1, le=1000, description="Embedded: give up after this many failed restarts in a row"
    )
    max_outage_s: float | None = Field(
        None, gt=0, description="Give up when Triton is not back after this long (unset: never)"
    )
    restore_timeout_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Deadline of one attempt's restore and warm-up (shared memory, model loads, "
        "one request); past it the attempt fails and the next begins",
    )


class TritonSettings(_Model):
    """How to reach Triton: an external server by URL, or an embedded one started by Vigil."""

    url: str | None = Field(
        None,
        description="gRPC address (host:port) of an external Triton; unset = start one embedded",
    )
    server_dir: Path | None = Field(
        None,
        description="Embedded mode: directory made by `make triton` (default: in the cache)",
    )
    python_env: Path | None = Field(
        None,
        description="Embedded mode: packages for Python-backend models (default: "
        "<server_dir>/python-env, made by `make triton`)",
    )
    model_repository: Path = Field(
        Path("model_repository"), description="Vigil's model repository (configs, labels, weights)"
    )
    startup_timeout_s: float = Field(120.0, gt=0, description="Wait this long for readiness")
    http_port: Port = Field(0, description="Embedded mode HTTP port; 0 picks a free port")
    grpc_port: Port = Field(0, description="Embedded mode gRPC port; 0 picks a free port")
    metrics_port: Port = Field(0, description="Embedded mode metrics port; 0 picks a free port")
    request_timeout_s: float = Field(30.0, gt=0, description="Deadline of one inference request")
    recovery: RecoverySettings = RecoverySettings()


class PipelineSettings(_Model):
    """Batching and flow control."""

    max_batch_size: int = Field(4, ge=1, le=256, description="Frames per inference request")
    batch_timeout_ms: float = Field(
        20.0, ge=0, description="Send an incomplete batch this long after its first frame"
    )
    queue_size: int = Field(8, ge=1, le=1024, description="Decoded frames buffered per stream")
    inflight_requests: int = Field(
        2, ge=1, le=64, description="Inference requests in flight (= shared-memory ring slots)"
    )
    max_streams: int = Field(
        256, ge=1, le=100_000, description="Streams beyond this many are refused (HTTP 429)"
    )
    heap_trim_interval_s: float | None = Field(
        30.0,
        gt=0,
        description="Hand freed heap memory back to the OS this often (glibc malloc_trim); "
        "null: never",
    )


class GpuSettings(_Model):
    """Where pixels and tensors live: the CPU path or the GPU path (chosen in one place)."""

    mode: Literal["auto", "cpu", "gpu"] = Field(
        "auto",
        description="auto: the GPU path when a CUDA device is usable (torch + cuda-python), "
        "else the CPU path; gpu fails at start if it is not usable",
    )
    shared_memory: Literal["auto", "system", "cuda"] = Field(
        "auto",
        description="Tensors to Triton: auto follows mode; cuda also moves preprocessing to "
        "the GPU",
    )
    decode: Literal["auto", "cpu", "gpu"] = Field(
        "auto",
        description="Decoding of files and RTSP/HTTP cameras: gpu = NVDEC (PyNvVideoCodec; "
        "cameras are demuxed with PyAV in-process); auto = NVDEC on the GPU path when "
        "available; without NVDEC, CPU decoding with one log line",
    )
    device_id: int = Field(0, ge=0, le=63, description="CUDA device for decode, shm, preprocess")
    nvdec_idle_decoders: int = Field(
        32,
        ge=0,
        le=1024,
        description="NVDEC decoders kept idle after a file ends, for the next stream to reuse "
        "(a new session costs ~65 ms, and sessions start one at a time); 0: none",
    )
    triton_cuda_pool_mb: int = Field(
        2048,
        ge=0,
        le=1 << 20,
        description="Embedded Triton on the GPU path: CUDA memory pool that carries GPU "
        "tensors to Python-backend models",
    )


class ReconnectSettings(_Model):
    """How live sources (RTSP, HTTP, test pattern) are reopened after a failure."""

    enabled: bool = Field(True, description="Reopen live sources that fail or end")
    initial_delay_s: float = Field(0.5, ge=0, le=300, description="First backoff delay")
    max_delay_s: float = Field(2.0, gt=0, le=3600, description="Backoff cap")
    multiplier: float = Field(2.0, ge=1, le=10, description="Backoff growth per failure")
    max_attempts: int | None = Field(
        None, ge=1, description="Give up after this many failures in a row (unset: never)"
    )


class SourceSettings(_Model):
    """Timeouts of network sources, so a frozen camera never blocks anything."""

    open_timeout_s: float = Field(10.0, gt=0, le=300, description="Connect / open timeout")
    read_timeout_s: float = Field(5.0, gt=0, le=300, description="No data for this long = lost")
    decoder_isolation: Literal["process", "none"] = Field(
        "process",
        description="process: each file and network stream decodes (FFmpeg) in a child process, "
        "so a decoder crash or hang fails that stream only; none: decoder threads in the "
        "service process (a little less CPU and memory)",
    )
    reconnect: ReconnectSettings = ReconnectSettings()
    file_roots: list[Path] | None = Field(
        None,
        description="Directories that file streams added over REST, DeepStream or Kafka must "
        "lie under (links and '..' resolved); unset: the directories of the file streams in "
        "`streams`; [] refuses every client file stream",
    )


class ModelSettings(_Model):
    """Which model runs, and its post-processing."""

    name: str = Field("ssd_mobilenet_v2_coco", description="Model name in the repository")
    version: int | Literal["latest"] = Field(
        "latest",
        description="Version to serve at start-up (a version swapped in later is remembered "
        "in data_dir and wins over this)",
    )
    confidence_threshold: float = Field(0.4, ge=0, le=1, description="Drop detections below")
    max_upload_bytes: int = Field(
        4 << 30, gt=0, description="Largest model file or archive accepted by upload or path"
    )
    import_roots: list[Path] = Field(
        default_factory=list,
        description="Server-side model paths (REST, Kafka, OTA) must lie under one of these "
        "directories (empty: any absolute path)",
    )
    ota_override_file: Path | None = Field(
        None,
        description="Watch this file (also a Kubernetes ConfigMap mount) naming a model "
        "version or file; a change swaps the model (`vigil serve --ota-override`)",
    )
    ota_poll_s: float = Field(1.0, gt=0, le=60, description="How often the OTA file is checked")
    warmup_rounds: int = Field(
        2, ge=1, le=100, description="Requests a new version runs before it takes traffic"
    )
    keep_previous_loaded: bool = Field(
        True,
        description="After a swap, keep the replaced version loaded (memory for two "
        "versions) so a rollback or swap back is instant",
    )


class SecondaryModelSettings(_Model):
    """A secondary classifier run on crops of primary detections (DeepStream's secondary GIE).

    Its top-1 label becomes the object attribute ``attribute`` in events (e.g. ``color`` fills
    a vehicle's ``color``), with ``<attribute>Confidence`` beside it.
    """

    name: str = Field(min_length=1, description="Classifier model name in the repository")
    attribute: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Event attribute the label fills (default: the model name)",
    )
    operate_on_classes: list[str] = Field(
        default_factory=list,
        description="Primary class labels to classify (empty: every class)",
    )
    min_size_px: int = Field(
        16, ge=1, le=8192, description="Skip objects narrower or shorter than this (source px)"
    )
    interval: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Classify every Nth frame of a stream; frames between reuse the last "
        "result of the same track (or the best-overlapping box of the same class)",
    )
    max_batch: int = Field(
        32, ge=1, le=1024, description="Crops per inference request (capped by the model's)"
    )
    confidence_threshold: float = Field(
        0.5, ge=0, le=1, description="Attach the label only when its probability reaches this"
    )

    @field_validator("attribute")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value == "confidence":
            raise ValueError("'confidence' is the detector's; pick another attribute name")
        return value

    @property
    def attribute_name(self) -> str:
        """The event attribute this classifier fills."""
        return self.attribute or self.name


class EventSettings(_Model):
    """Event metadata and the local sink."""

    jsonl_path: Path | None = Field(
        Path("events.jsonl"), description="Write events as JSON lines here (None: no file)"
    )
    place_id: str = Field("0", description="`place.id` in events")
    place_name: str = Field("", description="`place.name` in events")
    analytics_module_id: str = Field("vigil-detector", description="`analyticsModule.id`")
    live_max_subscribers: int = Field(
        16, ge=1, le=1024, description="Clients that may follow GET /api/v1/events/live at once"
    )
    live_queue_events: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Events queued per live-feed client; a slower client loses the oldest",
    )


class LiveSettings(_Model):
    """The live view: MJPEG streams and snapshots with the on-screen display (docs/live-view.md)."""

    max_viewers_per_stream: int = Field(
        8, ge=1, le=1000, description="MJPEG viewers of one stream at once (more: 429)"
    )
    max_viewers: int = Field(
        32, ge=1, le=10_000, description="MJPEG viewers at once, all streams (more: 429)"
    )
    max_fps: float = Field(
        30.0, gt=0, le=120, allow_inf_nan=False, description="Highest `fps` a viewer may ask for"
    )
    default_fps: float = Field(
        10.0, gt=0, le=120, allow_inf_nan=False, description="`fps` when not given (≤ max_fps)"
    )
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of live frames")
    default_height: int = Field(
        720,
        ge=16,
        le=4320,
        description="Height when `height` is not given (smaller sources keep their own)",
    )
    snapshot_timeout_s: float = Field(
        3.0,
        gt=0,
        le=60,
        allow_inf_nan=False,
        description="A snapshot waits this long for a frame, then answers 409",
    )


class KafkaSecuritySettings(_Model):
    """TLS and SASL for the Kafka connection. Secrets come from the environment or files."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol"
    )
    ca_file: Path | None = Field(None, description="CA bundle that signed the brokers' certs")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="Client private key (mutual TLS)")
    key_password: SecretStr | None = Field(None, description="Password of the client key")
    check_hostname: bool = Field(True, description="Verify the broker's host name")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)"
    )
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret)")
    sasl_password_file: Path | None = Field(
        None, description="Read the SASL password from this file instead (e.g. a mounted secret)"
    )


class OutboxSettings(_Model):
    """The durable local store between the pipeline and the Kafka producer."""

    enabled: bool = Field(True, description="Store events on disk until the broker acks them")
    path: Path | None = Field(None, description="SQLite file (default: <data_dir>/outbox.db)")
    max_bytes: int = Field(1 << 30, ge=1 << 20, description="Disk budget of stored events")
    full_policy: Literal["drop_oldest", "reject_new"] = Field(
        "drop_oldest", description="When the budget is used up (every drop is counted)"
    )
    warn_ratio: float = Field(0.8, gt=0, le=1, description="Warn when this full")
    synchronous: Literal["normal", "full"] = Field(
        "normal", description="SQLite sync: normal survives crashes, full power loss too"
    )


class KafkaCommandSettings(_Model):
    """Cloud-to-device commands consumed from Kafka."""

    enabled: bool = Field(False, description="Consume commands")
    topic: str = Field("vigil-commands", min_length=1, description="Commands topic")
    group_id: str = Field("vigil", min_length=1, description="Consumer group")
    dead_letter_topic: str = Field(
        "vigil-commands-dlq", min_length=1, description="Rejected commands go here, with reason"
    )
    max_message_bytes: int = Field(65536, ge=256, description="Larger commands are rejected")


class KafkaSettings(_Model):
    """Events to Kafka (unset bootstrap_servers: no Kafka, events go to the JSONL file)."""

    bootstrap_servers: str | None = Field(None, description="host:port[,host:port...]")
    topic: str = Field("vigil-events", min_length=1, description="Events topic")
    payload_schema: Literal["full", "minimal"] = Field(
        "full", description="DeepStream nvmsgconv schema of the payload"
    )
    client_id: str = Field("vigil", description="Kafka client id")
    partitions: int = Field(
        3, ge=1, le=1000, description="Partitions when Vigil creates the topic (key = sensor)"
    )
    create_topics: bool = Field(True, description="Create missing topics (events, commands, DLQ)")
    linger_ms: int = Field(20, ge=0, le=10_000, description="Producer batching delay")
    max_batch_bytes: int = Field(1 << 20, ge=1024, description="Producer batch size")
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = Field(
        "gzip", description="Producer compression"
    )
    enable_idempotence: bool = Field(True, description="Idempotent producer (acks=all)")
    request_timeout_ms: int = Field(15_000, ge=1000, description="Broker request timeout")
    retry_backoff_max_s: float = Field(10.0, gt=0, description="Reconnect backoff cap")
    security: KafkaSecuritySettings = KafkaSecuritySettings()
    outbox: OutboxSettings = OutboxSettings()
    commands: KafkaCommandSettings = KafkaCommandSettings()


class Settings(BaseSettings):
    """Root settings object. Build with ``Settings()``; override with ``model_copy``."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_", env_nested_delimiter="__", extra="forbid"
    )

    cache_dir: Path = Field(default_factory=default_cache_dir, description="Artifact cache")
    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "state" / "vigil",
        description="State that must survive restarts (the Kafka outbox)",
    )
    run_dir: Path | None = Field(
        None, description="Triton log and materialized repository go here (default: a temp dir)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="Log level (`vigil run -v` forces DEBUG)"
    )
    triton: TritonSettings = TritonSettings()
    pipeline: PipelineSettings = PipelineSettings()
    gpu: GpuSettings = GpuSettings()
    sources: SourceSettings = SourceSettings()
    kafka: KafkaSettings = KafkaSettings()
    api: ApiSettings = ApiSettings()
    model: ModelSettings = ModelSettings()
    events: EventSettings = EventSettings()
    recording: RecordingSettings = Field(
        RecordingSettings(), description="Smart recording (docs/recording.md)"
    )
    live: LiveSettings = LiveSettings()
    cluster: ClusterSettings = Field(
        ClusterSettings(), description="Scale-out over a Kafka consumer group (docs/scale-out.md)"
    )
    streams: list[StreamSpec] = Field(
        default_factory=list, description="Streams `vigil serve` starts with (config file)"
    )
    tracking: TrackerSettings = Field(
        TrackerSettings(enabled=True),
        description="Multi-object tracker (ByteTrack-class; times in seconds; docs/tracking.md)",
    )
    secondary: list[SecondaryModelSettings] = Field(
        default_factory=list,
        description="Secondary classifiers on crops of detections (JSON list of {name, "
        "attribute, operate_on_classes, min_size_px, interval, max_batch, "
        "confidence_threshold}); see docs/parsers.md",
    )
    stages: list[StageRef] = Field(
        default_factory=list,
        description="Plugin stages every stream runs, in order, after tracking and analytics "
        "(JSON list of {plugin, options, budget_ms}); see docs/plugins.md",
    )
    sinks: list[PluginRef] = Field(
        default_factory=list,
        description="Plugin event sinks, after Kafka and the JSONL file (JSON list of "
        "{plugin, options}); see docs/plugins.md",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables override values passed in (those of a config file)."""
        return env_settings, init_settings, file_secret_settings

    @classmethod
    def load(cls, config_file: Path | None = None) -> Settings:
        """Settings from a YAML file (optional) with ``VIGIL_*`` variables on top.

        Raises:
            ValueError: the file is unreadable or not a YAML mapping.
            pydantic.ValidationError: a value is invalid or a key unknown (named).
        """
        if config_file is None:
            return cls()
        try:
            data = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"cannot read config file {config_file}: {e}") from e
        if not isinstance(data, dict):
            raise ValueError(f"config file {config_file} must hold a mapping of settings")
        return cls(**data)

    @model_validator(mode="after")
    def _cluster_needs_kafka(self) -> Settings:
        if self.cluster.enabled and not self.kafka.bootstrap_servers:
            raise ValueError("cluster.enabled needs kafka.bootstrap_servers")
        return self

    def model_post_init(self, _context: object) -> None:
        """Reject ``VIGIL_*`` environment variables that name no setting (typos)."""
        unknown = [name for name in os.environ if _is_unknown_variable(name)]
        if unknown:
            raise ValueError(
                f"unknown settings in the environment: {', '.join(sorted(unknown))} "
                "(see the configuration reference in README.md)"
            )

    def triton_server_dir(self) -> Path:
        """The embedded Triton server directory (explicit setting or the cache default)."""
        return self.triton.server_dir or self.cache_dir / f"tritonserver-{TRITON_VERSION}"

    def triton_python_env(self) -> Path:
        """Site-packages directory for the embedded server's Python-backend models.

        It is separate from Vigil's own environment because the PyPI Triton build's
        backend stub was compiled against NumPy 1.x: with NumPy 2 its output tensors come
        back empty.
        """
        return self.triton.python_env or self.triton_server_dir() / "python-env"


def _is_unknown_variable(name: str) -> bool:
    if not name.startswith("VIGIL_"):
        return False
    model: type[BaseModel] = Settings
    parts = name.removeprefix("VIGIL_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return True
        annotation = field.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if i < len(parts) - 1:
            if not nested:
                return True
            model = annotation
    return False
