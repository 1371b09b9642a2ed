"""Synchronous client for Vigil's REST API (``/api/v1``).

Example:
    >>> from vigil_client import VigilClient
    >>> with VigilClient("http://127.0.0.1:8080", api_key="secret") as vigil:  # doctest: +SKIP
    ...     vigil.wait_ready(timeout_s=30)
    ...     info = vigil.add_stream("cam-1", "rtsp://10.0.0.5/stream1", inference_interval=2)
    ...     print(info.state, info.fps)
    ...     vigil.load_analytics_file("cam-1", "door.yaml")
    ...     print(vigil.get_analytics("cam-1").counts.crossings("door", "in"))
    ...     clip = vigil.start_recording("cam-1", duration_s=20, pre_roll_s=5)
    ...     vigil.upload_model_version("ssd", "ssd-v2.onnx")
    ...     vigil.swap_model("ssd", "latest")
    ...     vigil.download_recording(clip.id, "clip.mp4")  # once it is complete
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from vigil_client._http import API_KEY_HEADER, API_PREFIX, stream_path
from vigil_client.analytics import AnalyticsMixin
from vigil_client.errors import (
    AuthError,
    ConflictError,
    ConnectionFailed,
    FieldError,
    LocalFileError,
    NotFoundError,
    ReadyTimeoutError,
    RequestTimeoutError,
    ServerError,
    ValidationError,
    VigilError,
    detail_text,
    error_from_response,
)
from vigil_client.models import ModelsMixin
from vigil_client.recordings import RecordingsMixin
from vigil_client.streams import LatencyMs, StreamInfo, StreamState

# The names below were defined in this module before it was split; they stay importable
# from here.
__all__ = [
    "API_KEY_HEADER",
    "API_PREFIX",
    "AuthError",
    "ConflictError",
    "ConnectionFailed",
    "FieldError",
    "LatencyMs",
    "LocalFileError",
    "NotFoundError",
    "ReadyTimeoutError",
    "RequestTimeoutError",
    "ServerError",
    "StreamInfo",
    "StreamState",
    "ValidationError",
    "VigilClient",
    "VigilError",
]


class VigilClient(ModelsMixin, AnalyticsMixin, RecordingsMixin):
    """Blocking client for one Vigil server: streams, probes, models, analytics, recordings.

    Args:
        base_url: Server root, e.g. ``http://127.0.0.1:8080`` (a trailing ``/api/v1`` is
            accepted too).
        api_key: Sent as ``X-API-Key`` on every request when given.
        timeout_s: Timeout for connecting and for each read, in seconds (uploads and swaps
            wait longer: see those methods).
        transport: An ``httpx`` transport to use instead of the network (tests pass an
            ``httpx.MockTransport``).

    Raises (from every method that talks to the server):
        NotFoundError, ConflictError, ValidationError, AuthError, ServerError: The server
            answered with that error status.
        ConnectionFailed: The server could not be reached.
        RequestTimeoutError: The server did not answer in time.
        VigilError: Any other unexpected status or an unreadable response.
    """

    # -- streams

    def add_stream(self, id: str, url: str, **options: Any) -> StreamInfo:
        """Register a stream and start it.

        Args:
            id: Stream id, 1-64 chars of ``[A-Za-z0-9._-]``.
            url: Source URL.
            **options: Further StreamSpec fields: ``name``, ``inference_interval``,
                ``max_fps``, ``drop_policy``. Passed through unchanged, so the server
                validates them (a misspelt option comes back as :class:`ValidationError`).

        Returns:
            The new stream (usually in state ``starting``).

        Raises:
            ConflictError: A stream with this id exists.
            ValidationError: The spec is invalid.
        """
        body = {"id": id, "url": url, **options}
        return self._parse(
            self._request("POST", "streams", json=body, expect=(201, 200)), StreamInfo.from_dict
        )

    def list_streams(self) -> list[StreamInfo]:
        """All streams, in the server's order."""
        data = self._json(self._request("GET", "streams"))
        items = data.get("streams") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise VigilError("unexpected response from GET streams: no 'streams' list")
        try:
            return [StreamInfo.from_dict(item) for item in items]
        except ValueError as e:
            raise VigilError(f"unexpected response from GET streams: {e}") from e

    def get_stream(self, id: str) -> StreamInfo:
        """One stream.

        Raises:
            NotFoundError: No stream has this id.
        """
        return self._parse(self._request("GET", stream_path(id)), StreamInfo.from_dict)

    def update_stream(self, id: str, **changes: Any) -> StreamInfo:
        """Change a stream's settings.

        Args:
            id: Stream id.
            **changes: Any of ``name``, ``inference_interval``, ``max_fps`` (``None`` lifts
                the limit) and ``state`` (``"running"`` or ``"stopped"``).

        Raises:
            NotFoundError: No stream has this id.
            ConflictError: The state change is not allowed from the current state.
            ValidationError: A change is invalid.
        """
        return self._parse(
            self._request("PATCH", stream_path(id), json=changes), StreamInfo.from_dict
        )

    def start_stream(self, id: str) -> StreamInfo:
        """Start a stopped stream (``PATCH state=running``)."""
        return self.update_stream(id, state="running")

    def stop_stream(self, id: str) -> StreamInfo:
        """Stop a running stream (``PATCH state=stopped``); it stays registered."""
        return self.update_stream(id, state="stopped")

    def remove_stream(self, id: str) -> None:
        """Stop a stream and forget it.

        Raises:
            NotFoundError: No stream has this id.
        """
        self._request("DELETE", stream_path(id), expect=(204, 200))

    # -- probes

    def live(self) -> bool:
        """Whether the server process answers ``/live``.

        Returns ``False``, without raising, when the server cannot be reached, does not answer
        in time, or answers with anything but 200: that is what "not live" means.
        """
        try:
            response = self._request("GET", "live")
        except (ConnectionFailed, RequestTimeoutError, ServerError):
            return False
        data = self._json(response)
        return isinstance(data, Mapping) and data.get("status") == "ok"

    def ready(self) -> dict[str, Any]:
        """The server's readiness report, ``{"ready": bool, ...}``.

        A 503 "not ready" answer is returned as the report (``ready`` false, with ``reason``),
        not raised.
        """
        response = self._request("GET", "ready", expect=(200, 503))
        data = self._json(response, allow_error_status=True)
        if isinstance(data, Mapping) and "ready" in data:
            return dict(data)
        detail = data.get("detail") if isinstance(data, Mapping) else None
        if isinstance(detail, Mapping) and "ready" in detail:
            return dict(detail)
        if response.status_code == 503:
            return {"ready": False, "reason": detail_text(detail) or "service unavailable"}
        raise VigilError("unexpected response from GET ready: no 'ready' key", detail=data)

    def health(self) -> dict[str, Any]:
        """The server's health report, ``{"status": "ok"|"degraded", "triton": ..., ...}``.

        A 503 answer that carries a health report is returned, not raised.
        """
        response = self._request("GET", "health", expect=(200, 503))
        data = self._json(response, allow_error_status=True)
        if isinstance(data, Mapping) and "status" in data:
            return dict(data)
        raise error_from_response(response)

    def wait_ready(self, timeout_s: float = 60.0, poll_interval_s: float = 0.5) -> dict[str, Any]:
        """Poll ``/ready`` until the server is ready.

        Connection failures, timeouts and 5xx answers count as "not ready yet", so this can be
        called while the server is still starting.

        Returns:
            The first readiness report with ``ready`` true.

        Raises:
            ReadyTimeoutError: Not ready after ``timeout_s``; the message holds the last reason.
        """
        deadline = time.monotonic() + timeout_s
        last_reason = "no answer yet"
        while True:
            try:
                report = self.ready()
            except (ConnectionFailed, RequestTimeoutError, ServerError) as e:
                last_reason = str(e)
            else:
                if report.get("ready") is True:
                    return report
                last_reason = str(report.get("reason") or "not ready")
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise ReadyTimeoutError(
                    f"Vigil at {self.base_url} not ready after {timeout_s:g} s: {last_reason}"
                )
            time.sleep(min(poll_interval_s, remaining_s))
