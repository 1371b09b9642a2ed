"""``/api/v1/cluster``: the workers, who owns which stream; and the cluster side of the
stream calls (a write to the control topic, answered once the owner reports the stream).

Only with ``cluster.enabled``; see docs/scale-out.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from vigil.api.bodies import Problem
from vigil.api.deps import RuntimeDep, require_read_key
from vigil.cluster.control import Written
from vigil.cluster.models import DesiredModel
from vigil.cluster.status import WorkerStatus
from vigil.cluster.streams import ClusterStreams
from vigil.cluster.worker import ClusterWorker
from vigil.pipeline.manager import StreamNotFoundError
from vigil.runtime import Runtime
from vigil.sources.urls import redact_url
from vigil.specs import StreamId, StreamPatch, StreamSpec

router = APIRouter(prefix="/api/v1/cluster", tags=["cluster"])

_OFF = {404: {"model": Problem, "description": "Not a cluster worker (cluster.enabled is off)"}}


class ClusterStream(BaseModel):
    """A stream of the cluster: its desired spec and what its owner reports."""

    id: str
    url: str = Field(description="Source URL, credentials redacted")
    partition: int = Field(description="Control topic partition of its key")
    owner: str | None = Field(description="The worker that runs it (None: not reported yet)")
    state: str = Field(
        description="As its owner reports it (starting, running, reconnecting, error, "
        "stopped), or pending: no worker reports it yet"
    )
    reason: str = ""
    fps: float = 0.0


class ClusterView(BaseModel):
    """The workers and the assignment."""

    worker: str = Field(description="The worker that answered")
    workers: list[WorkerStatus] = Field(description="Live workers, by id")
    streams: list[ClusterStream] = Field(description="Every desired stream, by id")
    model: DesiredModel | None = Field(
        None, description="The model version every worker should serve (None: no swap yet)"
    )


def _cluster(runtime: Runtime) -> ClusterWorker:
    if runtime.cluster is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "cluster.enabled is off on this worker")
    return runtime.cluster


def _describe(cluster: ClusterWorker, stream_id: str) -> ClusterStream:
    desired = cluster.desired.streams[stream_id]
    found = cluster.board.owner(stream_id)
    worker, report = found if found else (None, None)
    return ClusterStream(
        id=stream_id,
        url=redact_url(desired.spec.url),
        partition=desired.partition,
        owner=worker.worker if worker else None,
        state=report.state if report else "pending",
        reason=report.reason if report else "",
        fps=report.fps if report else 0.0,
    )


@router.get("", dependencies=[Depends(require_read_key)], responses=_OFF)
async def cluster_view(runtime: RuntimeDep) -> ClusterView:
    """Every live worker (streams, partitions, model, load) and every stream's owner."""
    cluster = _cluster(runtime)
    return ClusterView(
        worker=cluster.worker_id,
        workers=cluster.board.workers(),
        streams=[_describe(cluster, s) for s in sorted(cluster.desired.streams)],
        model=cluster.models.desired if cluster.models else None,
    )


@router.get(
    "/streams/{stream_id}",
    dependencies=[Depends(require_read_key)],
    responses={404: {"model": Problem, "description": "No such stream, or not a cluster"}},
)
async def cluster_stream(stream_id: StreamId, runtime: RuntimeDep) -> ClusterStream:
    """One stream of the cluster: its owner and state."""
    cluster = _cluster(runtime)
    if stream_id not in cluster.desired.streams:
        raise StreamNotFoundError(f"no stream with id {stream_id!r} in the cluster")
    return _describe(cluster, stream_id)


# --- the stream calls of /api/v1/streams on a cluster worker ---------------------------------


def _link(stream_id: str) -> str:
    return f"{router.prefix}/streams/{stream_id}"


def _streams(runtime: Runtime) -> ClusterStreams:
    return ClusterStreams(_cluster(runtime), runtime.streams.file_roots)


async def _written(cluster: ClusterWorker, write: Awaitable[Written]) -> None:
    """Wait for the broker's acknowledgement, then until this worker has read the record (a
    GET right after shows the change)."""
    try:
        written = await write
    except (KafkaError, OSError) as e:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the control topic did not acknowledge the change: {e or type(e).__name__}",
        ) from e
    await cluster.desired.tail.wait_reached({written.partition: written.offset + 1}, 5.0)


async def _until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def add(runtime: Runtime, spec: StreamSpec) -> JSONResponse:
    """Add a stream to the cluster: 201 with its state once its owner reports it, else 202
    with the link to poll.

    Raises:
        StreamExistsError: the cluster has a stream with this id.
        FileNotAllowedError: a file outside ``sources.file_roots``.
    """
    cluster = _cluster(runtime)
    await _written(cluster, _streams(runtime).add(spec))
    reported = await _until(
        lambda: cluster.board.owner(spec.id) is not None, cluster.cluster.request_timeout_s
    )
    body = _describe(cluster, spec.id).model_dump()
    if reported:
        return JSONResponse(body, status.HTTP_201_CREATED)
    return JSONResponse(body, status.HTTP_202_ACCEPTED, headers={"Location": _link(spec.id)})


async def update(runtime: Runtime, stream_id: str, patch: StreamPatch) -> JSONResponse:
    """Change a cluster stream's spec (its owner restarts it with the new one): 202.

    Raises:
        StreamNotFoundError: no such stream in the cluster.
        HTTPException: 409 for ``state``: a cluster stream runs while it exists.
    """
    cluster = _cluster(runtime)
    desired = cluster.desired.streams.get(stream_id)
    if desired is None:
        raise StreamNotFoundError(f"no stream with id {stream_id!r} in the cluster")
    changes = patch.model_dump(exclude_unset=True)
    if "state" in changes:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "state: a cluster stream runs while it exists; DELETE it to stop it",
        )
    changes = {k: v for k, v in changes.items() if v is not None or k == "max_fps"}
    spec = StreamSpec.model_validate(desired.spec.model_dump(exclude_unset=True) | changes)
    await _written(cluster, _streams(runtime).replace(spec))
    return JSONResponse(
        _describe(cluster, stream_id).model_dump(),
        status.HTTP_202_ACCEPTED,
        headers={"Location": _link(stream_id)},
    )


async def remove(runtime: Runtime, stream_id: str) -> Response:
    """Remove a cluster stream: 204 once no worker reports it, else 202.

    Raises:
        StreamNotFoundError: no such stream in the cluster.
    """
    cluster = _cluster(runtime)
    if stream_id not in cluster.desired.streams:
        raise StreamNotFoundError(f"no stream with id {stream_id!r} in the cluster")
    await _written(cluster, cluster.write(stream_id, None))
    gone = await _until(
        lambda: cluster.board.owner(stream_id) is None, cluster.cluster.request_timeout_s
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT if gone else status.HTTP_202_ACCEPTED)
