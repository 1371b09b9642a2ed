"""Exceptions of the Vigil client, and the mapping from an error response to one of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx


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
    """404: the stream, model, version or recording (or the endpoint) does not exist."""


class ConflictError(VigilError):
    """409: the request conflicts with the current state: a stream with this id exists, a
    state change is not allowed now, a swap is incompatible or already running, nothing is
    recording, a recording is still being written."""


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


class LocalFileError(VigilError):
    """A local file could not be read, parsed or written (a model to upload, an analytics
    config, a recording's download).

    Attributes:
        path: The file.
    """

    def __init__(self, message: str, *, path: str | Path):
        super().__init__(message)
        self.path = Path(path)


def detail_text(detail: Any) -> str:
    """The human-readable part of a response's ``detail`` (``""`` when there is none)."""
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


def error_from_response(response: httpx.Response) -> VigilError:
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
        summary = "; ".join(f"{e.field}: {e.msg}" for e in errors) or detail_text(detail)
        return ValidationError(
            f"invalid request: {summary} (HTTP {status})",
            status_code=status,
            detail=detail,
            errors=errors,
        )
    cls = _ERROR_BY_STATUS.get(status) or (ServerError if status >= 500 else VigilError)
    text = detail_text(detail) or response.reason_phrase
    if status >= 500 or cls is VigilError or text == response.reason_phrase:
        text = f"{where}: {text}"
    return cls(f"{text} (HTTP {status})", status_code=status, detail=detail)
