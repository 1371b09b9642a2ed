"""DeepStream's runtime-configuration REST calls, as its deepstream-server README sends them.

Served (bodies exactly as DeepStream's ``curl -XPOST ... -d '{"stream": {...}}'`` sends them,
whatever the content type):

* ``POST /api/v1/roi/update`` — ``{"stream": {"stream_id", "roi_count", "roi": [{"roi_id",
  "left", "top", "width", "height"}]}}``: DeepStream updates its preprocessing ROIs; Vigil
  makes them the stream's *include* ROI filters (rectangles, named ``roi-<roi_id>``), so only
  objects inside them are reported. The stream's other analytics rules and counts stay.
* ``POST /api/v1/infer/set-interval`` and ``/api/v1/inferserver/set-interval`` —
  ``{"stream": {"stream_id", "interval"}}``: DeepStream's ``interval`` is the number of
  batches *skipped* between inferences, so Vigil's ``inference_interval`` becomes
  ``interval + 1``. DeepStream applies it to every stream whatever ``stream_id`` says; Vigil
  applies it to the stream named.
* ``POST /api/v1/dec/drop-frame-interval`` — ``{"stream": {"stream_id",
  "drop_frame_interval"}}`` (0–30): keep every Nth decoded frame.
* ``POST /api/v1/mux/batched-push-timeout`` — ``{"stream": {"batched_push_timeout"}}`` in
  microseconds: the batcher's timeout for incomplete batches (all streams).
* ``GET /api/v1/health/get-dsready-state`` — ``{"health-info": {"ds-ready": "YES"|"NO"}}``.

``stream_id`` is DeepStream's source index: the stream's position in Vigil's stream list
(``get-stream-info``'s ``source_id``); a Vigil stream id is accepted too. Replies have
DeepStream 7's shape (``{"status": "HTTP/1.1 200 OK", "reason": "ROI_UPDATE_SUCCESS"}``).
A call Vigil cannot honour (an unknown stream, a bad value) answers 4xx with the reason,
never a silent 200; DeepStream calls Vigil has no counterpart for (encoder, OSD, converter
settings, ``app/quit``, ...) answer 404 naming the call.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vigil.analytics import AnalyticsConfig, RoiFilter
from vigil.api.deps import RuntimeDep, require_read_key, require_write_key
from vigil.api.routers.deepstream import (
    DeepStreamReply,
    DeepStreamRoute,
    body_failure,
    describe_errors,
    status_line,
)
from vigil.api.routers.health import readiness
from vigil.pipeline.manager import ManagedStream
from vigil.runtime import Runtime
from vigil.specs import StreamPatch


class _ControlRoute(DeepStreamRoute):
    """DeepStream's body handling, and invalid bodies answered in DeepStream's reply
    format (``{"status": "HTTP/1.1 422 ...", "reason": "..."}``) like every other reply."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def control_handler(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as exc:
                code, why = body_failure(exc)
                return _reply(why, code)

        return control_handler


router = APIRouter(tags=["deepstream"], route_class=_ControlRoute)
_FAILURES: dict[int | str, dict[str, Any]] = {
    400: {"model": DeepStreamReply, "description": "The body is not JSON"},
    404: {"model": DeepStreamReply, "description": "No such stream (source index or id)"},
    422: {"model": DeepStreamReply, "description": "Invalid body, naming the field"},
}

_Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoiRect(_Body):
    """One DeepStream ROI rectangle in source pixels."""

    roi_id: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_.-]+$")
    left: _Finite = Field(ge=0)
    top: _Finite = Field(ge=0)
    width: _Finite = Field(gt=0)
    height: _Finite = Field(gt=0)


class RoiStream(_Body):
    """``stream`` of a ``roi/update`` body."""

    stream_id: str | int
    roi_count: int = Field(ge=0, le=64)
    roi: list[RoiRect] = Field(max_length=64)

    @model_validator(mode="after")
    def _count_matches(self) -> RoiStream:
        if self.roi_count != len(self.roi):
            raise ValueError(f"roi_count is {self.roi_count} but roi has {len(self.roi)} entries")
        return self


class RoiUpdate(_Body):
    """Body of ``POST /api/v1/roi/update``."""

    stream: RoiStream


class IntervalStream(_Body):
    """``stream`` of an ``infer/set-interval`` body."""

    stream_id: str | int
    interval: int = Field(ge=0, le=999, description="Batches skipped between inferences")


class IntervalUpdate(_Body):
    """Body of ``POST /api/v1/infer/set-interval`` (and ``inferserver``)."""

    stream: IntervalStream


class DropFrameStream(_Body):
    """``stream`` of a ``dec/drop-frame-interval`` body."""

    stream_id: str | int
    drop_frame_interval: int = Field(ge=0, le=30)


class DropFrameUpdate(_Body):
    """Body of ``POST /api/v1/dec/drop-frame-interval``."""

    stream: DropFrameStream


class PushTimeoutStream(_Body):
    """``stream`` of a ``mux/batched-push-timeout`` body."""

    stream_id: str | int | None = None
    batched_push_timeout: int = Field(ge=0, le=60_000_000, description="Microseconds")


class PushTimeoutUpdate(_Body):
    """Body of ``POST /api/v1/mux/batched-push-timeout``."""

    stream: PushTimeoutStream


class HealthInfo(BaseModel):
    """``health-info`` of ``get-dsready-state``."""

    ds_ready: str = Field(alias="ds-ready")


class DsReadyReply(DeepStreamReply):
    """Answer of ``GET /api/v1/health/get-dsready-state``."""

    health_info: HealthInfo = Field(alias="health-info")


def _reply(reason: str, code: HTTPStatus = HTTPStatus.OK) -> JSONResponse:
    return JSONResponse(
        DeepStreamReply(status=status_line(code), reason=reason).model_dump(), status_code=code
    )


def _find(runtime: Runtime, stream_id: str | int) -> ManagedStream | None:
    """A stream by DeepStream source index (its position in the list) or by Vigil id."""
    streams = runtime.streams.list()
    key = str(stream_id)
    for managed in streams:
        if managed.spec.id == key:
            return managed
    if key.isdigit() and int(key) < len(streams):
        return streams[int(key)]
    return None


def _no_stream(fail: str, stream_id: str | int) -> JSONResponse:
    return _reply(
        f"{fail}, no stream with source index or id {str(stream_id)!r}", HTTPStatus.NOT_FOUND
    )


_WRITE = [Depends(require_write_key)]


def _control(path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a DeepStream runtime-configuration POST at ``path``."""
    return router.post(
        path, dependencies=_WRITE, response_model=DeepStreamReply, responses=_FAILURES
    )


@_control("/api/v1/roi/update")
async def update_roi(body: RoiUpdate, runtime: RuntimeDep) -> JSONResponse:
    """Make DeepStream ROI rectangles the stream's include ROI filters."""
    fail = "ROI_UPDATE_FAIL"
    managed = _find(runtime, body.stream.stream_id)
    if managed is None:
        return _no_stream(fail, body.stream.stream_id)
    current = managed.spec.analytics or AnalyticsConfig()
    try:
        rois = [
            RoiFilter(
                name=f"roi-{r.roi_id}",
                polygon=[
                    (r.left, r.top),
                    (r.left + r.width, r.top),
                    (r.left + r.width, r.top + r.height),
                    (r.left, r.top + r.height),
                ],
            )
            for r in body.stream.roi
        ]
        config = AnalyticsConfig.model_validate(
            {**current.model_dump(), "coordinates": "pixels", "rois": rois}
        )
    except ValidationError as e:
        return _reply(f"{fail}, {describe_errors(e.errors())}", HTTPStatus.UNPROCESSABLE_ENTITY)
    await runtime.configure_analytics(managed.spec.id, config)
    return _reply("ROI_UPDATE_SUCCESS")


async def _patch(
    runtime: Runtime, stream_id: str | int, patch: StreamPatch, reason: str
) -> JSONResponse:
    """Apply ``patch`` to the stream DeepStream names; ``reason`` is the
    ``<X>_UPDATE`` stem of the reply."""
    managed = _find(runtime, stream_id)
    if managed is None:
        return _no_stream(f"{reason}_FAIL", stream_id)
    await runtime.streams.update(managed.spec.id, patch)
    return _reply(f"{reason}_SUCCESS")


@_control("/api/v1/infer/set-interval")
@_control("/api/v1/inferserver/set-interval")
async def set_infer_interval(body: IntervalUpdate, runtime: RuntimeDep) -> JSONResponse:
    """Infer one batch, then skip ``interval`` (nvinfer's and nvinferserver's ``interval``)."""
    patch = StreamPatch(inference_interval=body.stream.interval + 1)
    return await _patch(runtime, body.stream.stream_id, patch, "INFER_INTERVAL_UPDATE")


@_control("/api/v1/dec/drop-frame-interval")
async def set_drop_frame_interval(body: DropFrameUpdate, runtime: RuntimeDep) -> JSONResponse:
    """Keep every Nth decoded frame of the stream."""
    patch = StreamPatch(drop_frame_interval=body.stream.drop_frame_interval)
    return await _patch(runtime, body.stream.stream_id, patch, "DROP_FRAME_INTERVAL_UPDATE")


@_control("/api/v1/mux/batched-push-timeout")
async def set_batched_push_timeout(body: PushTimeoutUpdate, runtime: RuntimeDep) -> JSONResponse:
    """Send an incomplete batch this many microseconds after its first frame."""
    runtime.pipeline.set_batch_timeout(body.stream.batched_push_timeout / 1000)
    return _reply("BATCHED_PUSH_TIMEOUT_UPDATE_SUCCESS")


@router.get(
    "/api/v1/health/get-dsready-state",
    dependencies=[Depends(require_read_key)],
    response_model=DsReadyReply,
)
async def get_dsready_state(runtime: RuntimeDep) -> JSONResponse:
    """Whether the pipeline is ready (Triton up, model serving, engine running)."""
    ready, _ = await readiness(runtime)
    reply = DsReadyReply.model_validate(
        {
            "status": status_line(HTTPStatus.OK),
            "reason": "GET_DS_READINESS_INFO_SUCCESS",
            "health-info": {"ds-ready": "YES" if ready else "NO"},
        }
    )
    return JSONResponse(reply.model_dump(by_alias=True))


# DeepStream calls with no counterpart in Vigil: a clear 404, never a silent 200.
_UNSUPPORTED = {
    "/api/v1/dec/skip-frames": "Vigil decodes every frame; use drop-frame-interval",
    "/api/v1/dec/low-latency-mode": "Vigil has no decoder low-latency mode",
    "/api/v1/enc/bitrate": "Vigil does not encode video",
    "/api/v1/enc/force-idr": "Vigil does not encode video",
    "/api/v1/enc/force-intra": "Vigil does not encode video",
    "/api/v1/enc/iframe-interval": "Vigil does not encode video",
    "/api/v1/conv/srccrop": "use ROI filters (/api/v1/roi/update)",
    "/api/v1/conv/destcrop": "Vigil has no converter output crop",
    "/api/v1/conv/interpolation-method": "Vigil's preprocessing picks its interpolation",
    "/api/v1/conv/flip-method": "Vigil does not flip frames",
    "/api/v1/mux/max-latency": "use batched-push-timeout",
    "/api/v1/osd/process-mode": "Vigil has no on-screen display process mode",
    "/api/v1/nvtracker/config-path": "configure the tracker with Vigil's tracking settings",
    "/api/v1/analytics/reload-config": "use PUT /api/v1/streams/{id}/analytics",
    "/api/v1/app/quit": "stop Vigil with SIGTERM",
}


def _unsupported(path: str, why: str):
    async def endpoint() -> JSONResponse:
        return _reply(f"{path} is not supported by Vigil: {why}", HTTPStatus.NOT_FOUND)

    endpoint.__name__ = "unsupported_" + path.rsplit("/", 2)[-2] + "_" + path.rsplit("/", 1)[-1]
    endpoint.__doc__ = f"Not supported by Vigil: {why} (answers 404)."
    return endpoint


for _path, _why in _UNSUPPORTED.items():
    router.add_api_route(
        _path,
        _unsupported(_path, _why),
        methods=["POST"],
        dependencies=_WRITE,
        status_code=404,
        response_model=DeepStreamReply,
        responses={400: _FAILURES[400], 422: _FAILURES[422]},
    )
