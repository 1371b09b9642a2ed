"""``/api/v1/session``: the web console's session cookie (see :mod:`vigil.api.sessions`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from vigil.api.bodies import Problem
from vigil.api.deps import get_api_settings, require_write_key
from vigil.api.sessions import COOKIE, issue_token, verify_token
from vigil.config import ApiSettings

router = APIRouter(prefix="/api/v1/session", tags=["session"])

SettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]


class SessionState(BaseModel):
    """What the API asks of a client, and what this request's session cookie holds."""

    keys_required: bool = Field(description="Mutating calls need X-API-Key")
    reads_protected: bool = Field(description="Read calls need the key or a session cookie")
    session_key_id: str | None = Field(
        description="Id of the key the request's valid session cookie was opened with"
    )


class SessionOpened(BaseModel):
    """A session opened with a key (the cookie is set only when keys are configured)."""

    key_id: str = Field(description="The key's id (never the key)")
    expires_in_s: int | None = Field(description="Cookie lifetime; None: no cookie needed")


@router.get("")
async def session_state(request: Request, settings: SettingsDep) -> SessionState:
    """Whether keys are needed, and whether the session cookie sent is valid. Open to all:
    it tells no more than a 401 would."""
    token = request.cookies.get(COOKIE)
    return SessionState(
        keys_required=bool(settings.api_keys),
        reads_protected=bool(settings.api_keys) and settings.protect_reads,
        session_key_id=None if token is None else verify_token(token, settings.key_ids()),
    )


@router.post(
    "",
    dependencies=[Depends(require_write_key)],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
async def open_session(
    request: Request, response: Response, settings: SettingsDep
) -> SessionOpened:
    """Exchange a valid ``X-API-Key`` for an HttpOnly, SameSite=Strict cookie holding a
    signed, expiring token (never the key). The cookie authorizes GET requests only."""
    keys = dict(settings.key_ids())
    kid = str(request.state.key_id)
    if kid not in keys:  # no keys configured: nothing to remember
        return SessionOpened(key_id=kid, expires_in_s=None)
    ttl = settings.session_ttl_s
    response.set_cookie(
        COOKIE,
        issue_token(kid, keys[kid], ttl),
        max_age=ttl,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return SessionOpened(key_id=kid, expires_in_s=ttl)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def close_session(request: Request) -> Response:
    """Clear the session cookie (no key needed: it only forgets)."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response
