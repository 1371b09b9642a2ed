"""``/api/v1/streams``: add, list, inspect, change and remove streams."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from vigil.api.bodies import Problem, StreamInfo, StreamList
from vigil.api.deps import RuntimeDep, require_read_key, require_write_key
from vigil.specs import StreamId, StreamPatch, StreamSpec

router = APIRouter(prefix="/api/v1/streams", tags=["streams"])

_NOT_FOUND = {404: {"model": Problem, "description": "No stream with this id"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_write_key)],
    responses={
        403: {"model": Problem, "description": "A file url outside sources.file_roots"},
        409: {"model": Problem, "description": "A stream with this id exists"},
        429: {"model": Problem, "description": "pipeline.max_streams streams run already"},
    },
)
async def add_stream(spec: StreamSpec, runtime: RuntimeDep) -> StreamInfo:
    """Add a stream and start processing it."""
    return StreamInfo.of(await runtime.streams.add(spec))


@router.get("", dependencies=[Depends(require_read_key)])
async def list_streams(runtime: RuntimeDep) -> StreamList:
    """All streams with their status."""
    return StreamList(streams=[StreamInfo.of(m) for m in runtime.streams.list()])


@router.get("/{stream_id}", dependencies=[Depends(require_read_key)], responses=_NOT_FOUND)
async def get_stream(stream_id: StreamId, runtime: RuntimeDep) -> StreamInfo:
    """One stream's spec and status."""
    return StreamInfo.of(runtime.streams.get(stream_id))


@router.patch(
    "/{stream_id}",
    dependencies=[Depends(require_write_key)],
    responses={**_NOT_FOUND, 409: {"model": Problem, "description": "Illegal state change"}},
)
async def update_stream(stream_id: StreamId, patch: StreamPatch, runtime: RuntimeDep) -> StreamInfo:
    """Change a stream: name, inference interval, max fps, or start/stop it."""
    return StreamInfo.of(await runtime.streams.update(stream_id, patch))


@router.delete(
    "/{stream_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_write_key)],
    responses=_NOT_FOUND,
)
async def remove_stream(stream_id: StreamId, runtime: RuntimeDep) -> Response:
    """Stop a stream and remove it."""
    await runtime.streams.remove(stream_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
