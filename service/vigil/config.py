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
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from vigil.specs import StreamSpec

TRITON_VERSION = "2.51.0"


def default_cache_dir() -> Path:
    """Where `make` puts produced artifacts (Triton server, model weights, sample video)."""
    return Path.home() / ".cache" / "vigil"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


Port = Annotated[int, Field(ge=0, le=65535)]


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
    reconnect: ReconnectSettings = ReconnectSettings()


class ApiSettings(_Model):
    """The REST control plane of `vigil serve`."""

    host: str = Field("127.0.0.1", description="Address to listen on")
    port: Port = Field(8080, description="HTTP port")
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys accepted in X-API-Key (JSON list); empty = no authentication",
    )
    protect_reads: bool = Field(False, description="Require a key for read-only endpoints too")


class ModelSettings(_Model):
    """Which model runs, and its post-processing."""

    name: str = Field("ssd_mobilenet_v2_coco", description="Model name in the repository")
    confidence_threshold: float = Field(0.4, ge=0, le=1, description="Drop detections below")


class EventSettings(_Model):
    """Event metadata and the local sink."""

    jsonl_path: Path | None = Field(
        Path("events.jsonl"), description="Write events as JSON lines here (None: no file)"
    )
    place_id: str = Field("0", description="`place.id` in events")
    place_name: str = Field("", description="`place.name` in events")
    analytics_module_id: str = Field("vigil-detector", description="`analyticsModule.id`")


class Settings(BaseSettings):
    """Root settings object. Build with ``Settings()``; override with ``model_copy``."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_", env_nested_delimiter="__", extra="forbid"
    )

    cache_dir: Path = Field(default_factory=default_cache_dir, description="Artifact cache")
    run_dir: Path | None = Field(
        None, description="Triton log and materialized repository go here (default: a temp dir)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="Log level (`vigil run -v` forces DEBUG)"
    )
    triton: TritonSettings = TritonSettings()
    pipeline: PipelineSettings = PipelineSettings()
    sources: SourceSettings = SourceSettings()
    api: ApiSettings = ApiSettings()
    model: ModelSettings = ModelSettings()
    events: EventSettings = EventSettings()
    streams: list[StreamSpec] = Field(
        default_factory=list, description="Streams `vigil serve` starts with (config file)"
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
