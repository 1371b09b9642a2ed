"""On a cluster worker, a call about one stream that another worker runs is passed to that
worker's API, and its answer streamed back: any worker answers for every stream.

What is forwarded: ``GET /api/v1/streams/{id}`` and everything under
``/api/v1/streams/{id}/`` (analytics, recordings, the live view and snapshots), when the
stream is in the cluster, not run here, and its owner's status names its API URL
(``cluster.advertised_url``). Adding, changing and removing streams are not: they go through
the control topic (:class:`~vigil.cluster.worker.ClusterStreams`). A forwarded request is
marked and never forwarded again, so two workers that disagree about an owner cannot loop.
The owner checks the credentials itself (API keys and console sessions verify on any worker
that has the same keys).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from urllib.parse import unquote

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.cluster.peers import ANSWERED_BY, FORWARDED
from vigil.runtime import Runtime

log = logging.getLogger(__name__)


_PER_STREAM = re.compile(r"^/api/v1/streams/(?P<id>[^/]+)(?P<rest>/.+)?$")
# Connection-level headers are not passed on.
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"host"}
_TIMEOUT = httpx.Timeout(10.0, read=30.0)  # a live view sends a part at least every few s


class ForwardToOwner:
    """ASGI middleware: forward per-stream calls to the stream's owner (see the module).

    Args:
        app: The application.
        runtime: The running service (its ``cluster`` decides; without one, nothing moves).
        transport: How to reach the owners (tests; default: the network).
    """

    def __init__(
        self, app: ASGIApp, runtime: Runtime, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner = self._owner_of(scope)
        if owner is None:
            await self.app(scope, receive, send)
            return
        worker, url = owner
        client = httpx.AsyncClient(timeout=_TIMEOUT, transport=self.transport)
        await _forward(client, scope, receive, send, worker, url, self._me)

    @property
    def _me(self) -> str:
        cluster = self.runtime.cluster
        return cluster.worker_id if cluster else ""

    def _owner_of(self, scope: Scope) -> tuple[str, str] | None:
        """The (worker, API URL) to forward to, or None to answer here."""
        cluster = self.runtime.cluster
        if cluster is None or scope["type"] != "http":
            return None
        match = _PER_STREAM.match(scope["path"])
        if match is None or (match["rest"] is None and scope["method"] != "GET"):
            return None
        if any(name == FORWARDED for name, _ in scope["headers"]):
            return None
        stream_id = unquote(match["id"])
        if stream_id in self.runtime.streams or stream_id not in cluster.desired.streams:
            return None
        owner = cluster.board.owner_elsewhere(stream_id, cluster.worker_id)
        if owner is None or not owner.api:
            return None
        return owner.worker, owner.api


async def _forward(
    client: httpx.AsyncClient,
    scope: Scope,
    receive: Receive,
    send: Send,
    worker: str,
    base_url: str,
    me: str,
) -> None:
    body = bytearray()
    while True:  # the body limit runs before this middleware
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_BY_HOP]
    headers.append((FORWARDED, me.encode()))
    query = scope.get("query_string", b"").decode("latin-1")
    url = (
        base_url.rstrip("/") + scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")
    )
    try:
        request = client.build_request(scope["method"], url, headers=headers, content=bytes(body))
        response = await client.send(request, stream=True)
    except httpx.HTTPError as e:
        await client.aclose()
        log.warning("cannot forward %s %s to worker %s: %s", scope["method"], url, worker, e)
        detail = f"the stream runs on worker {worker}, which does not answer ({type(e).__name__})"
        await _answer(send, 503, {"detail": detail})
        return

    async def relay() -> None:
        out = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
        out.append((ANSWERED_BY, worker.encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    # A live view never ends by itself: stop relaying when the client goes.
    relaying = asyncio.ensure_future(relay())
    watching = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
        if relaying.done() and not relaying.cancelled() and relaying.exception() is not None:
            log.info("forwarded answer from worker %s cut short: %s", worker, relaying.exception())
    finally:
        for task in (relaying, watching):
            task.cancel()
        await asyncio.gather(relaying, watching, return_exceptions=True)
        await response.aclose()
        await client.aclose()


async def _answer(send: Send, status: int, body: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": payload})
