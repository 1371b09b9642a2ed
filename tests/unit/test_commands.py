"""Cloud-to-device commands: every accepted form, every rejection reason, idempotency, dead letters.

The smart-record messages are the ones DeepStream's ``deepstream_c2d_msg_util.c`` documents; the
sensor bodies in ``tests/data/deepstream`` are the deepstream-server-app README's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import pytest

from vigil.commands.dead_letters import DEAD_LETTER_KEEP_BYTES, dead_letter_record
from vigil.commands.processor import (
    REJECTION_REASONS,
    CommandOutcome,
    CommandProcessor,
    CommandRejected,
)
from vigil.deepstream import stream_id_for
from vigil.pipeline.manager import StreamExistsError, StreamLimitError, StreamNotFoundError
from vigil.plugins.discovery import PluginError
from vigil.record.recorder import NotRecordingError
from vigil.sources.confine import FileNotAllowedError
from vigil.sources.errors import SourceError
from vigil.specs import StreamSpec

DATA = Path(__file__).resolve().parents[1] / "data" / "deepstream"

# DeepStream's documented smart-record message (deepstream_c2d_msg_util.c).
DS_START = {
    "command": "start-recording",
    "start": "2020-05-18T20:02:00.051Z",
    "end": "2020-05-18T20:02:02.851Z",
    "sensor": {"id": "cam-1"},
}
DS_STOP = {"command": "stop-recording", "sensor": {"id": "cam-1"}}


# ------------------------------------------------------------------------------------- fakes


class FakeStreams:
    """StreamControl over a set of ids, raising as StreamManager does."""

    def __init__(self, *ids: str, fail_add: Exception | None = None) -> None:
        self.specs: dict[str, StreamSpec] = {i: StreamSpec(id=i, url="test://pattern") for i in ids}
        self.fail_add = fail_add
        self.added: list[StreamSpec] = []
        self.removed: list[str] = []

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self.specs

    async def add(self, spec: StreamSpec) -> object:
        if self.fail_add is not None:
            raise self.fail_add
        if spec.id in self.specs:
            raise StreamExistsError(f"stream {spec.id!r} already exists")
        self.specs[spec.id] = spec
        self.added.append(spec)
        return spec

    async def remove(self, stream_id: str) -> None:
        if stream_id not in self.specs:
            raise StreamNotFoundError(f"no stream with id {stream_id!r}")
        del self.specs[stream_id]
        self.removed.append(stream_id)


class FakeRecorder:
    """RecordingHandler that records its calls; can fail or be slow."""

    def __init__(self, fail: Exception | None = None, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, str, datetime | None, datetime | None]] = []
        self.fail = fail
        self.delay_s = delay_s

    async def start_recording(
        self, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None:
        await self._call("start", sensor_id, start, end)

    async def stop_recording(
        self, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None:
        await self._call("stop", sensor_id, start, end)

    async def _call(
        self, what: str, sensor_id: str, start: datetime | None, end: datetime | None
    ) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        self.calls.append((what, sensor_id, start, end))


class ModelRefusedError(Exception):
    """What FakeModels raises for a refused model request."""


class FakeModels:
    """ModelControl that records swaps and added versions; can fail."""

    rejections: tuple[type[Exception], ...] = (ModelRefusedError,)

    def __init__(self, fail: Exception | None = None) -> None:
        self.swaps: list[tuple[str, int | Literal["latest"], bool]] = []
        self.added: list[tuple[str, str, str | None, bool, bool]] = []
        self.fail = fail

    async def swap(self, model: str, version: int | Literal["latest"], allow_replan: bool) -> None:
        if self.fail is not None:
            raise self.fail
        self.swaps.append((model, version, allow_replan))

    async def add_version(
        self, model: str, path: str, sha256: str | None, swap: bool, allow_replan: bool
    ) -> None:
        if self.fail is not None:
            raise self.fail
        self.added.append((model, path, sha256, swap, allow_replan))


class FakeStore:
    """AppliedCommandStore in memory; notes the threads it is called on."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.marks: list[str] = []
        self.threads: set[int] = set()

    def seen(self, command_id: str) -> bool:
        self.threads.add(threading.get_ident())
        return command_id in self.ids

    def mark(self, command_id: str) -> None:
        self.threads.add(threading.get_ident())
        self.ids.add(command_id)
        self.marks.append(command_id)


def processor(
    streams: FakeStreams | None = None,
    *,
    recording: FakeRecorder | None = None,
    models: FakeModels | None = None,
    applied: FakeStore | None = None,
    max_message_bytes: int = 64 * 1024,
) -> CommandProcessor:
    return CommandProcessor(
        streams if streams is not None else FakeStreams("cam-1"),
        recording=recording,
        models=models,
        applied=applied,
        max_message_bytes=max_message_bytes,
    )


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- smart record


async def test_start_recording_when_deepstream_documented_message() -> None:
    recorder = FakeRecorder()

    outcome = await processor(recording=recorder).process(encode(DS_START))

    assert outcome == CommandOutcome("start-recording", "cam-1", "applied")
    assert recorder.calls == [
        ("start", "cam-1", utc("2020-05-18T20:02:00.051"), utc("2020-05-18T20:02:02.851"))
    ]


async def test_stop_recording_when_deepstream_stop_message() -> None:
    recorder = FakeRecorder()

    outcome = await processor(recording=recorder).process(encode(DS_STOP))

    assert outcome == CommandOutcome("stop-recording", "cam-1", "applied")
    assert recorder.calls == [("stop", "cam-1", None, None)]


async def test_start_recording_when_command_left_out_as_deepstream_defaults() -> None:
    recorder = FakeRecorder()
    message = {k: v for k, v in DS_START.items() if k != "command"}

    outcome = await processor(recording=recorder).process(encode(message))

    assert outcome.kind == "start-recording"
    assert recorder.calls[0][0] == "start"


async def test_start_recording_when_end_left_out_records_until_stopped() -> None:
    recorder = FakeRecorder()
    message = {k: v for k, v in DS_START.items() if k != "end"}

    await processor(recording=recorder).process(encode(message))

    assert recorder.calls == [("start", "cam-1", utc("2020-05-18T20:02:00.051"), None)]


async def test_start_recording_when_end_before_start_takes_it_as_no_end() -> None:
    recorder = FakeRecorder()
    message = {**DS_START, "end": "2020-05-18T20:01:00Z"}

    await processor(recording=recorder).process(encode(message))

    assert recorder.calls[0][3] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-05-18T20:02:00.051Z", utc("2020-05-18T20:02:00.051")),
        ("2020-05-18T20:02:00Z", utc("2020-05-18T20:02:00")),
        ("2020-05-18T20:02:00", utc("2020-05-18T20:02:00")),  # no zone: UTC, as DeepStream
        ("2020-05-18T22:02:00.5+02:00", utc("2020-05-18T20:02:00.5")),
        ("2020-05-18T22:02:00+0200", utc("2020-05-18T20:02:00")),
    ],
)
async def test_start_recording_when_time_forms_are_read_as_utc(
    text: str, expected: datetime
) -> None:
    recorder = FakeRecorder()

    await processor(recording=recorder).process(encode({**DS_STOP, "start": text}))

    start = recorder.calls[0][2]
    assert start == expected
    assert start is not None
    assert start.utcoffset() == timedelta(0)


async def test_smart_record_when_unknown_members_ignores_them_as_deepstream() -> None:
    recorder = FakeRecorder()
    message = {**DS_START, "sensor": {"id": "cam-1", "type": "Camera"}, "version": "4.0"}

    outcome = await processor(recording=recorder).process(encode(message))

    assert outcome.result == "applied"


async def test_smart_record_when_sensor_id_padded_or_deepstream_style_maps_it() -> None:
    camera = "0:tienda"
    streams = FakeStreams("cam-1", stream_id_for(camera))
    recorder = FakeRecorder()
    proc = processor(streams, recording=recorder)

    await proc.process(encode({**DS_STOP, "sensor": {"id": "  cam-1 "}}))
    outcome = await proc.process(encode({**DS_STOP, "sensor": {"id": camera}}))

    assert [c[1] for c in recorder.calls] == ["cam-1", stream_id_for(camera)]
    assert outcome.target == stream_id_for(camera)


# ----------------------------------------------------------------------------------- streams


async def test_add_stream_when_vigil_form() -> None:
    streams = FakeStreams()
    stream = {"id": "cam-2", "url": "rtsp://camera.local/s1", "inference_interval": 2}

    outcome = await processor(streams).process(encode({"command": "add-stream", "stream": stream}))

    assert outcome == CommandOutcome("add-stream", "cam-2", "applied")
    assert streams.added == [StreamSpec.model_validate(stream)]


async def test_remove_stream_when_vigil_form() -> None:
    streams = FakeStreams("cam-1")

    outcome = await processor(streams).process(b'{"command": "remove-stream", "id": "cam-1"}')

    assert outcome == CommandOutcome("remove-stream", "cam-1", "applied")
    assert streams.removed == ["cam-1"]


@pytest.mark.parametrize("name", ["add_file.json", "add_rtsp.json"])
async def test_add_stream_when_deepstream_sensor_body(name: str) -> None:
    raw = (DATA / name).read_bytes()
    camera = json.loads(raw)["value"]
    streams = FakeStreams()

    outcome = await processor(streams).process(raw)

    assert outcome == CommandOutcome("add-stream", camera["camera_id"], "applied")
    assert streams.added == [
        StreamSpec(id=camera["camera_id"], url=camera["camera_url"], name=camera["camera_name"])
    ]


async def test_remove_stream_when_deepstream_sensor_body() -> None:
    streams = FakeStreams("uniqueSensorID1")

    outcome = await processor(streams).process((DATA / "remove.json").read_bytes())

    assert outcome == CommandOutcome("remove-stream", "uniqueSensorID1", "applied")
    assert streams.removed == ["uniqueSensorID1"]


async def test_add_stream_when_deepstream_body_uses_event_and_camera_streaming() -> None:
    streams = FakeStreams()
    body = {
        "key": "sensor",
        "event": {
            "camera_id": "0:tienda",
            "camera_url": "test://pattern",
            "change": "camera_streaming",
        },
    }

    outcome = await processor(streams).process(encode(body))

    assert outcome.target == stream_id_for("0:tienda")
    assert streams.added[0].id == stream_id_for("0:tienda")


# ------------------------------------------------------------------------------------ models


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"model": "ssd", "version": 3}, ("ssd", 3, False)),
        ({"model": "ssd", "version": "latest", "allow_replan": True}, ("ssd", "latest", True)),
    ],
)
async def test_swap_model(message: dict[str, Any], expected: tuple[Any, ...]) -> None:
    models = FakeModels()

    outcome = await processor(models=models).process(encode({"command": "swap-model", **message}))

    assert outcome == CommandOutcome("swap-model", "ssd", "applied")
    assert models.swaps == [expected]


async def test_add_model_version_passes_path_checksum_and_swap() -> None:
    models = FakeModels()
    digest = "ab" * 32
    body = {"command": "add-model-version", "model": "ssd", "path": "/srv/new.onnx",
            "sha256": digest, "swap": True, "command_id": "v7"}  # fmt: skip

    outcome = await processor(models=models).process(encode(body))

    assert outcome == CommandOutcome("add-model-version", "ssd", "applied", "v7")
    assert models.added == [("ssd", "/srv/new.onnx", digest, True, False)]


# -------------------------------------------------------------------------------- rejections

_ADD_FILE = json.loads((DATA / "add_file.json").read_bytes())

# (case id, message, processor setup, reason, words the detail must contain)
REJECTIONS: list[tuple[str, bytes, dict[str, Any], str, str]] = [
    ("oversize", b"{" + b" " * 70_000 + b"}", {}, "oversize", "70002 bytes"),
    ("oversize-not-json", b"\xff" * 70_000, {}, "oversize", "limit is 65536"),
    ("bad-json", b'{"command": "stop-recording",', {}, "invalid_json", "line 1 column 30"),
    ("nan", b'{"command": NaN}', {}, "invalid_json", "NaN"),
    ("not-utf8", b'{"command": "\xff"}', {}, "invalid_json", "UTF-8"),
    ("empty", b"", {}, "invalid_json", "empty"),
    ("too-deep", b"[" * 60_000, {}, "invalid_json", "nested"),
    ("json-array", b"[1, 2]", {}, "not_an_object", "array"),
    ("json-string", b'"start-recording"', {}, "not_an_object", "string"),
    ("json-null", b"null", {}, "not_an_object", "null"),
    ("unknown-command", b'{"command": "explode"}', {}, "unknown_command", "'explode'"),
    ("unknown-key", b'{"key": "camera"}', {}, "unknown_command", "'camera'"),
    (
        "unknown-change",
        encode({**_ADD_FILE, "value": {**_ADD_FILE["value"], "change": "camera_move"}}),
        {},
        "unknown_command",
        "camera_move",
    ),
    ("no-command", b'{"id": "cam-1"}', {}, "invalid_fields", "command: Field required"),
    ("command-number", b'{"command": 7}', {}, "invalid_fields", "command: "),
    ("no-sensor-id", b'{"command": "stop-recording", "sensor": {}}', {}, "invalid_fields",
     "sensor.id: Field required"),
    ("empty-sensor-id", b'{"command": "stop-recording", "sensor": {"id": "  "}}', {},
     "invalid_fields", "sensor.id: "),
    ("sensor-id-number", b'{"command": "stop-recording", "sensor": {"id": 5}}', {},
     "invalid_fields", "sensor.id: Input should be a valid string"),
    ("start-missing", b'{"command": "start-recording", "sensor": {"id": "cam-1"}}', {},
     "invalid_fields", "start: Field required"),
    ("start-date-only", encode({**DS_START, "start": "2020-05-18"}), {}, "invalid_fields",
     "start: "),
    ("start-number", encode({**DS_START, "start": 1589832120}), {}, "invalid_fields", "start: "),
    ("version-zero", b'{"command": "swap-model", "model": "m", "version": 0}', {},
     "invalid_fields", "version: "),
    ("version-text", b'{"command": "swap-model", "model": "m", "version": "3"}', {},
     "invalid_fields", "version: "),
    ("replan-text", b'{"command": "swap-model", "model": "m", "version": 1, "allow_replan": "yes"}',
     {}, "invalid_fields", "allow_replan: "),
    ("add-extra", b'{"command": "add-stream", "stream": {"id": "a", "url": "test://pattern"}, '
     b'"x": 1}', {}, "invalid_fields", "x: Extra inputs are not permitted"),
    ("add-bad-url", b'{"command": "add-stream", "stream": {"id": "a", "url": "ftp://h/p"}}', {},
     "invalid_fields", "stream.url: unsupported url scheme 'ftp'"),
    ("remove-bad-id", b'{"command": "remove-stream", "id": "a b"}', {}, "invalid_fields", "id: "),
    (
        "ds-bad-url",
        encode({**_ADD_FILE, "value": {**_ADD_FILE["value"], "camera_url": "ftp://h/p"}}),
        {},
        "invalid_fields",
        "value.camera_url: ",
    ),
    ("ds-no-value", b'{"key": "sensor"}', {}, "invalid_fields", "value: Field required"),
    ("command-id-empty", encode({**DS_STOP, "command_id": ""}), {}, "invalid_fields",
     "command_id: "),
    ("command-id-long", encode({**DS_STOP, "command_id": "x" * 129}), {}, "invalid_fields",
     "command_id: "),
    ("unknown-sensor", encode({**DS_STOP, "sensor": {"id": "cam-9"}}), {}, "unknown_sensor",
     "'cam-9'"),
    ("stream-exists", b'{"command": "add-stream", "stream": {"id": "cam-1", "url": "test://pattern"}}',
     {}, "stream_exists", "cam-1"),
    ("stream-not-found", b'{"command": "remove-stream", "id": "cam-9"}', {}, "stream_not_found",
     "cam-9"),
    ("ds-remove-unknown", (DATA / "remove.json").read_bytes(), {}, "stream_not_found",
     "uniqueSensorID1"),
    ("no-recorder", encode(DS_START), {"recording": None}, "unsupported", "recording"),
    ("no-models", b'{"command": "swap-model", "model": "m", "version": 1}', {"models": None},
     "unsupported", "model"),
    ("recorder-raises", encode(DS_START), {"recording": FakeRecorder(OSError("disk full"))},
     "handler_failed", "disk full"),
    ("not-recording", encode(DS_STOP),
     {"recording": FakeRecorder(NotRecordingError("stream 'cam-1' is not recording"))},
     "not_recording", "is not recording"),
    ("models-raise", b'{"command": "swap-model", "model": "m", "version": 1}',
     {"models": FakeModels(RuntimeError("model m has no version 1"))}, "handler_failed",
     "no version 1"),
    ("model-refused", b'{"command": "swap-model", "model": "m", "version": 2}',
     {"models": FakeModels(ModelRefusedError("m version 2 is not compatible: input x"))},
     "model_rejected", "not compatible"),
    ("version-refused",
     encode({"command": "add-model-version", "model": "m", "path": "/srv/m.onnx"}),
     {"models": FakeModels(ModelRefusedError("sha256 mismatch"))}, "model_rejected", "sha256"),
    ("version-bad-sha", encode({"command": "add-model-version", "model": "m", "path": "/p",
                                "sha256": "xyz"}), {}, "invalid_fields", "sha256"),
    ("version-no-path", encode({"command": "add-model-version", "model": "m"}), {},
     "invalid_fields", "path"),
    ("stream-limit", encode({"command": "add-stream", "stream": {"id": "a", "url": "test://pattern"}}),
     {"streams": FakeStreams(fail_add=StreamLimitError("stream limit reached: 2 streams run"))},
     "stream_limit", "limit reached"),
    ("file-confined",
     encode({"command": "add-stream", "stream": {"id": "a", "url": "file:///etc/shadow"}}),
     {"streams": FakeStreams(fail_add=FileNotAllowedError("url: file streams from clients"))},
     "file_not_allowed", "file streams from clients"),
    ("bad-plugin",
     encode({"command": "add-stream", "stream": {"id": "a", "url": "test://pattern",
                                                 "stages": [{"plugin": "nope"}]}}),
     {"streams": FakeStreams(fail_add=PluginError("stages[0]: unknown stage plugin 'nope'"))},
     "bad_plugin", "unknown stage plugin 'nope'"),
    ("source-fails", encode({"command": "add-stream", "stream": {"id": "a", "url": "rtsp://h/p"}}),
     {"streams": FakeStreams(fail_add=SourceError("rtsp://h/p", "connection refused"))},
     "handler_failed", "connection refused"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "setup", "reason", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTIONS],
)
async def test_process_rejects_when_message_is_bad(
    raw: bytes, setup: dict[str, Any], reason: str, words: str
) -> None:
    setup = {"recording": FakeRecorder(), "models": FakeModels(), **setup}

    with pytest.raises(CommandRejected) as caught:
        await processor(**setup).process(raw)

    assert caught.value.reason == reason
    assert words in caught.value.detail


def test_rejection_cases_cover_every_reason() -> None:
    assert sorted({case[3] for case in REJECTIONS}) == sorted(REJECTION_REASONS)
    assert len(set(REJECTION_REASONS)) == len(REJECTION_REASONS)


async def test_process_checks_size_before_parsing() -> None:
    proc = processor(max_message_bytes=16)

    with pytest.raises(CommandRejected) as caught:
        await proc.process(b"not json at all!!")
    assert caught.value.reason == "oversize"

    with pytest.raises(CommandRejected) as caught:
        await proc.process(b"not json at all!")  # exactly at the limit: parsed
    assert caught.value.reason == "invalid_json"


async def test_process_when_handler_raises_keeps_the_cause() -> None:
    error = OSError("disk full")

    with pytest.raises(CommandRejected) as caught:
        await processor(recording=FakeRecorder(error)).process(encode(DS_START))

    assert caught.value.__cause__ is error


# ------------------------------------------------------------------------------- idempotency


async def test_command_id_when_delivered_twice_applies_once() -> None:
    streams, store = FakeStreams(), FakeStore()
    proc = processor(streams, applied=store)
    raw = encode({**json.loads((DATA / "add_file.json").read_bytes()), "command_id": "c-1"})

    first = await proc.process(raw)
    second = await proc.process(raw)

    assert first == CommandOutcome("add-stream", "uniqueSensorID1", "applied", "c-1")
    assert second == CommandOutcome("add-stream", "uniqueSensorID1", "duplicate", "c-1")
    assert len(streams.added) == 1
    assert store.marks == ["c-1"]
    assert threading.get_ident() not in store.threads  # called through asyncio.to_thread


async def test_command_id_when_handler_fails_is_not_marked_and_retry_applies() -> None:
    recorder, store = FakeRecorder(OSError("disk full")), FakeStore()
    proc = processor(recording=recorder, applied=store)
    raw = encode({**DS_START, "command_id": "c-2"})

    with pytest.raises(CommandRejected):
        await proc.process(raw)
    assert store.marks == []

    recorder.fail = None
    outcome = await proc.process(raw)

    assert outcome.result == "applied"
    assert store.marks == ["c-2"]
    assert len(recorder.calls) == 1


async def test_command_id_when_rejected_before_applying_is_not_marked() -> None:
    store = FakeStore()
    proc = processor(applied=store)

    with pytest.raises(CommandRejected):
        await proc.process(encode({**DS_STOP, "sensor": {"id": "cam-9"}, "command_id": "c-3"}))

    assert store.marks == []


async def test_command_id_when_delivered_concurrently_applies_once() -> None:
    recorder, store = FakeRecorder(delay_s=0.05), FakeStore()
    proc = processor(recording=recorder, applied=store)
    raw = encode({**DS_START, "command_id": "c-4"})

    outcomes = await asyncio.gather(*(proc.process(raw) for _ in range(3)))

    assert sorted(o.result for o in outcomes) == ["applied", "duplicate", "duplicate"]
    assert len(recorder.calls) == 1


async def test_command_id_without_store_applies_every_delivery() -> None:
    recorder = FakeRecorder()
    proc = processor(recording=recorder, applied=None)
    raw = encode({**DS_STOP, "command_id": "c-5"})

    outcomes = [await proc.process(raw), await proc.process(raw)]

    assert [o.result for o in outcomes] == ["applied", "applied"]
    assert len(recorder.calls) == 2


# ------------------------------------------------------------------------------ dead letters

RECEIVED = datetime(2024, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


def dead_letter(raw: bytes, reason: str = "invalid_json", **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "topic": "vigil.commands",
        "partition": 3,
        "offset": 42,
        "received_at": RECEIVED,
        **kwargs,
    }
    return json.loads(dead_letter_record(raw, reason, "why", **options))


def test_dead_letter_record_says_why_and_where_from() -> None:
    record = dead_letter(b'{"command": "explode"}', "unknown_command")

    assert record["reason"] == "unknown_command"
    assert record["detail"] == "why"
    assert record["source"] == {"topic": "vigil.commands", "partition": 3, "offset": 42}
    assert record["received_at"] == "2024-01-02T03:04:05.678+00:00"
    assert record["message"] == {
        "encoding": "utf-8",
        "size_bytes": 22,
        "kept_bytes": 22,
        "truncated": False,
        "data": '{"command": "explode"}',
    }


def test_dead_letter_record_when_received_at_has_offset_or_is_naive() -> None:
    eastern = RECEIVED.astimezone(timezone(timedelta(hours=-5)))

    assert dead_letter(b"x", received_at=eastern)["received_at"] == "2024-01-02T03:04:05.678+00:00"
    naive = RECEIVED.replace(tzinfo=None)
    assert dead_letter(b"x", received_at=naive)["received_at"] == "2024-01-02T03:04:05.678+00:00"


def test_dead_letter_record_when_binary_keeps_it_as_base64() -> None:
    raw = bytes(range(256))

    message = dead_letter(raw)["message"]

    assert message["encoding"] == "base64"
    assert base64.b64decode(message["data"]) == raw
    assert message["truncated"] is False


def test_dead_letter_record_when_oversize_truncates_and_says_so() -> None:
    raw = b'{"pad": "' + b"x" * 100_000 + b'"}'

    message = dead_letter(raw, "oversize")["message"]

    assert message["truncated"] is True
    assert message["size_bytes"] == len(raw)
    assert message["kept_bytes"] == DEAD_LETTER_KEEP_BYTES
    assert message["data"] == raw[:DEAD_LETTER_KEEP_BYTES].decode()


def test_dead_letter_record_when_oversize_never_splits_a_character() -> None:
    raw = "é".encode() * 10  # 2 bytes each

    message = dead_letter(raw, "oversize", oversize_keep_bytes=7)["message"]

    assert message == {
        "encoding": "utf-8",
        "size_bytes": 20,
        "kept_bytes": 6,
        "truncated": True,
        "data": "ééé",
    }


def test_dead_letter_record_when_oversize_binary_truncates_base64() -> None:
    raw = b"\xff\xfe" * 10_000

    message = dead_letter(raw, "oversize", oversize_keep_bytes=100)["message"]

    assert message["encoding"] == "base64"
    assert base64.b64decode(message["data"]) == raw[:100]
    assert message["truncated"] is True


def test_dead_letter_record_keeps_messages_rejected_for_other_reasons_whole() -> None:
    raw = b'{"command": "stop-recording", "pad": "' + b"x" * 10_000 + b'"}'

    message = dead_letter(raw, "unknown_sensor")["message"]

    assert message["truncated"] is False
    assert message["data"] == raw.decode()


# ------------------------------------------------------------------------ mixed message flow


def _malformed(rng: random.Random, i: int) -> bytes:
    valid = encode({"command": "add-stream", "stream": {"id": f"bad-{i}", "url": "test://pattern"}})
    kinds = [
        lambda: valid[: rng.randrange(1, len(valid) - 1)],  # cut short
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),  # noise
        lambda: rng.choice([b"[]", b"1", b'"x"', b"true", b"null", b"[{}]"]),
        lambda: encode({"command": rng.choice(["", "START", "delete", "start_recording"])}),
        lambda: encode({"command": "stop-recording", "sensor": rng.choice([{}, {"id": ""}, 3])}),
        lambda: encode({**DS_STOP, "sensor": {"id": f"nope-{i}"}}),
        lambda: encode(
            {"command": "swap-model", "model": "m", "version": rng.choice([0, -1, 1.5])}
        ),
        lambda: encode({"command": "remove-stream", "id": f"never-{i}"}),
        lambda: encode({"command": "add-stream", "stream": {"id": "x", "url": "gopher://h"}}),
        lambda: b'{"command": "swap-model", "pad": "' + b"y" * 70_000 + b'"}',
        lambda: encode({**DS_START, "start": rng.choice(["yesterday", "", "2020-13-45T99:00:00"])}),
        lambda: encode({"key": "sensor", "value": {"camera_id": "c", "change": "camera_add"}}),
    ]
    return rng.choice(kinds)()


def _valid(i: int) -> tuple[bytes, str]:
    match i % 4:
        case 0:
            stream = {"id": f"s-{i}", "url": "test://pattern"}
            return encode({"command": "add-stream", "stream": stream}), "add-stream"
        case 1:
            return encode({**DS_START, "command_id": f"id-{i}"}), "start-recording"
        case 2:
            return encode({"command": "swap-model", "model": "m", "version": i}), "swap-model"
        case _:
            return encode(DS_STOP), "stop-recording"


async def test_process_when_malformed_messages_interleave_with_valid_ones() -> None:
    rng = random.Random(20240521)
    streams, recorder, models = FakeStreams("cam-1"), FakeRecorder(), FakeModels()
    proc = processor(streams, recording=recorder, models=models, applied=FakeStore())
    messages = [(_malformed(rng, i), None) for i in range(50)]
    messages += [_valid(i) for i in range(30)]
    rng.shuffle(messages)

    rejected: list[str] = []
    applied: list[str] = []
    for raw, kind in messages:
        if kind is None:
            with pytest.raises(CommandRejected) as caught:
                await proc.process(raw)
            assert caught.value.reason in REJECTION_REASONS
            assert caught.value.detail
            rejected.append(caught.value.reason)
        else:
            outcome = await proc.process(raw)
            assert (outcome.kind, outcome.result) == (kind, "applied")
            applied.append(kind)

    assert len(rejected) == 50
    assert len(set(rejected)) >= 5  # assorted kinds, not one failure mode
    assert len(streams.added) == applied.count("add-stream")
    assert len(recorder.calls) == applied.count("start-recording") + applied.count("stop-recording")
    assert len(models.swaps) == applied.count("swap-model")
