"""Request and response bodies of the REST API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from vigil.pipeline.manager import ManagedStream
from vigil.sources.urls import redact_url
from vigil.specs import StreamSpec


class LatencyMs(BaseModel):
    """Frame latency percentiles (decode → events), milliseconds."""

    p50: float | None
    p99: float | None


class StreamInfo(StreamSpec):
    """A stream's spec (credentials in the URL redacted) and its live status."""

    state: Literal["starting", "running", "reconnecting", "error", "stopped"]
    reason: str = Field(description="Why the stream is in its state")
    fps: float = Field(description="Processed frames per second since the stream started")
    frames_decoded: int
    frames_processed: int
    frames_skipped: int = Field(description="Skipped by inference_interval or max_fps")
    dropped: dict[str, int] = Field(description="Dropped frames by reason")
    decode_errors: int
    reconnects: int
    last_error: str | None
    latency_ms: LatencyMs

    @classmethod
    def of(cls, managed: ManagedStream) -> StreamInfo:
        """Describe a managed stream."""
        status = managed.status
        stats = status.stats
        spec = managed.spec.model_dump()
        spec["url"] = redact_url(spec["url"])
        return cls(
            **spec,
            state=status.state.value,
            reason=status.reason,
            fps=round(stats.fps, 2),
            frames_decoded=stats.frames_decoded,
            frames_processed=stats.frames_processed,
            frames_skipped=stats.frames_skipped,
            dropped=dict(stats.dropped),
            decode_errors=stats.decode_errors,
            reconnects=stats.reconnects,
            last_error=status.last_error,
            latency_ms=LatencyMs(
                p50=stats.latency_percentile_ms(50), p99=stats.latency_percentile_ms(99)
            ),
        )


class StreamList(BaseModel):
    """All streams."""

    streams: list[StreamInfo]


class Live(BaseModel):
    """Liveness: the process answers."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """Readiness: Triton is ready and the model is loaded."""

    ready: bool
    model: str
    model_version: str
    reason: str = ""


class OutageInfo(BaseModel):
    """A period with Triton down, and what it cost."""

    reason: str
    started_s: float = Field(description="Unix time")
    ended_s: float | None = Field(description="Unix time; null while it lasts")
    duration_s: float
    attempts: int = Field(description="Restarts or readiness waits that failed")
    lost_frames: dict[str, int] = Field(description="Per stream, frames lost")


class Health(BaseModel):
    """Overall health."""

    status: Literal["ok", "degraded"]
    triton: dict[str, str | bool]
    model: str
    streams: dict[str, int] = Field(description="Number of streams per state")
    outages: list[OutageInfo] = Field(
        default_factory=list,
        description="Recent Triton outages Vigil recovered from (the current one last)",
    )
    plugins: list[dict[str, str | int]] = Field(
        default_factory=list,
        description="Plugins in use: kind, name, class, version (stages also instances, "
        "failures, over_budget)",
    )


class Problem(BaseModel):
    """An error."""

    detail: str


class InvalidRequest(BaseModel):
    """A 422: the request's fields failed validation (a list naming each field), or its
    content was refused (a sentence saying why)."""

    detail: str | list[dict[str, Any]]
