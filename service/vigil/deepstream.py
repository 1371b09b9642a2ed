"""DeepStream's sensor bodies and camera-id mapping, shared by REST and Kafka commands.

DeepStream adds and removes sensors with ``{"key": "sensor", "value": {"camera_id",
"camera_name", "camera_url", "change": "camera_add" | "camera_remove", "metadata": {...}},
"headers": {...}}``. These models accept exactly what DeepStream accepts (``event`` in place of
``value``; unknown keys only inside ``metadata`` and ``headers``). The REST router
(:mod:`vigil.api.routers.deepstream`) and the command processor
(:mod:`vigil.commands.processor`) both use them, so the two accept the same bodies.

Camera ids: DeepStream accepts any string as ``camera_id``; a Vigil stream id must match
``^[A-Za-z0-9][A-Za-z0-9._-]*$`` and have at most 64 characters. :func:`stream_id_for` maps
other ids deterministically (see its docstring).
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

_VALID_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_INVALID_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID = 64
_HASH_HEX = 8


def stream_id_for(camera_id: str) -> str:
    """The Vigil stream id that stands for a DeepStream ``camera_id``.

    Ids that are valid Vigil ids are returned unchanged; others are mapped as the module
    docstring describes. The result is always a valid id, and mapping it again returns it.

    Example:
        >>> stream_id_for("uniqueSensorID1")
        'uniqueSensorID1'
        >>> stream_id_for("0:tienda").startswith("0_tienda-")
        True
    """
    if len(camera_id) <= _MAX_ID and _VALID_ID.fullmatch(camera_id):
        return camera_id
    digest = hashlib.sha256(camera_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]
    stem = _INVALID_RUN.sub("_", camera_id).lstrip("._-")[: _MAX_ID - _HASH_HEX - 1]
    return f"{stem or 'camera'}-{digest}"


# ---------------------------------------------------------------------------- request bodies


class CameraMetadata(BaseModel):
    """``value.metadata``: what the sender knows of the stream (informational only)."""

    model_config = ConfigDict(extra="allow")

    resolution: str | None = Field(None, max_length=64, examples=["1920 x1080"])
    codec: str | None = Field(None, max_length=64, examples=["h264"])
    framerate: float | str | None = Field(
        None, description="Frames per second (DeepStream reads it as text)", examples=[30]
    )


class SensorHeaders(BaseModel):
    """``headers``: who sent the change and when (informational only)."""

    model_config = ConfigDict(extra="allow")

    source: str | None = Field(None, max_length=256, examples=["vst"])
    created_at: str | None = Field(None, max_length=64, examples=["2021-06-01T14:34:13.417Z"])


class _Camera(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camera_id: str = Field(
        min_length=1,
        max_length=1024,
        description="Sensor id, any text; mapped to a Vigil stream id (see module docs)",
        examples=["uniqueSensorID1"],
    )
    camera_name: str = Field("", max_length=256, examples=["front_door"])
    metadata: CameraMetadata | None = None


class CameraAdd(_Camera):
    """``value`` of an add request."""

    camera_url: str = Field(
        min_length=1,
        max_length=2048,
        description="file:///path, rtsp(s)://..., http(s)://... or test://pattern",
        examples=["rtsp://camera.local:554/stream1"],
    )
    change: Literal["camera_add", "camera_streaming"] = Field(
        description="'camera_add' ('camera_streaming' is an add too, as in DeepStream)"
    )


class CameraRemove(_Camera):
    """``value`` of a remove request."""

    camera_url: str = Field(
        "", max_length=2048, description="Ignored: the stream is found by camera_id"
    )
    change: Literal["camera_remove"]


class _SensorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field("sensor", max_length=64, description="'sensor' in DeepStream's examples")
    headers: SensorHeaders | None = None


class StreamAddRequest(_SensorRequest):
    """Body of ``POST /api/v1/stream/add``."""

    value: CameraAdd = Field(validation_alias=AliasChoices("value", "event"))


class StreamRemoveRequest(_SensorRequest):
    """Body of ``POST /api/v1/stream/remove``."""

    value: CameraRemove = Field(validation_alias=AliasChoices("value", "event"))
