"""Synchronous client for Vigil's REST API (``/api/v1``).

Example:
    >>> from vigil_client import VigilClient
    >>> with VigilClient("http://127.0.0.1:8080", api_key="secret") as vigil:  # doctest: +SKIP
    ...     vigil.wait_ready(timeout_s=30)
    ...     info = vigil.add_stream("cam-1", "rtsp://10.0.0.5/stream1", inference_interval=2)
    ...     print(info.state, info.fps)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import quote

import httpx

from vigil_client import __version__

API_PREFIX: Final = "/api/v1"
API_KEY_HEADER: Final = "X-API-Key"

StreamState = Literal["starting", "running", "reconnecting", "error", "stopped"]
"""States the server reports today; :class:`StreamInfo` keeps any other value as it comes."""


# --------------------------------------------------------------------------- errors


class VigilError(Exception):
    """Base of every error this client raises.

    Attributes:
        status_code: The HTTP status of the response, or ``None`` when there was none.
        detail: The server's ``detail`` (a string, or the list of validation errors), or a
            description of what went wrong on the client side.
    """

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None):
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail if detail is not None else message


class NotFoundError(VigilError):
    """404: the stream (or endpoint) does not exist."""


class ConflictError(VigilError):
    """409: a stream with this id exists, or the state change is not allowed now."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of a 422 response: where the problem is and what it is.

    Attributes:
        loc: Path to the offending value as the server reports it, e.g. ``("body", "id")``.
        msg: Human-readable message.
        type: Machine-readable error type, e.g. ``"string_pattern_mismatch"``.
    """

    loc: tuple[str | int, ...]
    msg: str
    type: str = ""

    @property
    def field(self) -> str:
        """``loc`` as a dotted path without the ``body`` prefix, e.g. ``streams[0].url``."""
        parts = list(self.loc[1:] if self.loc[:1] == ("body",) else self.loc)
        text = ""
        for part in parts:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text or "body"


class ValidationError(VigilError):
    """422: the server rejected the request body.

    Attributes:
        errors: The individual problems; empty when the server sent a plain string.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 422,
        detail: Any = None,
        errors: Sequence[FieldError] = (),
    ):
        super().__init__(message, status_code=status_code, detail=detail)
        self.errors = tuple(errors)


class AuthError(VigilError):
    """401 (no API key sent) or 403 (the key is wrong)."""


class ServerError(VigilError):
    """5xx: the server failed to handle the request."""


class ConnectionFailed(VigilError):  # noqa: N818 (name agreed with the server side)
    """The server could not be reached, or dropped the connection before answering."""


class RequestTimeoutError(VigilError):
    """The server accepted the connection but did not answer within ``timeout_s``."""


class ReadyTimeoutError(VigilError):
    """:meth:`VigilClient.wait_ready` gave up: the server did not become ready in time."""


_ERROR_BY_STATUS: Final[dict[int, type[VigilError]]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
}


# --------------------------------------------------------------------------- results


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


# --------------------------------------------------------------------------- client


class VigilClient:
    """Blocking client for one Vigil server.

    Args:
        base_url: Server root, e.g. ``http://127.0.0.1:8080`` (a trailing ``/api/v1`` is
            accepted too).
        api_key: Sent as ``X-API-Key`` on every request when given.
        timeout_s: Timeout for connecting and for each read, in seconds.
        transport: An ``httpx`` transport to use instead of the network (tests pass an
            ``httpx.MockTransport``).

    Raises (from every method that talks to the server):
        NotFoundError, ConflictError, ValidationError, AuthError, ServerError: The server
            answered with that error status.
        ConnectionFailed: The server could not be reached.
        RequestTimeoutError: The server did not answer in time.
        VigilError: Any other unexpected status or an unreadable response.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        root = base_url.rstrip("/")
        root = root.removesuffix(API_PREFIX)
        self.base_url = root
        self.timeout_s = timeout_s
        headers = {"Accept": "application/json", "User-Agent": f"vigil-client/{__version__}"}
        if api_key:
            headers[API_KEY_HEADER] = api_key
        self._http = httpx.Client(
            base_url=root + API_PREFIX + "/",
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VigilClient({self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

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
        return self._stream_info(self._request("POST", "streams", json=body, expect=(201, 200)))

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
        return self._stream_info(self._request("GET", _stream_path(id)))

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
        return self._stream_info(self._request("PATCH", _stream_path(id), json=changes))

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
        self._request("DELETE", _stream_path(id), expect=(204, 200))

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
            return {"ready": False, "reason": _detail_text(detail) or "service unavailable"}
        raise VigilError("unexpected response from GET ready: no 'ready' key", detail=data)

    def health(self) -> dict[str, Any]:
        """The server's health report, ``{"status": "ok"|"degraded", "triton": ..., ...}``.

        A 503 answer that carries a health report is returned, not raised.
        """
        response = self._request("GET", "health", expect=(200, 503))
        data = self._json(response, allow_error_status=True)
        if isinstance(data, Mapping) and "status" in data:
            return dict(data)
        raise _error_from_response(response)

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

    # -- plumbing

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        expect: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        url = f"{self.base_url}{API_PREFIX}/{path}"
        try:
            response = self._http.request(method, path, json=json)
        except httpx.ConnectTimeout as e:
            raise ConnectionFailed(f"cannot connect to Vigil at {url}: timed out") from e
        except httpx.TimeoutException as e:
            raise RequestTimeoutError(
                f"{method} {url}: no response within {self.timeout_s:g} s"
            ) from e
        except httpx.ConnectError as e:
            raise ConnectionFailed(f"cannot connect to Vigil at {url}: {e}") from e
        except httpx.TransportError as e:
            raise ConnectionFailed(f"{method} {url} failed: {e}") from e
        if response.status_code not in expect:
            raise _error_from_response(response)
        return response

    @staticmethod
    def _json(response: httpx.Response, *, allow_error_status: bool = False) -> Any:
        try:
            return response.json()
        except ValueError as e:
            if allow_error_status and response.status_code >= 400:
                raise _error_from_response(response) from e
            raise VigilError(
                f"{response.request.method} {response.request.url}: response is not JSON",
                status_code=response.status_code,
                detail=response.text[:500],
            ) from e

    def _stream_info(self, response: httpx.Response) -> StreamInfo:
        try:
            return StreamInfo.from_dict(self._json(response))
        except ValueError as e:
            request = response.request
            raise VigilError(
                f"unexpected response from {request.method} {request.url}: {e}",
                status_code=response.status_code,
            ) from e


def _stream_path(stream_id: str) -> str:
    if not stream_id:
        raise ValueError("stream id must not be empty")
    # "." and ".." are legal ids but are dot-segments in a URL path, which clients and
    # proxies collapse; percent-encoded dots are left alone (RFC 3986, section 6.2.2.3).
    quoted = quote(stream_id, safe="")
    if quoted in {".", ".."}:
        quoted = quoted.replace(".", "%2E")
    return f"streams/{quoted}"


def _detail_text(detail: Any) -> str:
    if detail is None:
        return ""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, Mapping):
        for key in ("message", "reason", "msg"):
            if isinstance(detail.get(key), str):
                return detail[key]
    return str(detail)


def _field_errors(detail: Any) -> list[FieldError]:
    if not isinstance(detail, list):
        return []
    errors = []
    for item in detail:
        if not isinstance(item, Mapping):
            errors.append(FieldError(loc=(), msg=str(item)))
            continue
        loc = item.get("loc") or ()
        errors.append(
            FieldError(
                loc=tuple(p if isinstance(p, int) else str(p) for p in loc),
                msg=str(item.get("msg", "")),
                type=str(item.get("type", "")),
            )
        )
    return errors


def _error_from_response(response: httpx.Response) -> VigilError:
    """The exception for an error response, with the server's ``detail`` as its message."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail", body) if isinstance(body, Mapping) else body
    if detail is None:
        detail = response.text.strip()[:500] or response.reason_phrase
    where = f"{response.request.method} {response.request.url.path}"

    if status == 422 or (status == 400 and isinstance(detail, list)):
        errors = _field_errors(detail)
        summary = "; ".join(f"{e.field}: {e.msg}" for e in errors) or _detail_text(detail)
        return ValidationError(
            f"invalid request: {summary} (HTTP {status})",
            status_code=status,
            detail=detail,
            errors=errors,
        )
    cls = _ERROR_BY_STATUS.get(status) or (ServerError if status >= 500 else VigilError)
    text = _detail_text(detail) or response.reason_phrase
    if status >= 500 or cls is VigilError or text == response.reason_phrase:
        text = f"{where}: {text}"
    return cls(f"{text} (HTTP {status})", status_code=status, detail=detail)
