"""DeepStream-compatible stream management, so existing DeepStream clients drive Vigil unchanged.

DeepStream's REST server (``nvds_rest_server``, used by ``nvmultiurisrcbin`` and
``deepstream-server-app``) adds and removes sensors with::

    POST /api/v1/stream/add      {"key": "sensor", "value": {"camera_id": ..., "camera_url": ...,
                                  "change": "camera_add", ...}, "headers": {...}}
    POST /api/v1/stream/remove   the same, with "change": "camera_remove"
    GET  /api/v1/stream/get-stream-info

This module serves those paths over Vigil's :class:`~vigil.pipeline.manager.StreamManager`.

Requests are accepted as DeepStream accepts them:

* The body is parsed as JSON whatever its ``Content-Type``: DeepStream's documented
  ``curl -XPOST ... -d '{...}'`` sends ``application/x-www-form-urlencoded``.
* ``value.camera_id`` and ``value.camera_url`` are required (``camera_url`` only on add: Vigil
  finds a stream by its id, so the url sent with a remove is ignored); ``key``,
  ``value.camera_name``, ``value.metadata`` and ``headers`` are optional. Unknown keys are
  allowed inside ``metadata`` and ``headers`` and rejected elsewhere. ``event`` is accepted in
  place of ``value``, as DeepStream's parser does.
* ``value.change`` must belong to the endpoint: ``camera_add`` (or ``camera_streaming``, which
  DeepStream also treats as an add) on ``/add``, ``camera_remove`` on ``/remove``. DeepStream
  acts on ``change`` whatever the path; Vigil refuses a mismatch with 422.

Replies have DeepStream 7.x's shape, ``{"status": "HTTP/1.1 200 OK", "reason":
"STREAM_ADD_SUCCESS"}``, with DeepStream's reason strings (``STREAM_REMOVE_SUCCESS``,
``STREAM_ADD_FAIL, Duplicate Camera id, unable to add stream``, ...). The one difference:
DeepStream answers every handled request with HTTP 200 and puts the real code only in
``status`` (500 for a duplicate or an unknown camera), while Vigil sends the code it puts in
``status`` and uses a 4xx for a client's mistake: 400 (body is not JSON), 404 (no such
camera), 409 (duplicate camera), 422 (invalid body or url). API-key failures (401/403) keep
Vigil's usual ``{"detail": ...}`` body.

DeepStream 6.2/6.3 served the same bodies at ``/stream/add`` and ``/stream/remove`` and
answered ``{"status": "STREAM_ADD_SUCCESS", "reason": "NA"}``; those paths are served too.

Camera ids: DeepStream accepts any string as ``camera_id``; a Vigil stream id must match
``^[A-Za-z0-9][A-Za-z0-9._-]*$`` and have at most 64 characters. An id that fits is used as
is. Any other id is mapped, deterministically, by :func:`stream_id_for`: each run of other
characters becomes ``_``, leading ``.``, ``_`` and ``-`` are dropped, the rest is cut to 55
characters (``camera`` if nothing is left), and ``-`` plus the first 8 hex digits of the
SHA-256 of the original id is appended (``0:tienda`` becomes ``0_tienda-<8 hex>``). The same
camera_id therefore always names the same stream, so a remove with the id used for the add
finds it, and the mapped id (a valid id, which maps to itself) works as well. Add and remove
replies carry the Vigil id in the ``X-Vigil-Stream-Id`` header; ``get-stream-info`` lists Vigil
ids (the original of a mapped id is not kept).

``get-stream-info`` lists every stream Vigil manages, in the order they were added, whatever
its state (DeepStream drops a failed source; Vigil keeps it until it is removed, so it still
holds its id). ``source_id`` is the stream's position in that list: DeepStream's numeric
source ids have no counterpart in Vigil.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError

from vigil.api.deps import RuntimeDep, require_read_key, require_write_key
from vigil.deepstream import (
    StreamAddRequest,
    StreamRemoveRequest,
    stream_id_for,
)
from vigil.pipeline.manager import StreamExistsError, StreamLimitError, StreamNotFoundError
from vigil.sources.confine import FileNotAllowedError
from vigil.sources.errors import SourceError
from vigil.specs import StreamSpec

log = logging.getLogger(__name__)

STREAM_ID_HEADER = "X-Vigil-Stream-Id"


# DeepStream's own reason strings (nvmultiurisrcbin), which clients match on.
_ADD_OK = "STREAM_ADD_SUCCESS"
_ADD_FAIL = "STREAM_ADD_FAIL"
_REMOVE_OK = "STREAM_REMOVE_SUCCESS"
_REMOVE_FAIL = "STREAM_REMOVE_FAIL"
_INFO_OK = "GET_LIVE_STREAM_INFO_SUCCESS"
_DUPLICATE = "Duplicate Camera id, unable to add stream"
_NO_RECORD = "No record found. Failed to remove source stream"
_SOURCE_FAILED = "Failed to add source stream"
_LIMIT = "pipeline.max_streams streams run already"
_ADD_FAILURES = {
    403: "camera_url is a file outside sources.file_roots",
    409: "A stream with this camera_id exists",
    429: _LIMIT,
}
_REMOVE_FAILURES = {404: "No stream has this camera_id"}

# Where the fields of a StreamSpec came from in a DeepStream body.
_SPEC_FIELD = {"id": "value.camera_id", "url": "value.camera_url", "name": "value.camera_name"}


# ----------------------------------------------------------------------------------- replies


class DeepStreamReply(BaseModel):
    """DeepStream 7.x's answer to a request."""

    status: str = Field(description="The status line, e.g. 'HTTP/1.1 200 OK'")
    reason: str = Field(description="e.g. 'STREAM_ADD_SUCCESS' or 'STREAM_ADD_FAIL, <why>'")


class LegacyReply(BaseModel):
    """DeepStream 6.2/6.3's answer (served at ``/stream/add`` and ``/stream/remove``)."""

    status: str = Field(description="e.g. 'STREAM_ADD_SUCCESS' or 'STREAM_ADD_FAIL'")
    reason: str = Field(description="'NA' on success, otherwise why it failed")


class CameraInfo(BaseModel):
    """One stream in ``get-stream-info``."""

    source_id: int = Field(description="Position in Vigil's stream list")
    camera_id: str = Field(description="The Vigil stream id")
    camera_name: str


class StreamInfoList(BaseModel):
    """The ``stream-info`` object of ``get-stream-info``."""

    stream_count: int = Field(alias="stream-count")
    streams: list[CameraInfo] = Field(alias="stream-info")


class StreamInfoReply(DeepStreamReply):
    """Answer of ``GET /api/v1/stream/get-stream-info``."""

    stream_info: StreamInfoList = Field(alias="stream-info")


def status_line(code: HTTPStatus) -> str:
    return f"HTTP/1.1 {code.value} {code.phrase}"


class _Outcome:
    """Builds replies for one operation (add or remove) in one API generation."""

    def __init__(self, ok: str, fail: str, *, legacy: bool) -> None:
        self.ok = ok
        self.fail = fail
        self.legacy = legacy

    def success(self, stream_id: str) -> JSONResponse:
        if self.legacy:
            body = LegacyReply(status=self.ok, reason="NA")
        else:
            body = DeepStreamReply(status=status_line(HTTPStatus.OK), reason=self.ok)
        return JSONResponse(body.model_dump(), headers={STREAM_ID_HEADER: stream_id})

    def failure(self, code: HTTPStatus, why: str, stream_id: str | None = None) -> JSONResponse:
        if self.legacy:
            body: BaseModel = LegacyReply(status=self.fail, reason=why)
        else:
            body = DeepStreamReply(status=status_line(code), reason=f"{self.fail}, {why}")
        headers = {STREAM_ID_HEADER: stream_id} if stream_id else None
        return JSONResponse(body.model_dump(), status_code=code, headers=headers)


_ADD = _Outcome(_ADD_OK, _ADD_FAIL, legacy=False)
_REMOVE = _Outcome(_REMOVE_OK, _REMOVE_FAIL, legacy=False)
_LEGACY_ADD = _Outcome(_ADD_OK, _ADD_FAIL, legacy=True)
_LEGACY_REMOVE = _Outcome(_REMOVE_OK, _REMOVE_FAIL, legacy=True)


def _outcome_for(path: str) -> _Outcome | None:
    legacy = not path.startswith("/api/")
    if path.endswith("/add"):
        return _LEGACY_ADD if legacy else _ADD
    if path.endswith("/remove"):
        return _LEGACY_REMOVE if legacy else _REMOVE
    return None


def describe_errors(errors: Sequence[Any], fields: dict[str, str] | None = None) -> str:
    """Pydantic errors as one line that names each field (in DeepStream's terms)."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err["loc"] if p != "body"]
        name = ".".join(loc) or "body"
        if fields:
            name = fields.get(name, name)
        cause = err.get("ctx", {}).get("error")
        # A validator's ValueError is quoted in its own words, without "Value error, ".
        msg = str(cause) if err["type"] == "value_error" and cause is not None else err["msg"]
        if err["type"] == "literal_error":
            msg = f"{msg}, got {err['input']!r}"
        parts.append(f"{name}: {msg}")
    return "; ".join(parts)


def body_failure(exc: RequestValidationError) -> tuple[HTTPStatus, str]:
    errors = exc.errors()
    bad_json = [e for e in errors if e["type"] == "json_invalid"]
    if bad_json:
        err = bad_json[0]
        position = err["loc"][-1]
        why = err.get("ctx", {}).get("error", err["msg"])
        return HTTPStatus.BAD_REQUEST, f"body is not valid JSON (at character {position}): {why}"
    return HTTPStatus.UNPROCESSABLE_ENTITY, describe_errors(errors)


class DeepStreamRoute(APIRoute):
    """A route that reads bodies as DeepStream does and answers bad ones in its format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        outcome = _outcome_for(self.path)

        async def deepstream_handler(request: Request) -> Response:
            try:
                return await handle(_as_json(request))
            except RequestValidationError as exc:
                if outcome is None:
                    raise
                code, why = body_failure(exc)
                log.info("DeepStream %s refused (%d): %s", request.url.path, code, why)
                return outcome.failure(code, why)

        return deepstream_handler


def _as_json(request: Request) -> Request:
    """The request, with a JSON content type whatever the client declared."""
    if request.method != "POST" or request.headers.get("content-type") == "application/json":
        return request
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
    headers.append((b"content-type", b"application/json"))
    return Request({**request.scope, "headers": headers}, request.receive)


router = APIRouter(tags=["deepstream"], route_class=DeepStreamRoute)


def _change(
    path: str, reply: type[BaseModel], failures: dict[int, str], *, deprecated: bool | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an add or remove endpoint: a POST that needs a write key and answers
    ``reply`` (DeepStream 7.x's or the legacy shape) on success and on the failures it
    documents (400 and 422, plus ``failures``)."""
    described = {400: "The body is not JSON", 422: "Invalid body or camera_url", **failures}
    return router.post(
        path,
        dependencies=[Depends(require_write_key)],
        response_model=reply,
        deprecated=deprecated,
        responses={code: {"model": reply, "description": text} for code, text in described.items()},
    )


async def _add(body: StreamAddRequest, runtime: RuntimeDep, outcome: _Outcome) -> JSONResponse:
    camera = body.value
    stream_id = stream_id_for(camera.camera_id)
    try:
        spec = StreamSpec(id=stream_id, url=camera.camera_url, name=camera.camera_name)
    except ValidationError as e:
        return outcome.failure(
            HTTPStatus.UNPROCESSABLE_ENTITY, describe_errors(e.errors(), _SPEC_FIELD)
        )
    try:
        await runtime.stream_control.add(spec)
    except StreamExistsError:
        return outcome.failure(HTTPStatus.CONFLICT, _DUPLICATE, stream_id)
    except StreamLimitError as e:
        return outcome.failure(HTTPStatus.TOO_MANY_REQUESTS, str(e), stream_id)
    except FileNotAllowedError as e:
        detail = str(e).replace("url:", "camera_url:", 1)
        return outcome.failure(HTTPStatus.FORBIDDEN, detail, stream_id)
    except SourceError as e:
        return outcome.failure(
            HTTPStatus.UNPROCESSABLE_ENTITY, f"{_SOURCE_FAILED}: {e.reason}", stream_id
        )
    if stream_id != camera.camera_id:
        log.info("DeepStream camera_id %r added as stream %r", camera.camera_id, stream_id)
    return outcome.success(stream_id)


async def _remove(
    body: StreamRemoveRequest, runtime: RuntimeDep, outcome: _Outcome
) -> JSONResponse:
    stream_id = stream_id_for(body.value.camera_id)
    try:
        await runtime.stream_control.remove(stream_id)
    except StreamNotFoundError:
        return outcome.failure(HTTPStatus.NOT_FOUND, _NO_RECORD, stream_id)
    return outcome.success(stream_id)


@_change("/api/v1/stream/add", DeepStreamReply, _ADD_FAILURES)
async def add_stream(body: StreamAddRequest, runtime: RuntimeDep) -> JSONResponse:
    """Add a camera and start processing it (DeepStream's ``stream/add``)."""
    return await _add(body, runtime, _ADD)


@_change("/api/v1/stream/remove", DeepStreamReply, _REMOVE_FAILURES)
async def remove_stream(body: StreamRemoveRequest, runtime: RuntimeDep) -> JSONResponse:
    """Stop a camera and remove it (DeepStream's ``stream/remove``)."""
    return await _remove(body, runtime, _REMOVE)


@router.get(
    "/api/v1/stream/get-stream-info",
    dependencies=[Depends(require_read_key)],
    response_model=StreamInfoReply,
)
async def get_stream_info(runtime: RuntimeDep) -> JSONResponse:
    """All streams, as DeepStream's ``stream/get-stream-info`` lists them."""
    cameras = [
        {"source_id": i, "camera_id": m.spec.id, "camera_name": m.spec.name}
        for i, m in enumerate(runtime.streams.list())
    ]
    reply = StreamInfoReply.model_validate(
        {
            "status": status_line(HTTPStatus.OK),
            "reason": _INFO_OK,
            "stream-info": {"stream-count": len(cameras), "stream-info": cameras},
        }
    )
    return JSONResponse(reply.model_dump(by_alias=True))


@_change("/stream/add", LegacyReply, _ADD_FAILURES, deprecated=True)
async def add_stream_legacy(body: StreamAddRequest, runtime: RuntimeDep) -> JSONResponse:
    """DeepStream 6.2/6.3's path and reply for ``stream/add``."""
    return await _add(body, runtime, _LEGACY_ADD)


@_change("/stream/remove", LegacyReply, _REMOVE_FAILURES, deprecated=True)
async def remove_stream_legacy(body: StreamRemoveRequest, runtime: RuntimeDep) -> JSONResponse:
    """DeepStream 6.2/6.3's path and reply for ``stream/remove``."""
    return await _remove(body, runtime, _LEGACY_REMOVE)
