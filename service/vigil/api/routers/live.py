"""The live view: MJPEG streams, snapshots and tiled views with the on-screen display.

``GET /api/v1/streams/{id}/live.mjpeg`` and ``.../snapshot.jpg`` for one stream,
``GET /api/v1/live/tiled.mjpeg`` and ``/api/v1/live/tiled.jpg`` for a grid of several
(docs/live-view.md). Frames are drawn only while someone watches; limits and defaults are the
``live`` settings.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from vigil.analytics import AnalyticsConfig
from vigil.api.bodies import Problem
from vigil.api.deps import RuntimeDep, require_read_key
from vigil.config import LiveSettings
from vigil.osd import (
    BOUNDARY,
    MAX_TILES,
    LiveView,
    Overlay,
    StreamGoneError,
    View,
    ViewerLimitError,
)
from vigil.runtime import Runtime
from vigil.specs import StreamId

router = APIRouter(tags=["live"], dependencies=[Depends(require_read_key)])

_MJPEG = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
_NO_STORE = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
_NOT_FOUND = {"model": Problem, "description": "No stream with this id"}
_BUSY = {"model": Problem, "description": "Too many live viewers (live.max_viewers...)"}
_MJPEG_OK = {"content": {_MJPEG: {}}, "description": "MJPEG: one JPEG part per frame"}
_JPEG_OK = {"content": {"image/jpeg": {}}, "description": "One JPEG picture"}

Fps = Annotated[
    float | None,
    Query(gt=0, allow_inf_nan=False, description="Most frames a second (≤ live.max_fps)"),
]
Height = Annotated[
    int | None,
    Query(
        ge=16,
        le=4320,
        description="Picture height in pixels, width by the aspect ratio (default: the "
        "source's, at most live.default_height)",
    ),
]
Flag = Annotated[bool, Query(description="Draw this part of the overlay")]
Streams = Annotated[
    str | None,
    Query(
        max_length=MAX_TILES * 80,
        description=f"Comma-separated stream ids (default: every stream; at most {MAX_TILES})",
    ),
]


def _overlay(bbox: Flag = True, labels: Flag = True, masks: Flag = True, zones: Flag = True,
             timestamp: Flag = True) -> Overlay:  # fmt: skip
    return Overlay(bbox=bbox, labels=labels, masks=masks, zones=zones, timestamp=timestamp)


OverlayDep = Annotated[Overlay, Depends(_overlay)]


def _invalid(field: str, message: str) -> RequestValidationError:
    """A 422 in FastAPI's validation-error shape, naming the query parameter."""
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )


def _view(runtime: Runtime, overlay: Overlay, fps: float | None, height: int | None) -> View:
    live: LiveSettings = runtime.settings.live
    if fps is not None and fps > live.max_fps:
        raise _invalid("fps", f"fps: {fps} is above live.max_fps ({live.max_fps})")
    fps = fps or min(live.default_fps, live.max_fps)
    return View(overlay, height, fps, live.jpeg_quality, live.default_height)


def _live_view(runtime: Runtime) -> LiveView:
    def analytics_of(stream_id: str) -> AnalyticsConfig | None:
        if stream_id not in runtime.streams:
            return None
        return runtime.streams.get(stream_id).spec.analytics

    return LiveView(runtime.frame_tap, analytics_of, runtime.settings.live.snapshot_timeout_s)


def _check_room(runtime: Runtime, stream_ids: list[str]) -> None:
    try:
        runtime.frame_tap.check_room(stream_ids)
    except ViewerLimitError as e:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(e)) from None


def _jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get(
    "/api/v1/streams/{stream_id}/live.mjpeg",
    response_class=StreamingResponse,
    responses={200: _MJPEG_OK, 404: _NOT_FOUND, 429: _BUSY},
)
async def live_mjpeg(
    stream_id: StreamId, runtime: RuntimeDep, overlay: OverlayDep, fps: Fps = None,
    height: Height = None,
) -> StreamingResponse:  # fmt: skip
    """The stream with its overlay as MJPEG (``<img src=...>`` shows it), at most ``fps``
    frames a second, each frame once; ends when the stream is removed."""
    runtime.streams.get(stream_id)  # 404 for an unknown stream
    view = _view(runtime, overlay, fps, height)
    _check_room(runtime, [stream_id])
    body = _live_view(runtime).mjpeg(stream_id, view)
    return StreamingResponse(body, media_type=_MJPEG, headers=_NO_STORE)


@router.get(
    "/api/v1/streams/{stream_id}/snapshot.jpg",
    response_class=Response,
    responses={
        200: _JPEG_OK,
        404: _NOT_FOUND,
        409: {"model": Problem, "description": "No frame within live.snapshot_timeout_s"},
    },
)
async def snapshot(
    stream_id: StreamId, runtime: RuntimeDep, overlay: OverlayDep, height: Height = None
) -> Response:
    """The stream's latest frame with its overlay, as JPEG (waits up to
    ``live.snapshot_timeout_s`` for one)."""
    managed = runtime.streams.get(stream_id)
    view = _view(runtime, overlay, None, height)
    try:
        data = await _live_view(runtime).snapshot(stream_id, view)
    except StreamGoneError:
        gone = f"stream {stream_id!r} was removed"
        raise HTTPException(status.HTTP_404_NOT_FOUND, gone) from None
    if data is None:
        status_now = managed.status
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"no frame of stream {stream_id!r} within "
            f"{runtime.settings.live.snapshot_timeout_s} s (live.snapshot_timeout_s): it is "
            f"{status_now.state}" + (f" ({status_now.reason})" if status_now.reason else ""),
            headers={"Retry-After": "1"},
        )
    return _jpeg(data)


def _tiled_streams(runtime: Runtime, streams: str | None) -> list[str]:
    if streams is None:
        ids = [m.spec.id for m in runtime.streams.list()][:MAX_TILES]
    else:
        ids = list(dict.fromkeys(s.strip() for s in streams.split(",") if s.strip()))
        if not ids:
            raise _invalid("streams", "streams: name at least one stream id")
        if len(ids) > MAX_TILES:
            raise _invalid(
                "streams", f"streams: {len(ids)} streams, at most {MAX_TILES} in one tiled view"
            )
        for sid in ids:
            runtime.streams.get(sid)  # 404 naming the unknown one
    if not ids:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no streams to show: add a stream first")
    return ids


@router.get(
    "/api/v1/live/tiled.mjpeg",
    response_class=StreamingResponse,
    responses={200: _MJPEG_OK, 404: _NOT_FOUND, 429: _BUSY},
)
async def tiled_mjpeg(
    runtime: RuntimeDep, overlay: OverlayDep, streams: Streams = None, fps: Fps = None,
    height: Height = None,
) -> StreamingResponse:  # fmt: skip
    """Several streams in a grid (DeepStream's tiler: ⌊√n⌋ rows), 16:9, ``height`` pixels
    high; a stream without a frame shows a labelled placeholder."""
    ids = _tiled_streams(runtime, streams)
    view = _view(runtime, overlay, fps, height)
    _check_room(runtime, ids)
    body = _live_view(runtime).tiled_mjpeg(ids, view)
    return StreamingResponse(body, media_type=_MJPEG, headers=_NO_STORE)


@router.get(
    "/api/v1/live/tiled.jpg",
    response_class=Response,
    responses={200: _JPEG_OK, 404: _NOT_FOUND},
)
async def tiled_jpg(
    runtime: RuntimeDep, overlay: OverlayDep, streams: Streams = None, height: Height = None
) -> Response:
    """One tiled picture of several streams (placeholders for those without a frame)."""
    ids = _tiled_streams(runtime, streams)
    view = _view(runtime, overlay, None, height)
    return _jpeg(await _live_view(runtime).tiled_snapshot(ids, view))
