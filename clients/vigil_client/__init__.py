"""Python client for Vigil's REST API: :class:`VigilClient` (streams, models, analytics,
recordings, probes) and the ``vigilctl`` command (:mod:`vigil_client.cli`)."""

__version__ = "0.1.0"

from vigil_client.analytics import AnalyticsCounts, StreamAnalyticsInfo, read_analytics_file
from vigil_client.client import VigilClient
from vigil_client.errors import (
    AuthError,
    ConflictError,
    ConnectionFailed,
    FieldError,
    LocalFileError,
    NotFoundError,
    ReadyTimeoutError,
    RequestTimeoutError,
    ServerError,
    ValidationError,
    VigilError,
)
from vigil_client.models import (
    ClusterSwapInfo,
    ModelDetail,
    ModelList,
    Serving,
    SignatureInfo,
    SwapInfo,
    TensorInfo,
    VersionInfo,
    WorkerSwap,
)
from vigil_client.recordings import (
    RecordingDownload,
    RecordingInfo,
    RecordingState,
    RecordingTrigger,
)
from vigil_client.streams import LatencyMs, StreamInfo, StreamState

__all__ = [
    "AnalyticsCounts",
    "AuthError",
    "ClusterSwapInfo",
    "ConflictError",
    "ConnectionFailed",
    "FieldError",
    "LatencyMs",
    "LocalFileError",
    "ModelDetail",
    "ModelList",
    "NotFoundError",
    "ReadyTimeoutError",
    "RecordingDownload",
    "RecordingInfo",
    "RecordingState",
    "RecordingTrigger",
    "RequestTimeoutError",
    "ServerError",
    "Serving",
    "SignatureInfo",
    "StreamAnalyticsInfo",
    "StreamInfo",
    "StreamState",
    "SwapInfo",
    "TensorInfo",
    "ValidationError",
    "VersionInfo",
    "VigilClient",
    "VigilError",
    "WorkerSwap",
    "__version__",
    "read_analytics_file",
]
