"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vigil import __version__
from vigil.api import deps
from vigil.api.forward import ForwardToOwner
from vigil.api.hygiene import RejectNonFiniteJson, validation_error
from vigil.api.routers import (
    analytics,
    cluster,
    deepstream,
    deepstream_control,
    events,
    health,
    live,
    models,
    recordings,
    session,
    streams,
)
from vigil.api.security import AuditLog, LimitRequestBody
from vigil.console import mount_console
from vigil.pipeline.manager import StreamExistsError, StreamLimitError, StreamNotFoundError
from vigil.pipeline.stream_state import IllegalTransitionError
from vigil.plugins.discovery import PluginError
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
    # cap stops a large body before RejectNonFiniteJson would read it into memory, or a
    # cluster worker passes it to the stream's owner.
    app.add_middleware(ForwardToOwner, runtime=runtime)
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
    app.include_router(recordings.router)
    app.include_router(live.router)
    app.include_router(events.router)
    app.include_router(session.router)
    app.include_router(cluster.router)
    mount_console(app)

    for error, code in _STATUS_OF.items():
        app.add_exception_handler(error, _answer_with(code))

    return app


# Errors of the stream manager (and file confinement) → the status code that answers them.
_STATUS_OF: dict[type[Exception], int] = {
    StreamNotFoundError: status.HTTP_404_NOT_FOUND,
    StreamLimitError: status.HTTP_429_TOO_MANY_REQUESTS,
    FileNotAllowedError: status.HTTP_403_FORBIDDEN,
    StreamExistsError: status.HTTP_409_CONFLICT,
    IllegalTransitionError: status.HTTP_409_CONFLICT,
    PluginError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    # a cluster worker's control topic did not acknowledge a change
    KafkaError: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def _answer_with(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler answering ``code`` with the error's message as the detail."""

    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handler
