"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vigil import __version__
from vigil.api import deps
from vigil.api.hygiene import RejectNonFiniteJson, validation_error
from vigil.api.routers import analytics, deepstream, deepstream_control, health, models, streams
from vigil.api.security import AuditLog, LimitRequestBody
from vigil.pipeline.manager import StreamExistsError, StreamLimitError, StreamNotFoundError
from vigil.pipeline.stream import IllegalTransitionError
from vigil.runtime import Runtime
from vigil.sources.confine import FileNotAllowedError


def create_app(runtime: Runtime) -> FastAPI:
    """Build the REST API over a running :class:`~vigil.runtime.Runtime`."""
    app = FastAPI(
        title="Vigil",
        version=__version__,
        description="Intelligent video analytics around NVIDIA Triton: streams in, events out.",
    )
    # The last added runs first: the audit line sees every answer (413s too), and the body
    # cap stops a large body before RejectNonFiniteJson would read it into memory.
    app.add_middleware(RejectNonFiniteJson)
    app.add_middleware(
        LimitRequestBody,
        max_bytes=runtime.settings.api.max_body_bytes,
        exempt=models.has_own_body_limit,
    )
    app.add_middleware(AuditLog)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.dependency_overrides[deps.get_runtime] = lambda: runtime
    app.dependency_overrides[deps.get_api_settings] = lambda: runtime.settings.api
    app.include_router(streams.router)
    app.include_router(models.router)
    app.include_router(health.router)
    app.include_router(deepstream.router)
    app.include_router(deepstream_control.router)
    app.include_router(analytics.router)

    @app.exception_handler(StreamNotFoundError)
    async def _not_found(_: Request, exc: StreamNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(StreamLimitError)
    async def _limit(_: Request, exc: StreamLimitError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_429_TOO_MANY_REQUESTS)

    @app.exception_handler(FileNotAllowedError)
    async def _file_not_allowed(_: Request, exc: FileNotAllowedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_403_FORBIDDEN)

    @app.exception_handler(StreamExistsError)
    async def _exists(_: Request, exc: StreamExistsError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(IllegalTransitionError)
    async def _illegal(_: Request, exc: IllegalTransitionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    return app
