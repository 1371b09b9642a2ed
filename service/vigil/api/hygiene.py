"""Request hygiene shared by every route: non-finite numbers are refused, errors stay JSON.

Python's JSON parser (and so FastAPI's) accepts ``NaN``, ``Infinity`` and ``-Infinity``,
which are not JSON. A ``NaN`` slips through range checks (every comparison with it is
false) and an error that quotes it cannot be serialized (a 500). So a JSON body holding one
is answered 422 naming where it is, before any route sees it; and validation errors are
written with non-finite inputs quoted as text.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _NonFinite:
    def __init__(self, token: str) -> None:
        self.token = token


def find_non_finite(body: bytes) -> tuple[str, str] | None:
    """``(where, token)`` of the first NaN/Infinity in a JSON body, or None (also for a body
    that is not JSON: the route reports that itself)."""
    try:
        doc = json.loads(body, parse_constant=_NonFinite)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[str, Any]] = [("body", doc)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, _NonFinite):
            return where, value.token
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}", v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return None


class RejectNonFiniteJson:
    """ASGI middleware: a request whose JSON body holds NaN or ±Infinity gets a 422.

    Only bodies that look like JSON are read (multipart uploads stream through untouched).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"").lower()
        if content_type.startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        found = find_non_finite(body) if b"NaN" in body or b"Infinity" in body else None
        if found is not None:
            where, token = found
            response = JSONResponse(
                {
                    "detail": [
                        {
                            "loc": where.split("."),
                            "msg": f"{token} is not a number JSON allows; use a finite number",
                            "type": "finite_number",
                        }
                    ]
                },
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            )
            await response(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body, with any non-finite input quoted so it can be written."""
    return JSONResponse(
        {"detail": _json_safe(jsonable_encoder(exc.errors()))},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )
