"""Cloud-to-device command messages: the forms Vigil accepts, as pydantic models.

:class:`~vigil.commands.processor.CommandProcessor` validates each message against these
models and applies it.

Accepted messages (UTF-8 JSON objects, at most ``max_message_bytes``):

DeepStream smart record (``deepstream-test5``'s ``[message-consumer]``, parsed by
``nvds_c2d_parse_cloud_message`` in ``apps-common/src/deepstream_c2d_msg_util.c``, and by
Service Maker's ``Cloud2DeviceReceiver::handleMessage``)::

    {"command": "start-recording", "start": "2020-05-18T20:02:00.051Z",
     "end": "2020-05-18T20:02:02.851Z", "sensor": {"id": "cam-1"}}
    {"command": "stop-recording", "sensor": {"id": "cam-1"}}

Read as DeepStream reads it:

* ``command`` may be left out: DeepStream then takes the message for ``start-recording``.
  Vigil does so when the object has a ``sensor`` member (every message DeepStream accepts has).
* ``sensor.id`` is required: a non-empty string (surrounding whitespace is dropped, as test5
  does). It names a stream, mapped like a DeepStream ``camera_id``
  (:func:`~vigil.deepstream.stream_id_for`); an unknown one is rejected.
* ``start`` is required for ``start-recording``; ``end`` is optional (left out: record until a
  ``stop-recording``, or the recorder's default duration). Both are UTC times of the form
  ``YYYY-MM-DDTHH:MM:SS`` with optional fraction and zone (``Z``, ``+HH:MM``). A start in the
  past reaches back into the recorder's cache; DeepStream starts a future one now. An ``end``
  before ``start`` is taken as no end, as DeepStream clamps the duration to zero.
* Unknown members are ignored (DeepStream reads only the ones above).

Differences, all on the strict side: a zone offset is honoured (DeepStream ignores it and
reads the time as UTC), and a malformed ``start``/``end`` on ``stop-recording`` is refused
(DeepStream does not read them there; Vigil passes them to the recorder).

Stream add/remove, in Vigil's form (``stream`` is the body of ``POST /api/v1/streams``)::

    {"command": "add-stream", "stream": {"id": "cam-1", "url": "rtsp://host/stream"}}
    {"command": "remove-stream", "id": "cam-1"}

or in DeepStream's (the body of ``POST /api/v1/stream/add`` or ``/remove``, recognised by
``"key": "sensor"``; ``value.change`` says which)::

    {"key": "sensor", "value": {"camera_id": "cam-1", "camera_url": "rtsp://host/stream",
     "change": "camera_add"}, "headers": {...}}

Model swap, and adding a version from a path on the server (optionally swapping to it)::

    {"command": "swap-model", "model": "detector", "version": 3, "allow_replan": false}
    {"command": "add-model-version", "model": "detector", "path": "/models/new.onnx",
     "sha256": "...", "swap": true}

Any of them may carry ``"command_id"`` (1-128 characters): with an
:class:`~vigil.commands.processor.AppliedCommandStore` configured, a command with an id is
applied at most once.
Vigil's own forms and DeepStream's sensor form refuse unknown members.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    WithJsonSchema,
    model_validator,
)

from vigil.deepstream import StreamAddRequest, StreamRemoveRequest
from vigil.specs import StreamId, StreamSpec

log = logging.getLogger(__name__)

CommandKind = Literal[
    "start-recording",
    "stop-recording",
    "add-stream",
    "remove-stream",
    "swap-model",
    "add-model-version",
]
COMMAND_KINDS: tuple[str, ...] = get_args(CommandKind)


def _utc_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be a string like 2020-05-18T20:02:00.051Z")
    if not _TIMESTAMP.fullmatch(value):
        raise ValueError(f"must be a UTC time like 2020-05-18T20:02:00.051Z, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise ValueError(f"not a valid time: {e}") from None
    # DeepStream reads every time as UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?", re.ASCII
)

UtcTime = Annotated[
    datetime,
    BeforeValidator(_utc_time),
    WithJsonSchema({"type": "string", "format": "date-time"}),
    Field(examples=["2020-05-18T20:02:00.051Z"]),
]

CommandId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="Makes the command idempotent: one with an id already applied is skipped",
        examples=["7f3c2a9e-2d4b-4c1e-9a57-0c2f1e8b6d11"],
    ),
]


def _model_version(value: object) -> int | Literal["latest"]:
    if value == "latest":
        return "latest"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"must be an integer >= 1 or 'latest', got {value!r}")


ModelVersion = Annotated[
    int | Literal["latest"],
    PlainValidator(_model_version),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, {"const": "latest"}]}),
]


class SensorRef(BaseModel):
    """``sensor`` of a smart-record command (DeepStream reads only ``id``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(
        min_length=1,
        max_length=1024,
        description="The sensor (stream) id; mapped like a DeepStream camera_id",
        examples=["cam-1"],
    )


class SmartRecordCommand(BaseModel):
    """DeepStream's smart-record cloud-to-device message (unknown members ignored, as there)."""

    model_config = ConfigDict(extra="ignore")

    command: Literal["start-recording", "stop-recording"] = Field(
        "start-recording", description="Left out: start-recording, as in DeepStream"
    )
    start: UtcTime | None = Field(
        None, description="Required to start: when the recording begins (past: from the cache)"
    )
    end: UtcTime | None = Field(
        None, description="When it ends; left out: at stop-recording (or the default duration)"
    )
    sensor: SensorRef
    command_id: CommandId | None = None

    @model_validator(mode="after")
    def _check_times(self) -> SmartRecordCommand:
        if self.command == "start-recording" and self.start is None:
            raise ValueError("start: Field required (start-recording needs it)")
        if self.start is not None and self.end is not None and self.end < self.start:
            # DeepStream clamps the negative duration to 0, which records until stopped.
            log.warning("smart record end %s is before start %s: ignored", self.end, self.start)
            self.end = None
        return self


class AddStreamCommand(BaseModel):
    """Add a stream (``stream`` is the body of ``POST /api/v1/streams``)."""

    model_config = ConfigDict(extra="forbid")

    command: Literal["add-stream"]
    stream: StreamSpec
    command_id: CommandId | None = None


class RemoveStreamCommand(BaseModel):
    """Remove a stream by its Vigil id."""

    model_config = ConfigDict(extra="forbid")

    command: Literal["remove-stream"]
    id: StreamId
    command_id: CommandId | None = None


class SwapModelCommand(BaseModel):
    """Replace the model the pipeline serves with another version."""

    model_config = ConfigDict(extra="forbid")

    command: Literal["swap-model"]
    model: str = Field(
        min_length=1, max_length=256, description="Model name in the repository", examples=["ssd"]
    )
    version: ModelVersion = Field(description="Version number (>= 1) or 'latest'")
    allow_replan: StrictBool = Field(
        False, description="Allow a swap that changes the pipeline's input plan"
    )
    command_id: CommandId | None = None


class AddModelVersionCommand(BaseModel):
    """Add a model version from a file or directory on the server; optionally swap to it."""

    model_config = ConfigDict(extra="forbid")

    command: Literal["add-model-version"]
    model: str = Field(min_length=1, max_length=256, description="Model name in the repository")
    path: str = Field(
        min_length=1, max_length=4096, description="Absolute path of the model file or directory"
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="Expected SHA-256 of the model file"
    )
    swap: StrictBool = Field(False, description="Swap to the new version once it is added")
    allow_replan: StrictBool = Field(False, description="With swap: allow re-planning")
    command_id: CommandId | None = None


class DeepStreamSensorAdd(StreamAddRequest):
    """DeepStream's ``stream/add`` body, received as a command."""

    command_id: CommandId | None = None


class DeepStreamSensorRemove(StreamRemoveRequest):
    """DeepStream's ``stream/remove`` body, received as a command."""

    command_id: CommandId | None = None


COMMAND_MODELS: dict[str, type[BaseModel]] = {
    "start-recording": SmartRecordCommand,
    "stop-recording": SmartRecordCommand,
    "add-stream": AddStreamCommand,
    "remove-stream": RemoveStreamCommand,
    "swap-model": SwapModelCommand,
    "add-model-version": AddModelVersionCommand,
}
"""The model of each ``command`` value (both recording commands share one)."""
