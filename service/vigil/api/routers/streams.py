"""``/api/v1/streams``: add, list, inspect, change and remove streams.

On a cluster worker (``cluster.enabled``) the changes go to the control topic and the owner
runs the stream (:mod:`vigil.api.routers.cluster`); reads show this worker's own streams, and
``GET /api/v1/cluster`` the whole cluster.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import JSONResponse

from vigil.api.bodies import Problem, StreamInfo, StreamList
from vigil.api.deps import RuntimeDep, require_read_key, require_write_key
from vigil.api.routers import cluster
from vigil.specs import StreamId, StreamPatch, StreamSpec

router = APIRouter(prefix="/api/v1/streams", tags=["streams"])

_NOT_FOUND = {404: {"model": Problem, "description": "No stream with this id"}}
_ACCEPTED = {
    202: {
        "model": cluster.ClusterStream,
        "description": "Cluster worker: written to the control topic, the owner has not "
        "reported it yet; poll the Location",
    },
    503: {"model": Problem, "description": "Cluster worker: the control topic is unreachable"},
}


@router.post(
    "",
    response_model=StreamInfo,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_write_key)],
    responses={
        403: {"model": Problem, "description": "A file url outside sources.file_roots"},
        409: {"model": Problem, "description": "A stream with this id exists"},
        429: {"model": Problem, "description": "pipeline.max_streams streams run already"},
        **_ACCEPTED,
    },
)
async def add_stream(spec: StreamSpec, runtime: RuntimeDep) -> StreamInfo | JSONResponse:
    """Add a stream and start processing it (cluster worker: the answer is the stream's
    owner and state, a ``ClusterStream``)."""
    if runtime.cluster is not None:
        return await cluster.add(runtime, spec)
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
    response_model=StreamInfo,
    dependencies=[Depends(require_write_key)],
    responses={
        **_NOT_FOUND,
        409: {"model": Problem, "description": "Illegal state change"},
        **_ACCEPTED,
    },
)
async def update_stream(
    stream_id: StreamId, patch: StreamPatch, runtime: RuntimeDep
) -> StreamInfo | JSONResponse:
    """Change a stream: name, inference interval, max fps, or start/stop it."""
    if runtime.cluster is not None:
        return await cluster.update(runtime, stream_id, patch)
    return StreamInfo.of(await runtime.streams.update(stream_id, patch))


@router.delete(
    "/{stream_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_write_key)],
    responses={**_NOT_FOUND, 202: {"description": "Cluster worker: its owner still runs it"}},
)
async def remove_stream(stream_id: StreamId, runtime: RuntimeDep) -> Response:
    """Stop a stream and remove it."""
    if runtime.cluster is not None:
        return await cluster.remove(runtime, stream_id)
    await runtime.streams.remove(stream_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
