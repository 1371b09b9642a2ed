"""``GET /api/v1/events/live``: the event path as Server-Sent Events (the console's feed).

Each message is one event in nvmsgconv's full schema (the JSON of the JSONL sink and Kafka),
``id`` a per-connection sequence number. A client that reads too slowly loses the oldest
events and is told so with an ``event: dropped`` message (``data: {"dropped": n}``); a
comment line every ``_KEEPALIVE_S`` keeps proxies from closing an idle connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from vigil.api.bodies import Problem
from vigil.api.deps import RuntimeDep, require_read_key
from vigil.events.live import LiveEvents, Subscription, TooManySubscribersError, sse_message

router = APIRouter(prefix="/api/v1/events", tags=["events"])

_KEEPALIVE_S = 15.0
_RETRY_MS = 3000


@router.get(
    "/live",
    dependencies=[Depends(require_read_key)],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        404: {"model": Problem, "description": "No stream with this id"},
        503: {"model": Problem, "description": "events.live_max_subscribers are connected"},
    },
)
async def live_events(
    runtime: RuntimeDep,
    stream_id: str | None = Query(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Only this stream's events",
    ),
) -> StreamingResponse:
    """Follow the events as they happen (``text/event-stream``)."""
    if stream_id is not None:
        runtime.streams.get(stream_id)  # 404 for an unknown stream
    hub = runtime.live_events
    try:
        subscription = hub.subscribe(stream_id)
    except TooManySubscribersError as e:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(e), headers={"Retry-After": "5"}
        ) from None
    return StreamingResponse(
        _messages(hub, subscription),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # Also when the client left before the first message (the generator never ran).
        background=BackgroundTask(hub.unsubscribe, subscription),
    )


async def _messages(hub: LiveEvents, subscription: Subscription) -> AsyncIterator[str]:
    seq = 0
    try:
        yield f"retry: {_RETRY_MS}\n: connected\n\n"
        while not subscription.closed:
            batch = await subscription.next_batch(_KEEPALIVE_S)
            dropped = subscription.take_dropped()
            if dropped:
                yield f"event: dropped\ndata: {json.dumps({'dropped': dropped})}\n\n"
            if not batch:
                yield ": keepalive\n\n"
                continue
            chunk = []
            for event in batch:
                seq += 1
                chunk.append(sse_message(event, seq))
            yield "".join(chunk)
    finally:
        hub.unsubscribe(subscription)
