"""Dependencies the routers declare; :func:`vigil.api.app.create_app` binds them."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from vigil.api.sessions import COOKIE, verify_token
from vigil.config import ApiSettings
from vigil.runtime import Runtime

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_runtime() -> Runtime:
    """The running pipeline (bound by the app factory)."""
    raise RuntimeError("create_app() binds get_runtime")  # pragma: no cover


def get_api_settings() -> ApiSettings:
    """API settings (bound by the app factory)."""
    raise RuntimeError("create_app() binds get_api_settings")  # pragma: no cover


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


ANONYMOUS = "anonymous"
"""``request.state.key_id`` when no key is required (keys off, or an unguarded read)."""
NO_KEY, INVALID_KEY = "none", "invalid"
"""``request.state.key_id`` of a request refused for a missing or a wrong key."""


def _check_key(
    request: Request, settings: ApiSettings, key: str | None, session: bool = False
) -> None:
    """Let the request through or raise 401/403; ``request.state.key_id`` names the key
    that matched (its id, never the key) or why none did. With ``session``, a valid session
    cookie stands in for a missing header (reads only: see :func:`require_read_key`)."""
    if not settings.api_keys:
        request.state.key_id = ANONYMOUS
        return
    if not key:
        token = request.cookies.get(COOKIE) if session else None
        if token is not None:
            kid = verify_token(token, settings.key_ids())
            if kid is not None:
                request.state.key_id = kid
                return
        request.state.key_id = NO_KEY
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send it in the X-API-Key header"
            + ("" if token is None else " (the session cookie has expired or is invalid)"),
            headers={"WWW-Authenticate": "APIKey"},
        )
    sent = key.encode()
    for kid, known in settings.key_ids():
        if secrets.compare_digest(sent, known.encode()):
            request.state.key_id = kid
            return
    request.state.key_id = INVALID_KEY
    raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid API key")


def require_write_key(
    request: Request,
    settings: Annotated[ApiSettings, Depends(get_api_settings)],
    key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """Mutating endpoints: a valid key when keys are configured."""
    _check_key(request, settings, key)


def require_read_key(
    request: Request,
    settings: Annotated[ApiSettings, Depends(get_api_settings)],
    key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """Read-only endpoints: a valid key only when ``protect_reads`` is on.

    A session cookie (``POST /api/v1/session``) counts as the key for GET and HEAD requests
    only, so that the console's images, videos and event feed can read; any other method
    needs the header, which a cross-site form or image cannot send (no CSRF).
    """
    if settings.protect_reads:
        _check_key(request, settings, key, session=request.method in ("GET", "HEAD"))
    else:
        request.state.key_id = ANONYMOUS
