"""Kafka recording commands on a cluster worker: applied here when it runs the stream,
passed to the owner's REST API otherwise, with the owner's refusals as clear rejections."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from vigil.cluster.peers import FORWARDED, ClusterRecording
from vigil.cluster.status import StatusBoard, StreamReport, WorkerStatus
from vigil.commands.processor import CommandRejected
from vigil.pipeline.manager import StreamNotFoundError
from vigil.record.recorder import NotRecordingError


class Board:
    owner_elsewhere = StatusBoard.owner_elsewhere  # the real rule, over owner() below

    def __init__(self, owners: dict[str, tuple[str, str | None]]) -> None:
        self.owners = owners  # stream → (worker, api)

    def owner(self, stream_id: str):
        if stream_id not in self.owners:
            return None
        worker, api = self.owners[stream_id]
        status = WorkerStatus(
            worker=worker, at=datetime.now(UTC), partitions=[], model="m:1", leader=False,
            rebalances=1, api=api, streams=[StreamReport(id=stream_id, state="running")],
        )  # fmt: skip
        return status, status.streams[0]


class Worker:
    def __init__(self, running: set[str], owners: dict[str, tuple[str, str | None]]) -> None:
        self.worker_id = "w1"
        self.running = dict.fromkeys(running)
        self.board = Board(owners)


class LocalRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def start_recording(self, sensor_id, start, end) -> None:
        self.calls.append(("start", sensor_id))

    async def stop_recording(self, sensor_id, start, end) -> None:
        self.calls.append(("stop", sensor_id))


def owner_api(status: int = 201, detail: str = "") -> tuple[httpx.MockTransport, list]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status >= 400:
            return httpx.Response(status, json={"detail": detail})
        return httpx.Response(status, json={"id": "rec-1"})

    return httpx.MockTransport(handle), seen


def test_a_stream_run_here_is_recorded_here():
    local, (transport, seen) = LocalRecorder(), owner_api()
    handler = ClusterRecording(local, Worker({"a"}, {}), "k", transport)  # type: ignore[arg-type]
    asyncio.run(handler.start_recording("a", datetime.now(UTC), None))
    asyncio.run(handler.stop_recording("a", None, None))
    assert local.calls == [("start", "a"), ("stop", "a")]
    assert seen == []


def test_another_workers_stream_goes_to_its_owner_with_the_key_and_marked():
    worker = Worker(set(), {"b": ("w2", "http://w2:8080/")})
    transport, seen = owner_api()
    handler = ClusterRecording(LocalRecorder(), worker, "secret", transport)  # type: ignore[arg-type]
    past = datetime.now(UTC) - timedelta(seconds=3)
    future = datetime.now(UTC) + timedelta(minutes=5)
    asyncio.run(handler.start_recording("b", past, None))
    asyncio.run(handler.start_recording("b", future, future + timedelta(seconds=10)))
    asyncio.run(handler.stop_recording("b", None, None))
    assert [str(r.url) for r in seen] == [
        "http://w2:8080/api/v1/streams/b/recordings",
        "http://w2:8080/api/v1/streams/b/recordings",
        "http://w2:8080/api/v1/streams/b/recordings/stop",
    ]
    assert all(r.headers["x-api-key"] == "secret" for r in seen)
    assert all(r.headers[FORWARDED.decode()] == "w1" for r in seen)
    first, second = (json.loads(r.content) for r in seen[:2])
    assert datetime.fromisoformat(first["start"]) == past
    # a start in the future begins now (DeepStream's rule; the REST API refuses future starts)
    assert datetime.fromisoformat(second["start"]) <= datetime.now(UTC)
    assert datetime.fromisoformat(second["end"]) == future + timedelta(seconds=10)


@pytest.mark.parametrize(
    ("owners", "status", "error", "words"),
    [
        ({}, 201, StreamNotFoundError, "no worker runs stream 'b'"),
        ({"b": ("w2", None)}, 201, StreamNotFoundError, "advertised_url"),
        ({"b": ("w2", "http://w2")}, 404, StreamNotFoundError, "gone"),
        ({"b": ("w2", "http://w2")}, 409, NotRecordingError, "w2: stream 'b' is not recording"),
        ({"b": ("w2", "http://w2")}, 422, ValueError, "w2: end: bad"),
    ],
)
def test_the_owners_refusals_become_clear_errors(owners, status, error, words):
    transport, _ = owner_api(status, {404: "gone", 409: "stream 'b' is not recording"}.get(
        status, "end: bad"))  # fmt: skip
    handler = ClusterRecording(LocalRecorder(), Worker(set(), owners), None, transport)  # type: ignore[arg-type]
    with pytest.raises(error, match=words):
        asyncio.run(handler.stop_recording("b", None, None))


def test_a_stream_here_with_recording_off_is_unsupported():
    handler = ClusterRecording(None, Worker({"a"}, {}), None)  # type: ignore[arg-type]
    with pytest.raises(CommandRejected) as caught:
        asyncio.run(handler.start_recording("a", datetime.now(UTC), None))
    assert caught.value.reason == "unsupported"


def test_a_start_the_owner_cannot_record_is_its_refusal_not_a_stop_conflict():
    transport, _ = owner_api(409, "stream 'b' is a test pattern: it has no encoded video")
    worker = Worker(set(), {"b": ("w2", "http://w2")})
    handler = ClusterRecording(LocalRecorder(), worker, None, transport)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="w2: stream 'b' is a test pattern") as caught:
        asyncio.run(handler.start_recording("b", None, None))
    assert not isinstance(caught.value, NotRecordingError)
