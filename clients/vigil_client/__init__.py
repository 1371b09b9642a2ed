"""Python client for Vigil's REST API (the SDK and the ``vigilctl`` command grow here)."""

__version__ = "0.1.0"

from vigil_client.client import (
    AuthError,
    ConflictError,
    ConnectionFailed,
    FieldError,
    LatencyMs,
    NotFoundError,
    ReadyTimeoutError,
    RequestTimeoutError,
    ServerError,
    StreamInfo,
    StreamState,
    ValidationError,
    VigilClient,
    VigilError,
)

__all__ = [
    "AuthError",
    "ConflictError",
    "ConnectionFailed",
    "FieldError",
    "LatencyMs",
    "NotFoundError",
    "ReadyTimeoutError",
    "RequestTimeoutError",
    "ServerError",
    "StreamInfo",
    "StreamState",
    "ValidationError",
    "VigilClient",
    "VigilError",
    "__version__",
]
