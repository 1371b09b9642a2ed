"""Passing per-stream calls to the stream's owner on a cluster worker (a fake owner behind an
httpx.MockTransport; the real two-worker case is tests/integration/test_cluster_rest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vigil.api.forward import ForwardToOwner
from vigil.cluster.status import StatusBoard, StreamReport, WorkerStatus
from vigil.specs import StreamSpec


def board_with(owner: str, stream: str, api: str | None) -> StatusBoard:
    board = StatusBoard(SimpleNamespace(), "s", stale_s=10)  # type: ignore[arg-type]
    board.latest[owner] = WorkerStatus(
        worker=owner, at=datetime.now(UTC), partitions=[0], model="m:1", leader=False,
        rebalances=1, api=api, streams=[StreamReport(id=stream, state="running")],
    )  # fmt: skip
    return board


class Owner(httpx.AsyncBaseTransport):
    """The owner's API: ``answer(request)``, its body streamed as from a real server (httpx's
    MockTransport reads it first)."""

    def __init__(self, answer) -> None:
        self.answer = answer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = self.answer(request)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(response.content),
        )


def app_for(local: set[str], desired: set[str], board: StatusBoard, owner_answers) -> TestClient:
    cluster = SimpleNamespace(
        worker_id="w1",
        desired=SimpleNamespace(
            streams={s: StreamSpec(id=s, url="test://pattern") for s in desired}
        ),
        board=board,
    )
    runtime = SimpleNamespace(cluster=cluster, streams=local)
    app = FastAPI()

    @app.api_route("/api/v1/streams/{sid}{rest:path}", methods=["GET", "PUT", "PATCH", "DELETE"])
    async def here(sid: str, rest: str) -> dict:
        return {"answered": "w1", "sid": sid, "rest": rest}

    transport = Owner(owner_answers)
    app.add_middleware(ForwardToOwner, runtime=runtime, transport=transport)
    return TestClient(app)


def test_a_call_about_a_stream_another_worker_runs_is_answered_by_it():
    seen: list[httpx.Request] = []

    def owner(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(422, json={"detail": "lines: not a list"})

    client = app_for(set(), {"cam"}, board_with("w2", "cam", "http://w2:8080"), owner)
    answer = client.put("/api/v1/streams/cam/analytics?x=1", json={"lines": 1})
    assert answer.status_code == 422
    assert answer.json() == {"detail": "lines: not a list"}
    assert answer.headers["x-vigil-worker"] == "w2"
    [request] = seen
    assert str(request.url) == "http://w2:8080/api/v1/streams/cam/analytics?x=1"
    assert request.headers["x-vigil-forwarded-by"] == "w1"
    assert request.content == b'{"lines":1}'


def test_calls_answered_here_local_streams_unknown_ones_changes_and_forwarded_ones():
    def owner(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"forwarded {request.method} {request.url}")

    client = app_for({"mine"}, {"mine", "cam"}, board_with("w2", "cam", "http://w2:8080"), owner)
    assert client.get("/api/v1/streams/mine/analytics").json()["answered"] == "w1"
    assert client.get("/api/v1/streams/nope").json()["answered"] == "w1"  # not in the cluster
    assert client.delete("/api/v1/streams/cam").json()["answered"] == "w1"  # the control topic's
    again = client.get("/api/v1/streams/cam", headers={"x-vigil-forwarded-by": "w3"})
    assert again.json()["answered"] == "w1"  # never forwarded twice


def test_an_owner_without_an_api_url_is_not_forwarded_to_and_one_that_is_down_is_a_503():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    silent = app_for(set(), {"cam"}, board_with("w2", "cam", None), down)
    assert silent.get("/api/v1/streams/cam").json()["answered"] == "w1"
    client = app_for(set(), {"cam"}, board_with("w2", "cam", "http://w2:8080"), down)
    answer = client.get("/api/v1/streams/cam/snapshot.jpg")
    assert answer.status_code == 503
    assert "worker w2" in answer.json()["detail"]
