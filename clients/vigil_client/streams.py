"""Streams as the server reports them (``/api/v1/streams``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

StreamState = Literal["starting", "running", "reconnecting", "error", "stopped"]
"""States the server reports today; :class:`StreamInfo` keeps any other value as it comes."""


@dataclass(frozen=True, slots=True)
class LatencyMs:
    """Per-stream end-to-end latency percentiles in milliseconds (``None`` before data)."""

    p50: float | None = None
    p99: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInfo:
    """A stream as the server reports it: its spec plus live state and counters.

    Keys the server sends that this version does not know are kept in ``extra`` rather than
    rejected, so a newer server works with an older client.

    Attributes:
        id: Stream id (1-64 chars of ``[A-Za-z0-9._-]``).
        url: Source URL (``file://``, ``rtsp://``, ``rtsps://``, ``http(s)://``, ``test://``).
        name: Display name.
        inference_interval: Run inference on every N-th decoded frame.
        max_fps: Decode rate limit in frames per second; ``None`` for none.
        drop_policy: ``"block"``, ``"drop_oldest"``, or ``None`` for the server default.
        state: One of :data:`StreamState` (other strings are passed through as they come).
        reason: Why the stream is in its state (empty when there is nothing to say).
        fps: Current frame rate.
        frames_decoded: Frames decoded since the stream started.
        frames_processed: Frames that went through inference.
        frames_skipped: Frames skipped on purpose (``inference_interval``, ``max_fps``).
        dropped: Dropped-frame counts by reason.
        decode_errors: Decode errors so far.
        reconnects: Reconnections so far.
        last_error: The last error message, if any.
        latency_ms: Latency percentiles.
        extra: Response keys unknown to this client version.
    """

    id: str
    url: str
    state: str
    name: str = ""
    inference_interval: int = 1
    max_fps: float | None = None
    drop_policy: str | None = None
    reason: str = ""
    fps: float = 0.0
    frames_decoded: int = 0
    frames_processed: int = 0
    frames_skipped: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    decode_errors: int = 0
    reconnects: int = 0
    last_error: str | None = None
    latency_ms: LatencyMs = field(default_factory=LatencyMs)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dropped_total(self) -> int:
        """All dropped frames, whatever the reason."""
        return sum(self.dropped.values())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamInfo:
        """Build from a StreamInfo JSON object.

        Raises:
            ValueError: If a required key (``id``, ``url``, ``state``) is missing or a value
                has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        missing = [key for key in ("id", "url", "state") if key not in data]
        if missing:
            raise ValueError(f"stream info lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)} - {"extra"}
        latency = data.get("latency_ms") or {}
        max_fps = data.get("max_fps")
        try:
            return cls(
                id=str(data["id"]),
                url=str(data["url"]),
                state=str(data["state"]),
                name=str(data.get("name") or ""),
                inference_interval=int(data.get("inference_interval", 1)),
                max_fps=None if max_fps is None else float(max_fps),
                drop_policy=data.get("drop_policy"),
                reason=str(data.get("reason") or ""),
                fps=float(data.get("fps") or 0.0),
                frames_decoded=int(data.get("frames_decoded") or 0),
                frames_processed=int(data.get("frames_processed") or 0),
                frames_skipped=int(data.get("frames_skipped") or 0),
                dropped={str(k): int(v) for k, v in (data.get("dropped") or {}).items()},
                decode_errors=int(data.get("decode_errors") or 0),
                reconnects=int(data.get("reconnects") or 0),
                last_error=data.get("last_error"),
                latency_ms=LatencyMs(
                    p50=_optional_float(latency.get("p50")),
                    p99=_optional_float(latency.get("p99")),
                ),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"malformed stream info for {data.get('id')!r}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent (unknown keys included)."""
        data: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "name": self.name,
            "inference_interval": self.inference_interval,
            "max_fps": self.max_fps,
            "drop_policy": self.drop_policy,
            "state": self.state,
            "reason": self.reason,
            "fps": self.fps,
            "frames_decoded": self.frames_decoded,
            "frames_processed": self.frames_processed,
            "frames_skipped": self.frames_skipped,
            "dropped": dict(self.dropped),
            "decode_errors": self.decode_errors,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "latency_ms": {"p50": self.latency_ms.p50, "p99": self.latency_ms.p99},
        }
        data.update(self.extra)
        return data


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
