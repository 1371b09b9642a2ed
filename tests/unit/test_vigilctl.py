"""vigilctl end to end against an httpx.MockTransport: output, requests and exit codes."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import httpx
import pytest

from tests.unit.test_client import stream_json as client_stream_json
from vigil_client import VigilClient, cli, output

Handler = Callable[[httpx.Request], httpx.Response]


def stream_json(stream_id: str = "cam-1", **overrides) -> dict:
    defaults = {"name": "", "inference_interval": 1, "max_fps": None, "drop_policy": None}
    return client_stream_json(stream_id, **{"fps": 14.84, **defaults, **overrides})


class FakeServer:
    """Answers every request with the next canned reply and records what it got."""

    def __init__(self) -> None:
        self.replies: list[Handler] = []
        self.requests: list[httpx.Request] = []

    def reply(self, status: int, body=None) -> None:
        self.replies.append(lambda request: httpx.Response(status, json=body))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.replies.pop(0)(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """A fake server wired into vigilctl, with VIGIL_URL / VIGIL_API_KEY unset."""
    monkeypatch.delenv("VIGIL_URL", raising=False)
    monkeypatch.delenv("VIGIL_API_KEY", raising=False)
    fake = FakeServer()
    monkeypatch.setattr(
        cli, "VigilClient", functools.partial(VigilClient, transport=httpx.MockTransport(fake))
    )
    return fake


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- streams


def test_streams_add_sends_options_and_prints_state(server, capsys):
    server.reply(201, stream_json(state="starting"))

    code, out, err = run(
        capsys,
        "streams",
        "add",
        "cam-1",
        "rtsp://10.0.0.5/stream1",
        "--name",
        "Front door",
        "--interval",
        "3",
        "--max-fps",
        "12.5",
    )

    assert (code, out, err) == (0, "added stream cam-1 (starting)\n", "")
    # the stream's URL argument must not be taken for the server's --url
    assert str(server.last.url) == "http://127.0.0.1:8080/api/v1/streams"
    assert server.last.method == "POST"
    assert json.loads(server.last.content) == {
        "id": "cam-1",
        "url": "rtsp://10.0.0.5/stream1",
        "name": "Front door",
        "inference_interval": 3,
        "max_fps": 12.5,
    }


def test_streams_add_omits_unset_options(server, capsys):
    server.reply(201, stream_json(state="starting"))

    assert cli.main(["streams", "add", "cam-1", "file:///v.mp4"]) == 0
    assert json.loads(server.last.content) == {"id": "cam-1", "url": "file:///v.mp4"}


def test_streams_list_prints_table(server, capsys):
    server.reply(
        200,
        {
            "streams": [
                stream_json("cam-1"),
                stream_json("cam-2", state="reconnecting", reason="connection refused"),
            ]
        },
    )

    code, out, err = run(capsys, "streams", "list")

    assert (code, err) == (0, "")
    for text in ("ID", "STATE", "FPS", "FRAMES", "DROPPED", "RECONNECTS", "REASON"):
        assert text in out
    assert "cam-1" in out
    assert "cam-2" in out
    assert "reconnecting" in out
    assert "connection refused" in out
    assert "14.8" in out


def test_streams_list_when_rich_is_missing_prints_plain_text(server, capsys, monkeypatch):
    monkeypatch.setattr(output, "Console", None)
    server.reply(
        200,
        {"streams": [stream_json("cam-1"), stream_json("yard", state="error", reason="eof")]},
    )

    code, out, _ = run(capsys, "streams", "list")

    assert code == 0
    assert out.splitlines() == [
        "ID     STATE    FPS   FRAMES  DROPPED  RECONNECTS  REASON",
        "cam-1  running  14.8  600     4        2",
        "yard   error    14.8  600     4        2           eof",
    ]


def test_streams_list_when_no_streams(server, capsys):
    server.reply(200, {"streams": []})

    assert run(capsys, "streams", "list") == (0, "no streams\n", "")


def test_streams_list_json(server, capsys):
    server.reply(200, {"streams": [stream_json("cam-1")]})

    code, out, _ = run(capsys, "streams", "list", "--json")

    assert code == 0
    assert json.loads(out) == [stream_json("cam-1")]


def test_streams_get_prints_server_json(server, capsys):
    data = stream_json("cam-1", future_field="kept")
    server.reply(200, data)

    code, out, _ = run(capsys, "streams", "get", "cam-1")

    assert code == 0
    assert json.loads(out) == data
    assert server.last.url.path == "/api/v1/streams/cam-1"


def test_streams_rm(server, capsys):
    server.replies.append(lambda request: httpx.Response(204))

    assert run(capsys, "streams", "rm", "cam-1") == (0, "removed stream cam-1\n", "")
    assert server.last.method == "DELETE"


@pytest.mark.parametrize(("action", "state"), [("start", "running"), ("stop", "stopped")])
def test_streams_start_stop(server, capsys, action, state):
    server.reply(200, stream_json(state=state))

    assert run(capsys, "streams", action, "cam-1") == (0, f"cam-1: {state}\n", "")
    assert server.last.method == "PATCH"
    assert json.loads(server.last.content) == {"state": state}


# --------------------------------------------------------------------------- health / ready


@pytest.mark.parametrize(("status", "exit_code"), [("ok", 0), ("degraded", 1)])
def test_health_prints_json_and_exits_by_status(server, capsys, status, exit_code):
    report = {"status": status, "triton": {"live": True}, "streams": {"running": 1, "error": 0}}
    server.reply(200, report)

    code, out, _ = run(capsys, "health")

    assert code == exit_code
    assert json.loads(out) == report


def test_ready_when_ready(server, capsys):
    server.reply(200, {"ready": True})

    assert run(capsys, "ready") == (0, "ready\n", "")


def test_ready_when_not_ready(server, capsys):
    server.reply(503, {"ready": False, "reason": "triton starting"})

    assert run(capsys, "ready") == (1, "not ready: triton starting\n", "")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("argv", "status", "detail", "message"),
    [
        (["streams", "get", "nope"], 404, "stream 'nope' not found", None),
        (["streams", "add", "cam-1", "file:///a.mp4"], 409, "stream 'cam-1' exists", None),
        (["streams", "stop", "cam-1"], 409, "cannot stop stream in state 'stopped'", None),
        (["streams", "rm", "cam-1"], 401, "missing API key", None),
        (["streams", "rm", "cam-1"], 403, "invalid API key", None),
        (["streams", "list"], 500, "boom", "GET /api/v1/streams: boom"),
    ],
)
def test_error_response_prints_error_and_exits_1(server, capsys, argv, status, detail, message):
    server.reply(status, {"detail": detail})

    code, out, err = run(capsys, *argv)

    assert code == 1
    assert out == ""
    assert err == f"error: {message or detail} (HTTP {status})\n"


def test_validation_error_prints_field_paths(server, capsys):
    detail = [
        {
            "loc": ["body", "inference_interval"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }
    ]
    server.reply(422, {"detail": detail})

    code, _, err = run(capsys, "streams", "add", "cam-1", "file:///a.mp4", "--interval", "0")

    assert code == 1
    assert err == (
        "error: invalid request: inference_interval: Input should be greater than or equal to 1"
        " (HTTP 422)\n"
    )


def test_unreachable_server_prints_url_and_exits_1(server, capsys):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    server.replies.append(refuse)

    code, _, err = run(capsys, "--url", "http://nowhere.test:9", "ready")

    assert code == 1
    assert err.startswith("error: cannot connect to Vigil at http://nowhere.test:9/api/v1/ready")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["streams"],
        ["streams", "add", "cam-1"],
        ["streams", "add", "cam-1", "file:///a.mp4", "--interval", "two"],
        ["bogus"],
    ],
)
def test_usage_error_exits_2(server, capsys, argv):
    code, _, err = run(capsys, *argv)

    assert code == 2
    assert "usage: vigilctl" in err
    assert server.requests == []


def test_help_exits_0(server, capsys):
    code, out, _ = run(capsys, "--help")

    assert code == 0
    assert "streams" in out


# --------------------------------------------------------------------------- url / api key


def test_url_and_api_key_from_environment(server, capsys, monkeypatch):
    monkeypatch.setenv("VIGIL_URL", "http://vigil.env:9000")
    monkeypatch.setenv("VIGIL_API_KEY", "from-env")
    server.reply(200, {"streams": []})

    assert cli.main(["streams", "list"]) == 0
    assert str(server.last.url) == "http://vigil.env:9000/api/v1/streams"
    assert server.last.headers["X-API-Key"] == "from-env"


def test_flags_override_environment(server, capsys, monkeypatch):
    monkeypatch.setenv("VIGIL_URL", "http://vigil.env:9000")
    monkeypatch.setenv("VIGIL_API_KEY", "from-env")
    server.replies.append(lambda request: httpx.Response(204))

    code = cli.main(
        ["--url", "http://vigil.flag:1", "--api-key", "from-flag", "streams", "rm", "a"]
    )

    assert code == 0
    assert str(server.last.url) == "http://vigil.flag:1/api/v1/streams/a"
    assert server.last.headers["X-API-Key"] == "from-flag"


def test_no_api_key_header_by_default(server, capsys):
    server.reply(200, {"streams": []})

    assert cli.main(["streams", "list"]) == 0
    assert "X-API-Key" not in server.last.headers
