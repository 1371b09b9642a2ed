"""Applying cloud-to-device commands: parse, validate and apply one raw message.

This module knows nothing of Kafka. A consumer hands each message's value to
:meth:`CommandProcessor.process`, which validates it against the models of
:mod:`vigil.commands.messages` (the accepted forms are described there) and applies it through
the interfaces below, or raises :class:`CommandRejected` with one of :data:`REJECTION_REASONS`;
the consumer then publishes a :func:`~vigil.commands.dead_letters.dead_letter_record` for the
rejected ones.

Any message may carry ``"command_id"``: with an :class:`AppliedCommandStore` configured, a
command with an id is applied at most once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from vigil.commands.messages import (
    COMMAND_MODELS,
    AddModelVersionCommand,
    AddStreamCommand,
    CommandKind,
    DeepStreamSensorAdd,
    DeepStreamSensorRemove,
    RemoveStreamCommand,
    SmartRecordCommand,
    SwapModelCommand,
)
from vigil.deepstream import stream_id_for
from vigil.pipeline.manager import StreamExistsError, StreamLimitError, StreamNotFoundError
from vigil.plugins.discovery import PluginError
from vigil.record.recorder import NotRecordingError
from vigil.sources.confine import FileNotAllowedError
from vigil.specs import StreamSpec

log = logging.getLogger(__name__)

RejectionReason = Literal[
    "oversize",
    "invalid_json",
    "not_an_object",
    "unknown_command",
    "invalid_fields",
    "unknown_sensor",
    "stream_exists",
    "stream_limit",
    "file_not_allowed",
    "bad_plugin",
    "stream_not_found",
    "not_recording",
    "unsupported",
    "model_rejected",
    "handler_failed",
]
REJECTION_REASONS: tuple[str, ...] = get_args(RejectionReason)
"""Every reason :class:`CommandRejected` can give, e.g. for metrics labels."""


DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024

_ADD_CHANGES = ("camera_add", "camera_streaming")
_REMOVE_CHANGE = "camera_remove"
# Where the fields of a StreamSpec came from in a DeepStream sensor body.
_SENSOR_SPEC_FIELD = {
    "id": "value.camera_id",
    "url": "value.camera_url",
    "name": "value.camera_name",
}


class CommandRejected(Exception):  # noqa: N818 (a rejection, not an error in Vigil)
    """A message that cannot be applied; it should go to the dead-letter topic.

    Attributes:
        reason: One of :data:`REJECTION_REASONS`.
        detail: What was wrong, for people (e.g. ``"sensor.id: Field required"``).
    """

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectionReason = reason
        self.detail = detail


_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class CommandOutcome:
    """What :meth:`CommandProcessor.process` did with a message.

    Attributes:
        kind: The command applied (DeepStream sensor bodies count as add/remove-stream).
        target: The stream id (recording, add, remove) or model name (swap).
        result: ``"applied"``, or ``"duplicate"`` when its ``command_id`` was applied before.
        command_id: The message's ``command_id``, if it had one.
    """

    kind: CommandKind
    target: str
    result: Literal["applied", "duplicate"]
    command_id: str | None = None


# -------------------------------------------------------------------------------- interfaces


class StreamControl(Protocol):
    """Adds and removes streams (:class:`~vigil.pipeline.manager.StreamManager` is one)."""

    async def add(self, spec: StreamSpec) -> object:
        """Add and start a stream; raises ``StreamExistsError`` if the id is taken."""
        ...

    async def remove(self, stream_id: str) -> None:
        """Stop and forget a stream; raises ``StreamNotFoundError`` if there is none."""
        ...

    def __contains__(self, stream_id: str) -> bool: ...


class RecordingHandler(Protocol):
    """Starts and stops smart recording of a stream.

    ``sensor_id`` is the Vigil stream id; times are timezone-aware UTC. ``start`` may lie in the
    past (record from the cache, as far back as it reaches) or in the future (DeepStream starts
    at once); ``end`` is ``None`` for "until stopped (or the default duration)" and never
    before ``start``. ``start_recording`` always gets a ``start``.
    """

    async def start_recording(
        self, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None: ...

    async def stop_recording(
        self, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None: ...


class ModelControl(Protocol):
    """Adds model versions and swaps the served model for another version."""

    async def swap(self, model: str, version: int | Literal["latest"], allow_replan: bool) -> None:
        """Raise to refuse (its message becomes the rejection's detail)."""
        ...

    async def add_version(
        self, model: str, path: str, sha256: str | None, swap: bool, allow_replan: bool
    ) -> None:
        """Add a version from a server-side path (and swap to it); raise to refuse."""
        ...

    #: Exceptions meaning "the model request was refused" (dead-lettered as model_rejected).
    rejections: tuple[type[Exception], ...]


class AppliedCommandStore(Protocol):
    """Remembers the ids of applied commands. Synchronous (it may do I/O): the processor calls
    it through ``asyncio.to_thread``."""

    def seen(self, command_id: str) -> bool: ...

    def mark(self, command_id: str) -> None: ...


# --------------------------------------------------------------------------------- processor


@dataclass(frozen=True)
class _Action:
    kind: CommandKind
    target: str
    command_id: str | None
    apply: Callable[[], Awaitable[None]]  # raises CommandRejected


class CommandProcessor:
    """Parses, validates and applies cloud-to-device commands, one raw message at a time.

    Args:
        streams: Adds and removes streams; also answers whether a recording's sensor exists.
        recording: Smart record; ``None``: recording commands are rejected as ``unsupported``.
        models: Model swaps; ``None``: ``swap-model`` is rejected as ``unsupported``.
        applied: Remembers applied ``command_id``s; ``None``: ids are checked but not
            remembered (every delivery is applied).
        max_message_bytes: Larger messages are rejected as ``oversize`` before parsing.

    Example::

        processor = CommandProcessor(manager, recording=None, models=None, applied=None)
        await processor.process(b'{"command": "remove-stream", "id": "cam-1"}')
        # CommandOutcome(kind='remove-stream', target='cam-1', result='applied', command_id=None)
    """

    def __init__(
        self,
        streams: StreamControl,
        *,
        recording: RecordingHandler | None,
        models: ModelControl | None,
        applied: AppliedCommandStore | None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be >= 1, got {max_message_bytes}")
        self.streams = streams
        self.recording = recording
        self.models = models
        self.applied = applied
        self.max_message_bytes = max_message_bytes
        self._id_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def process(self, raw: bytes) -> CommandOutcome:
        """Apply one message.

        Returns:
            What was applied, or that the command's id was applied before.

        Raises:
            CommandRejected: The message is invalid, or applying it failed; nothing was
                marked as applied.
            Exception: Whatever the :class:`AppliedCommandStore` raises (the message may or may
                not have been applied: don't commit its offset).
        """
        action = self._parse(raw)
        if action.command_id is None or self.applied is None:
            await action.apply()
            return self._done(action, "applied")
        async with self._exclusive(action.command_id):
            if await asyncio.to_thread(self.applied.seen, action.command_id):
                return self._done(action, "duplicate")
            await action.apply()
            await asyncio.to_thread(self.applied.mark, action.command_id)
        return self._done(action, "applied")

    def _done(self, action: _Action, result: Literal["applied", "duplicate"]) -> CommandOutcome:
        log.info("command %s %s: %s (id %s)", action.kind, action.target, result, action.command_id)
        return CommandOutcome(action.kind, action.target, result, action.command_id)

    @asynccontextmanager
    async def _exclusive(self, command_id: str) -> AsyncIterator[None]:
        # Two deliveries of one id at once must not both pass seen() before either is marked.
        lock, users = self._id_locks.get(command_id, (asyncio.Lock(), 0))
        self._id_locks[command_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._id_locks[command_id]
            if users == 1:
                del self._id_locks[command_id]
            else:
                self._id_locks[command_id] = (lock, users - 1)

    # --- parsing

    def _parse(self, raw: bytes) -> _Action:
        body = _decode(raw, self.max_message_bytes)
        command = body.get("command")
        if "command" not in body:
            if body.get("key") == "sensor":
                return self._sensor_action(body)
            if "key" in body:
                raise CommandRejected(
                    "unknown_command",
                    f"no 'command', and key {_clip(repr(body['key']))} is not 'sensor'",
                )
            if "sensor" not in body:
                raise CommandRejected("invalid_fields", "command: Field required")
            command = "start-recording"  # DeepStream's default
        if not isinstance(command, str):
            raise CommandRejected(
                "invalid_fields",
                f"command: Input should be a valid string, got {_clip(repr(command))}",
            )
        model = COMMAND_MODELS.get(command)
        if model is None:
            known = ", ".join(repr(k) for k in COMMAND_MODELS)
            raise CommandRejected(
                "unknown_command", f"unknown command {_clip(command)!r}; known: {known}"
            )
        parsed = _validate(model, body)
        if isinstance(parsed, SmartRecordCommand):
            return self._recording_action(parsed)
        if isinstance(parsed, AddStreamCommand):
            return self._add_action(parsed.stream, parsed.command_id)
        if isinstance(parsed, RemoveStreamCommand):
            return self._remove_action(parsed.id, parsed.command_id)
        if isinstance(parsed, AddModelVersionCommand):
            return self._add_version_action(parsed)
        assert isinstance(parsed, SwapModelCommand)
        return self._swap_action(parsed)

    def _sensor_action(self, body: dict[str, Any]) -> _Action:
        value = body.get("value", body.get("event"))
        change = value.get("change") if isinstance(value, dict) else None
        if isinstance(change, str) and change not in (*_ADD_CHANGES, _REMOVE_CHANGE):
            raise CommandRejected(
                "unknown_command",
                f"value.change {_clip(change)!r} is not one of "
                f"{', '.join(repr(c) for c in (*_ADD_CHANGES, _REMOVE_CHANGE))}",
            )
        if change == _REMOVE_CHANGE:
            removal = _validate(DeepStreamSensorRemove, body)
            return self._remove_action(stream_id_for(removal.value.camera_id), removal.command_id)
        # Adds, and bodies without a usable change: the add model names what is missing.
        addition = _validate(DeepStreamSensorAdd, body)
        camera = addition.value
        try:
            spec = StreamSpec(
                id=stream_id_for(camera.camera_id), url=camera.camera_url, name=camera.camera_name
            )
        except ValidationError as e:
            raise CommandRejected(
                "invalid_fields", _describe(e.errors(), _SENSOR_SPEC_FIELD)
            ) from None
        return self._add_action(spec, addition.command_id)

    # --- actions

    def _recording_action(self, cmd: SmartRecordCommand) -> _Action:
        stream_id = stream_id_for(cmd.sensor.id)

        async def apply() -> None:
            # a command naming a camera that does not exist is wrong whatever is configured
            if stream_id not in self.streams:
                raise CommandRejected("unknown_sensor", _no_stream(stream_id, cmd.sensor.id))
            recording = self.recording
            if recording is None:
                raise CommandRejected("unsupported", "smart recording is not configured")
            if cmd.command == "start-recording":
                call = recording.start_recording(stream_id, cmd.start, cmd.end)
            else:
                call = recording.stop_recording(stream_id, cmd.start, cmd.end)
            await _call(
                call, {StreamNotFoundError: "unknown_sensor", NotRecordingError: "not_recording"}
            )

        return _Action(cmd.command, stream_id, cmd.command_id, apply)

    def _add_action(self, spec: StreamSpec, command_id: str | None) -> _Action:
        async def apply() -> None:
            await _call(
                self.streams.add(spec),
                {
                    StreamExistsError: "stream_exists",
                    StreamLimitError: "stream_limit",
                    FileNotAllowedError: "file_not_allowed",
                    PluginError: "bad_plugin",
                },
            )

        return _Action("add-stream", spec.id, command_id, apply)

    def _remove_action(self, stream_id: str, command_id: str | None) -> _Action:
        async def apply() -> None:
            await _call(self.streams.remove(stream_id), {StreamNotFoundError: "stream_not_found"})

        return _Action("remove-stream", stream_id, command_id, apply)

    def _swap_action(self, cmd: SwapModelCommand) -> _Action:
        async def apply() -> None:
            if self.models is None:
                raise CommandRejected("unsupported", "model lifecycle is not configured")
            known = dict.fromkeys(self.models.rejections, "model_rejected")
            await _call(self.models.swap(cmd.model, cmd.version, cmd.allow_replan), known)

        return _Action("swap-model", cmd.model, cmd.command_id, apply)

    def _add_version_action(self, cmd: AddModelVersionCommand) -> _Action:
        async def apply() -> None:
            if self.models is None:
                raise CommandRejected("unsupported", "model lifecycle is not configured")
            known = dict.fromkeys(self.models.rejections, "model_rejected")
            call = self.models.add_version(
                cmd.model, cmd.path, cmd.sha256, cmd.swap, cmd.allow_replan
            )
            await _call(call, known)

        return _Action("add-model-version", cmd.model, cmd.command_id, apply)


async def _call(
    call: Awaitable[object], known: Mapping[type[Exception], RejectionReason] | None = None
) -> None:
    """Await a handler: the errors in ``known`` become their reason, any other handler_failed."""
    try:
        await call
    except CommandRejected:
        raise
    except Exception as e:
        for error, reason in (known or {}).items():
            if isinstance(e, error):
                raise CommandRejected(reason, str(e)) from None
        log.warning("command handler failed: %r", e)
        raise CommandRejected("handler_failed", str(e) or type(e).__name__) from e


def _decode(raw: bytes, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise CommandRejected("oversize", f"message is {len(raw)} bytes; the limit is {max_bytes}")
    if not raw.strip():
        raise CommandRejected("invalid_json", "empty message")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CommandRejected("invalid_json", f"not UTF-8 (byte {e.start})") from None
    try:
        body = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as e:
        raise CommandRejected(
            "invalid_json", f"line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    except ValueError as e:  # NaN / Infinity
        raise CommandRejected("invalid_json", str(e)) from None
    except RecursionError:
        raise CommandRejected("invalid_json", "nested too deeply") from None
    if not isinstance(body, dict):
        raise CommandRejected("not_an_object", f"expected a JSON object, got {_json_type(body)}")
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _validate(model: type[_M], body: Mapping[str, Any]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise CommandRejected("invalid_fields", _describe(e.errors())) from None


def _describe(errors: Sequence[Any], fields: Mapping[str, str] | None = None) -> str:
    """Pydantic errors as ``path: message`` pairs joined by ``"; "``."""
    parts = []
    for err in errors:
        name = ".".join(str(p) for p in err["loc"]) or "message"
        if fields:
            name = fields.get(name, name)
        cause = err.get("ctx", {}).get("error")
        msg = str(cause) if err["type"] == "value_error" and cause is not None else err["msg"]
        if err["type"] == "value_error" and not err["loc"] and ": " in msg:
            parts.append(msg)  # a model validator's message names its own field
            continue
        if err["type"] in ("literal_error", "string_type", "int_type", "bool_type"):
            msg = f"{msg}, got {_clip(repr(err['input']))}"
        parts.append(f"{name}: {msg}")
    return "; ".join(parts)


def _no_stream(stream_id: str, sensor_id: str) -> str:
    if stream_id == sensor_id:
        return f"no stream {stream_id!r}"
    return f"no stream {stream_id!r} (mapped from sensor.id {_clip(sensor_id)!r})"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
