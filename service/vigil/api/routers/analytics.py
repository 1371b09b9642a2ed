"""``/api/v1/streams/{id}/analytics``: a stream's analytics rules (hot reload) and counts."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from vigil.analytics import AnalyticsConfig
from vigil.analytics.nvdsanalytics import parse_nvdsanalytics
from vigil.api.bodies import Problem
from vigil.api.deps import RuntimeDep, require_read_key, require_write_key
from vigil.runtime import Runtime
from vigil.specs import StreamId

router = APIRouter(prefix="/api/v1/streams", tags=["analytics"])

_NOT_FOUND = {404: {"model": Problem, "description": "No stream with this id"}}
_MAX_DEEPSTREAM_CONFIG_BYTES = 256 * 1024


class StreamAnalyticsInfo(BaseModel):
    """A stream's analytics configuration and cumulative counts."""

    stream: str
    config: AnalyticsConfig | None = Field(description="None: the stream has no analytics")
    counts: dict[str, Any] = Field(
        description="Cumulative counts since the stream started or its counts were reset: "
        "line crossings per direction and class, crowding episodes, dwell events, objects "
        "now in each zone"
    )


def _invalid(loc: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 in FastAPI's validation-error shape (as for any invalid request)."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _info(runtime: Runtime, stream_id: str) -> StreamAnalyticsInfo:
    managed = runtime.streams.get(stream_id)
    counts = runtime.analytics.snapshot.get(stream_id)
    return StreamAnalyticsInfo(
        stream=stream_id,
        config=managed.spec.analytics,
        counts={} if counts is None else dataclasses.asdict(counts),
    )


@router.get(
    "/{stream_id}/analytics", dependencies=[Depends(require_read_key)], responses=_NOT_FOUND
)
async def get_analytics(stream_id: StreamId, runtime: RuntimeDep) -> StreamAnalyticsInfo:
    """The stream's analytics rules and cumulative counts."""
    return _info(runtime, stream_id)


@router.put(
    "/{stream_id}/analytics", dependencies=[Depends(require_write_key)], responses=_NOT_FOUND
)
async def put_analytics(
    stream_id: StreamId,
    config: AnalyticsConfig,
    runtime: RuntimeDep,
    reset_counts: bool = Query(False, description="Start every count from zero"),
) -> StreamAnalyticsInfo:
    """Replace the stream's analytics rules while it runs (no restart).

    Counts of rules that keep their name survive unless ``reset_counts`` is true.
    """
    await runtime.configure_analytics(stream_id, config, reset_counts)
    return _info(runtime, stream_id)


@router.delete(
    "/{stream_id}/analytics",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_write_key)],
    responses=_NOT_FOUND,
)
async def delete_analytics(stream_id: StreamId, runtime: RuntimeDep) -> Response:
    """Remove the stream's analytics (and its counts)."""
    await runtime.configure_analytics(stream_id, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{stream_id}/analytics/deepstream",
    dependencies=[Depends(require_write_key)],
    responses=_NOT_FOUND,
)
async def put_deepstream_analytics(
    stream_id: StreamId,
    runtime: RuntimeDep,
    text: str = Body(
        media_type="text/plain",
        max_length=_MAX_DEEPSTREAM_CONFIG_BYTES,
        description="DeepStream's config_nvdsanalytics.txt, unchanged",
    ),
    source: int = Query(0, ge=0, le=1023, description="Which [*-stream-N] sections to use"),
    reset_counts: bool = Query(False, description="Start every count from zero"),
) -> StreamAnalyticsInfo:
    """Configure the stream from a DeepStream ``config_nvdsanalytics.txt`` (its
    ``*-stream-<source>`` sections, scaled from ``config-width`` × ``config-height``)."""
    runtime.streams.get(stream_id)  # 404 before parsing
    try:
        configs = parse_nvdsanalytics(text)
    except ValueError as e:
        raise _invalid(("body",), str(e)) from e
    config = configs.get(source)
    if config is None:
        have = sorted(configs)
        raise _invalid(
            ("query", "source"),
            f"the config has no enabled section for stream {source} (it has {have})",
        )
    await runtime.configure_analytics(stream_id, config, reset_counts)
    return _info(runtime, stream_id)
