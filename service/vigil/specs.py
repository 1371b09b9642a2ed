"""Specifications shared by config files, REST bodies and (later) Kafka commands.

One model per thing, so all three accept exactly the same input and reject it with the same
messages.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from vigil.analytics import AnalyticsConfig

#: Live network cameras and streams.
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
SCHEMES = ("file", *NETWORK_SCHEMES, "test")

StreamId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Stream (sensor) id: letters, digits, '.', '_', '-'",
        examples=["cam-1"],
    ),
]


class PluginRef(BaseModel):
    """A plugin and its options, as settings, REST bodies and Kafka commands give it."""

    model_config = ConfigDict(extra="forbid")

    plugin: str = Field(
        min_length=1,
        max_length=256,
        description="Entry-point name of an installed plugin, or module:Class",
        examples=["zone_alert", "my_package.stages:HelmetRule"],
    )
    options: dict[str, JsonValue] = Field(
        default_factory=dict, description="Keyword arguments of the plugin class"
    )


class StageRef(PluginRef):
    """A stage plugin, its options and its time budget."""

    budget_ms: float = Field(
        5.0, gt=0, le=60_000, description="Per-frame time above which the stage is reported slow"
    )


class StreamSpec(BaseModel):
    """A video stream Vigil should process."""

    model_config = ConfigDict(extra="forbid")

    id: StreamId
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="file:///path, rtsp(s)://host/path, http(s)://..., or "
        "test://pattern?width=640&height=360&fps=10",
        examples=["rtsp://camera.local:554/stream1"],
    )
    name: str = Field("", max_length=256, description="Human-readable name")
    inference_interval: int = Field(
        1, ge=1, le=1000, description="Run inference on every Nth decoded frame"
    )
    max_fps: float | None = Field(
        None, gt=0, le=1000, description="Live: skip frames above this rate; files: play at it"
    )
    drop_frame_interval: int = Field(
        0,
        ge=0,
        le=30,
        description="Keep only every Nth decoded frame, drop the rest before inference and "
        "tracking (DeepStream's decoder drop-frame-interval; 0 = keep all)",
    )
    drop_policy: Literal["block", "drop_oldest"] | None = Field(
        None, description="When the stream's queue is full (default: files block, live drop)"
    )
    analytics: AnalyticsConfig | None = Field(
        None,
        description="ROI filters, lines, crowding and dwell zones, directions (docs/analytics.md)",
    )
    stages: list[StageRef] = Field(
        default_factory=list,
        max_length=16,
        description="Plugin stages of this stream only, after the global ones (docs/plugins.md)",
    )
    sinks: list[PluginRef] = Field(
        default_factory=list,
        max_length=16,
        description="Plugin sinks that get this stream's events only (docs/plugins.md)",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if any(c.isspace() for c in url):
            raise ValueError("url must not contain whitespace")
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            shown = f"{parts.scheme!r}" if parts.scheme else "no scheme"
            raise ValueError(f"unsupported url scheme {shown}; use one of {', '.join(SCHEMES)}")
        if parts.scheme == "file":
            if not parts.path or parts.netloc not in ("", "localhost"):
                raise ValueError("file url must be file:///absolute/path")
        elif parts.scheme == "test":
            if parts.netloc != "pattern":
                raise ValueError("test url must be test://pattern[?width=..&height=..&fps=..]")
        elif not parts.hostname:
            raise ValueError(f"{parts.scheme} url needs a host")
        else:
            try:
                _ = parts.port
            except ValueError as e:
                raise ValueError(f"invalid port in url: {e}") from e
        return url

    @property
    def scheme(self) -> str:
        """The url's scheme."""
        return urlsplit(self.url).scheme


class StreamPatch(BaseModel):
    """Changes to a running stream (only the fields given change)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=256)
    inference_interval: int | None = Field(None, ge=1, le=1000)
    max_fps: float | None = Field(None, gt=0, le=1000)
    drop_frame_interval: int | None = Field(None, ge=0, le=30)
    state: Literal["running", "stopped"] | None = Field(
        None, description="Desired state: stop a stream, or start a stopped/failed one"
    )
