"""Request body cap and audit log: two pure-ASGI middlewares around every route.

:class:`LimitRequestBody` answers 413 before a route reads a body larger than
``api.max_body_bytes`` (by its Content-Length, or by counting a streamed body), so no route
and no other middleware ever buffers one. Model uploads are exempt: their route streams the
file to disk under its own limit, ``model.max_upload_bytes``.

:class:`AuditLog` writes one line to the ``vigil.audit`` logger (level INFO, whatever
``log_level`` says) for every mutating call and every request refused for its key: the key id
(never the key), method, path, status, client address and duration. Never the body.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

audit_log = logging.getLogger("vigil.audit")
# Audit lines are INFO but must survive the default log_level (WARNING): the logger's own
# level decides whether a record is made; the root handlers do not filter by level.
audit_log.setLevel(logging.INFO)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _BodyTooLargeError(Exception):
    pass


class LimitRequestBody:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 with the limit.

    Args:
        app: The application.
        max_bytes: Largest body accepted.
        exempt: ``exempt(method, path)`` true for requests that keep their own limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        exempt: Callable[[str, str], bool] = lambda method, path: False,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        too_large = started = False

        async def counted() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLargeError
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if too_large:  # whatever the app made of the interrupted read, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _BodyTooLargeError:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"request body larger than api.max_body_bytes ({self.max_bytes} bytes)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class AuditLog:
    """ASGI middleware: one ``vigil.audit`` line per mutating call or refused key.

    The key id comes from ``request.state.key_id``, set by the auth dependency
    (:mod:`vigil.api.deps`); ``-`` when no route checked a key (unknown path, body too large).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # shared with every Request built on this scope
        start = time.perf_counter()
        status = 500  # an exception with no response is a 500 to the client

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            if scope["method"] in MUTATING or status in (401, 403):
                self._write(scope, state, status, time.perf_counter() - start)

    @staticmethod
    def _write(scope: Scope, state: dict[str, object], status: int, elapsed: float) -> None:
        client = scope.get("client")
        record = {
            "key_id": str(state.get("key_id", "-")),
            "method": scope["method"],
            "path": _printable(scope),
            "status": status,
            "client": f"{client[0]}:{client[1]}" if client else "-",
            "duration_ms": round(elapsed * 1000, 1),
        }
        audit_log.info(
            "%(key_id)s %(method)s %(path)s %(status)s client=%(client)s "
            "duration_ms=%(duration_ms)s",
            record,
            extra={"audit": record},
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _printable(scope: Scope) -> str:
    """The request path as sent (percent-encoded), control characters escaped: a client
    cannot write a line of its own into the log."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    return path.encode("unicode_escape").decode("ascii")
