"""VigilClient against an httpx.MockTransport: requests sent, results parsed, errors mapped."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import httpx
import pytest

from vigil_client import (
    AuthError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    ReadyTimeoutError,
    RequestTimeoutError,
    ServerError,
    StreamInfo,
    ValidationError,
    VigilClient,
    VigilError,
)

BASE_URL = "http://vigil.test:8080"

Handler = Callable[[httpx.Request], httpx.Response]


def stream_json(stream_id: str = "cam-1", **overrides) -> dict:
    """A StreamInfo as the server sends it."""
    data = {
        "id": stream_id,
        "url": "rtsp://10.0.0.5/stream1",
        "name": "Front door",
        "inference_interval": 2,
        "max_fps": 15.0,
        "drop_policy": "drop_oldest",
        "state": "running",
        "reason": "",
        "fps": 14.8,
        "frames_decoded": 1200,
        "frames_processed": 600,
        "frames_skipped": 600,
        "dropped": {"queue_full": 3, "stale": 1},
        "decode_errors": 0,
        "reconnects": 2,
        "last_error": None,
        "latency_ms": {"p50": 41.5, "p99": 88.0},
    }
    data.update(overrides)
    return data


class Recorder:
    """Wraps a handler and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def make_client(handler: Handler, api_key: str | None = None) -> tuple[VigilClient, Recorder]:
    recorder = Recorder(handler)
    client = VigilClient(BASE_URL, api_key=api_key, transport=httpx.MockTransport(recorder))
    return client, recorder


def reply(status: int, body=None) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def body_of(request: httpx.Request) -> dict:
    return json.loads(request.content)


# --------------------------------------------------------------------------- success paths


def test_add_stream_posts_spec_and_returns_stream_info():
    client, seen = make_client(reply(201, stream_json(state="starting")))

    info = client.add_stream(
        "cam-1", "rtsp://10.0.0.5/stream1", name="Front door", inference_interval=2, max_fps=15.0
    )

    assert seen.last.method == "POST"
    assert seen.last.url == f"{BASE_URL}/api/v1/streams"
    assert body_of(seen.last) == {
        "id": "cam-1",
        "url": "rtsp://10.0.0.5/stream1",
        "name": "Front door",
        "inference_interval": 2,
        "max_fps": 15.0,
    }
    assert info.id == "cam-1"
    assert info.state == "starting"
    assert info.dropped == {"queue_full": 3, "stale": 1}
    assert info.dropped_total == 4
    assert info.latency_ms.p50 == 41.5
    assert info.latency_ms.p99 == 88.0


def test_list_streams_returns_stream_infos_in_server_order():
    client, seen = make_client(
        reply(200, {"streams": [stream_json("b"), stream_json("a", state="error", reason="x")]})
    )

    streams = client.list_streams()

    assert seen.last.method == "GET"
    assert seen.last.url.path == "/api/v1/streams"
    assert [s.id for s in streams] == ["b", "a"]
    assert streams[1].state == "error"
    assert streams[1].reason == "x"


def test_list_streams_when_empty():
    client, _ = make_client(reply(200, {"streams": []}))
    assert client.list_streams() == []


def test_get_stream_requests_stream_path():
    client, seen = make_client(reply(200, stream_json("cam.2_x-y")))

    info = client.get_stream("cam.2_x-y")

    assert seen.last.method == "GET"
    assert seen.last.url.path == "/api/v1/streams/cam.2_x-y"
    assert info.frames_decoded == 1200


@pytest.mark.parametrize(
    ("stream_id", "raw_path"),
    [("..", b"/api/v1/streams/%2E%2E"), (".", b"/api/v1/streams/%2E")],
)
def test_stream_path_when_id_is_a_dot_segment(stream_id, raw_path):
    client, seen = make_client(reply(200, stream_json(stream_id)))

    client.get_stream(stream_id)

    assert seen.last.url.raw_path == raw_path


def test_update_stream_patches_only_given_changes():
    client, seen = make_client(reply(200, stream_json(max_fps=None, name="Back")))

    info = client.update_stream("cam-1", name="Back", max_fps=None)

    assert seen.last.method == "PATCH"
    assert seen.last.url.path == "/api/v1/streams/cam-1"
    assert body_of(seen.last) == {"name": "Back", "max_fps": None}
    assert info.max_fps is None
    assert info.name == "Back"


@pytest.mark.parametrize(
    ("method", "state"), [("start_stream", "running"), ("stop_stream", "stopped")]
)
def test_start_and_stop_patch_state(method, state):
    client, seen = make_client(reply(200, stream_json(state=state)))

    info = getattr(client, method)("cam-1")

    assert seen.last.method == "PATCH"
    assert body_of(seen.last) == {"state": state}
    assert info.state == state


def test_remove_stream_sends_delete_and_returns_none():
    client, seen = make_client(lambda request: httpx.Response(204))

    assert client.remove_stream("cam-1") is None
    assert seen.last.method == "DELETE"
    assert seen.last.url.path == "/api/v1/streams/cam-1"


@pytest.mark.parametrize("base_url", [BASE_URL, BASE_URL + "/", BASE_URL + "/api/v1/"])
def test_client_when_base_url_has_trailing_slash_or_prefix(base_url):
    seen = Recorder(reply(200, {"streams": []}))
    client = VigilClient(base_url, transport=httpx.MockTransport(seen))

    client.list_streams()

    assert str(seen.last.url) == f"{BASE_URL}/api/v1/streams"
    assert client.base_url == BASE_URL


def test_api_key_header_sent_on_every_request_when_configured():
    client, seen = make_client(reply(200, {"streams": []}), api_key="s3cret")

    client.list_streams()
    client.live()

    assert [r.headers.get("X-API-Key") for r in seen.requests] == ["s3cret", "s3cret"]


def test_api_key_header_absent_when_not_configured():
    client, seen = make_client(reply(200, {"streams": []}))

    client.list_streams()

    assert "X-API-Key" not in seen.last.headers


def test_client_is_a_context_manager_that_closes():
    client, _ = make_client(reply(200, {"streams": []}))

    with client as entered:
        assert entered is client
    assert client._http.is_closed


# --------------------------------------------------------------------------- results


def test_stream_info_when_server_sends_unknown_keys():
    data = stream_json(gpu_id=1, tracker={"kind": "iou"})

    info = StreamInfo.from_dict(data)

    assert info.extra == {"gpu_id": 1, "tracker": {"kind": "iou"}}
    assert info.to_dict() == data


def test_stream_info_when_optional_keys_missing():
    info = StreamInfo.from_dict({"id": "a", "url": "test://pattern", "state": "starting"})

    assert info.name == ""
    assert info.inference_interval == 1
    assert info.max_fps is None
    assert info.dropped == {}
    assert info.latency_ms.p50 is None
    assert info.extra == {}


def test_stream_info_is_frozen():
    info = StreamInfo.from_dict(stream_json())
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.state = "stopped"


def test_get_stream_when_response_lacks_required_keys():
    client, _ = make_client(reply(200, {"id": "cam-1"}))

    with pytest.raises(VigilError, match="lacks url, state") as exc_info:
        client.get_stream("cam-1")
    assert type(exc_info.value) is VigilError


def test_get_stream_when_response_is_not_json():
    client, _ = make_client(lambda request: httpx.Response(200, text="<html>proxy</html>"))

    with pytest.raises(VigilError, match="not JSON"):
        client.get_stream("cam-1")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "detail", "error_type"),
    [
        (404, "stream 'cam-9' not found", NotFoundError),
        (409, "stream 'cam-1' already exists", ConflictError),
        (409, "cannot stop stream 'cam-1' in state 'stopped'", ConflictError),
        (422, "bad url scheme 'ftp'", ValidationError),
        (401, "missing API key", AuthError),
        (403, "invalid API key", AuthError),
        (500, "internal error", ServerError),
        (503, "triton unavailable", ServerError),
        (418, "I'm a teapot", VigilError),
    ],
)
def test_error_response_raises_matching_error(status, detail, error_type):
    client, _ = make_client(reply(status, {"detail": detail}))

    with pytest.raises(error_type) as exc_info:
        client.get_stream("cam-1")

    error = exc_info.value
    assert type(error) is error_type
    assert error.status_code == status
    assert error.detail == detail
    assert detail in str(error)
    assert f"HTTP {status}" in str(error)


def test_validation_error_lists_field_paths_and_messages():
    detail = [
        {
            "loc": ["body", "id"],
            "msg": "String should match pattern '^[A-Za-z0-9._-]{1,64}$'",
            "type": "string_pattern_mismatch",
        },
        {
            "loc": ["body", "inference_interval"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        },
    ]
    client, _ = make_client(reply(422, {"detail": detail}))

    with pytest.raises(ValidationError) as exc_info:
        client.add_stream("bad id!", "file:///a.mp4", inference_interval=0)

    error = exc_info.value
    assert error.status_code == 422
    assert error.detail == detail
    assert [e.field for e in error.errors] == ["id", "inference_interval"]
    assert error.errors[0].type == "string_pattern_mismatch"
    message = str(error)
    assert "id: String should match pattern" in message
    assert "inference_interval: Input should be greater than or equal to 1" in message


def test_validation_error_field_path_with_list_index():
    detail = [{"loc": ["body", "streams", 0, "url"], "msg": "Field required", "type": "missing"}]
    client, _ = make_client(reply(422, {"detail": detail}))

    with pytest.raises(ValidationError, match=r"streams\[0\]\.url: Field required"):
        client.add_stream("a", "b")


def test_server_error_when_body_is_not_json():
    client, _ = make_client(lambda request: httpx.Response(502, text="Bad Gateway from proxy"))

    with pytest.raises(ServerError, match="Bad Gateway from proxy") as exc_info:
        client.list_streams()
    assert exc_info.value.status_code == 502


def test_not_found_when_route_is_unknown_names_the_path():
    client, _ = make_client(reply(404, {"detail": "Not Found"}))

    with pytest.raises(NotFoundError, match="GET /api/v1/streams/cam-1: Not Found"):
        client.get_stream("cam-1")


def raise_(error: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_connection_failed_when_server_unreachable_names_url(error):
    client, _ = make_client(raise_(error))

    with pytest.raises(ConnectionFailed, match=r"http://vigil\.test:8080/api/v1/streams") as e:
        client.list_streams()
    assert e.value.status_code is None
    assert isinstance(e.value.__cause__, httpx.TransportError)


def test_request_timeout_when_server_does_not_answer():
    client, _ = make_client(raise_(httpx.ReadTimeout("read timed out")))

    with pytest.raises(RequestTimeoutError, match="no response within 10 s"):
        client.get_stream("cam-1")


# --------------------------------------------------------------------------- probes


def test_live_when_server_answers_ok():
    client, seen = make_client(reply(200, {"status": "ok"}))

    assert client.live() is True
    assert seen.last.url.path == "/api/v1/live"


@pytest.mark.parametrize(
    "handler",
    [raise_(httpx.ConnectError("refused")), reply(503, {"detail": "shutting down"})],
    ids=["unreachable", "503"],
)
def test_live_is_false_when_server_down(handler):
    client, _ = make_client(handler)
    assert client.live() is False


def test_ready_returns_report_when_ready():
    report = {"ready": True, "triton": "ready", "model": "ssd_mobilenet_v2_coco"}
    client, seen = make_client(reply(200, report))

    assert client.ready() == report
    assert seen.last.url.path == "/api/v1/ready"


def test_ready_returns_report_when_503_not_ready():
    client, _ = make_client(reply(503, {"ready": False, "reason": "triton starting"}))

    assert client.ready() == {"ready": False, "reason": "triton starting"}


def test_ready_when_503_carries_plain_detail():
    client, _ = make_client(reply(503, {"detail": "triton starting"}))

    assert client.ready() == {"ready": False, "reason": "triton starting"}


@pytest.mark.parametrize("status", ["ok", "degraded"])
def test_health_returns_report(status):
    report = {"status": status, "triton": {"live": True}, "streams": {"running": 1, "error": 0}}
    client, seen = make_client(reply(200, report))

    assert client.health() == report
    assert seen.last.url.path == "/api/v1/health"


def test_health_when_server_fails():
    client, _ = make_client(reply(500, {"detail": "boom"}))

    with pytest.raises(ServerError, match="boom"):
        client.health()


def test_wait_ready_polls_through_connection_errors_until_ready():
    answers = iter(
        [
            raise_(httpx.ConnectError("refused")),
            reply(503, {"ready": False, "reason": "loading model"}),
            reply(200, {"ready": True}),
        ]
    )
    client, seen = make_client(lambda request: next(answers)(request))

    assert client.wait_ready(timeout_s=5, poll_interval_s=0.001) == {"ready": True}
    assert len(seen.requests) == 3


def test_wait_ready_when_never_ready_reports_last_reason():
    client, _ = make_client(reply(503, {"ready": False, "reason": "triton unavailable"}))

    with pytest.raises(ReadyTimeoutError, match=r"not ready after 0\.05 s: triton unavailable"):
        client.wait_ready(timeout_s=0.05, poll_interval_s=0.01)


def test_wait_ready_when_auth_fails_raises_at_once():
    client, seen = make_client(reply(401, {"detail": "missing API key"}))

    with pytest.raises(AuthError):
        client.wait_ready(timeout_s=5, poll_interval_s=0.001)
    assert len(seen.requests) == 1
