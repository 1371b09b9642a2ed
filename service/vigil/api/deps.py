"""Dependencies the routers declare; :func:`vigil.api.app.create_app` binds them."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader

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


def _check_key(settings: ApiSettings, key: str | None) -> None:
    if not settings.api_keys:
        return
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "APIKey"},
        )
    if not any(secrets.compare_digest(key, k.get_secret_value()) for k in settings.api_keys):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid API key")


def require_write_key(
    settings: Annotated[ApiSettings, Depends(get_api_settings)],
    key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """Mutating endpoints: a valid key when keys are configured."""
    _check_key(settings, key)


def require_read_key(
    settings: Annotated[ApiSettings, Depends(get_api_settings)],
    key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """Read-only endpoints: a valid key only when ``protect_reads`` is on."""
    if settings.protect_reads:
        _check_key(settings, key)
