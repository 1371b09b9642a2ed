"""DeepStream-compatible endpoints: DeepStream's documented bodies in, its replies out.

The request bodies in ``tests/data/deepstream`` are the stream add/remove examples of the
deepstream-server-app README (``sources/apps/sample_apps/deepstream-server/README``, DeepStream
6.3, where the paths had no ``/api/v1`` prefix; DeepStream 7.x takes the same bodies there).
``add_rtsp.json`` is ``add_file.json`` with an RTSP ``camera_url``. They are sent byte for byte,
as ``curl -d`` sends them.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vigil.api import deps
from vigil.api.routers import deepstream
from vigil.api.routers.deepstream import STREAM_ID_HEADER, stream_id_for
from vigil.config import ApiSettings
from vigil.pipeline.manager import ManagedStream, StreamExistsError, StreamNotFoundError
from vigil.pipeline.stream_state import StreamStatus
from vigil.sources.errors import SourceError
from vigil.specs import StreamSpec

DATA = Path(__file__).resolve().parents[1] / "data" / "deepstream"
ADD, REMOVE, INFO = "/api/v1/stream/add", "/api/v1/stream/remove", "/api/v1/stream/get-stream-info"
CURL_FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
VIGIL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

OK = "HTTP/1.1 200 OK"
ADD_OK = {"status": OK, "reason": "STREAM_ADD_SUCCESS"}
REMOVE_OK = {"status": OK, "reason": "STREAM_REMOVE_SUCCESS"}
DUPLICATE = {
    "status": "HTTP/1.1 409 Conflict",
    "reason": "STREAM_ADD_FAIL, Duplicate Camera id, unable to add stream",
}
NO_RECORD = {
    "status": "HTTP/1.1 404 Not Found",
    "reason": "STREAM_REMOVE_FAIL, No record found. Failed to remove source stream",
}


class FakeStreams:
    """An in-memory StreamManager: the same methods and errors, no decoders."""

    def __init__(self) -> None:
        self._streams: dict[str, ManagedStream] = {}
        self.fail_add: SourceError | None = None

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._streams

    def get(self, stream_id: str) -> ManagedStream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise StreamNotFoundError(f"no stream with id {stream_id!r}") from None

    def list(self) -> list[ManagedStream]:
        return list(self._streams.values())

    async def add(self, spec: StreamSpec) -> ManagedStream:
        if spec.id in self._streams:
            raise StreamExistsError(f"stream {spec.id!r} already exists")
        if self.fail_add is not None:
            raise self.fail_add
        managed = ManagedStream(spec, StreamStatus(spec.id, spec.url))
        self._streams[spec.id] = managed
        return managed

    async def remove(self, stream_id: str) -> None:
        self.get(stream_id)
        del self._streams[stream_id]


def make_client(streams: FakeStreams, settings: ApiSettings | None = None) -> TestClient:
    app = FastAPI()
    app.include_router(deepstream.router)
    app.dependency_overrides[deps.get_runtime] = lambda: SimpleNamespace(
        streams=streams, stream_control=streams
    )
    app.dependency_overrides[deps.get_api_settings] = lambda: settings or ApiSettings()
    return TestClient(app)


def raw(name: str) -> bytes:
    """A documented body, byte for byte."""
    return (DATA / name).read_bytes()


def body(name: str, **value: Any) -> dict[str, Any]:
    """A documented body as a dict, with ``value`` keys replaced (None deletes one)."""
    doc = copy.deepcopy(json.loads(raw(name)))
    for key, new in value.items():
        if new is None:
            del doc["value"][key]
        else:
            doc["value"][key] = new
    return doc


@pytest.fixture
def streams() -> FakeStreams:
    return FakeStreams()


@pytest.fixture
def client(streams: FakeStreams) -> TestClient:
    return make_client(streams)


# ------------------------------------------------------------------------ documented bodies


@pytest.mark.parametrize(
    ("name", "url"),
    [
        (
            "add_file.json",
            "file:///opt/nvidia/deepstream/deepstream/samples/streams/sample_1080p_h264.mp4",
        ),
        ("add_rtsp.json", "rtsp://127.0.0.1:8554/cam"),
    ],
)
def test_add_when_documented_body_sent_like_curl_then_stream_added(client, streams, name, url):
    r = client.post(ADD, content=raw(name), headers=CURL_FORM)

    assert r.status_code == 200, r.text
    assert r.json() == ADD_OK
    assert r.headers[STREAM_ID_HEADER] == "uniqueSensorID1"
    spec = streams.get("uniqueSensorID1").spec
    assert (spec.url, spec.name) == (url, "front_door")


def test_remove_when_documented_body_then_stream_removed(client, streams):
    assert client.post(ADD, content=raw("add_file.json"), headers=CURL_FORM).status_code == 200

    r = client.post(REMOVE, content=raw("remove.json"), headers=CURL_FORM)

    assert r.status_code == 200, r.text
    assert r.json() == REMOVE_OK
    assert r.headers[STREAM_ID_HEADER] == "uniqueSensorID1"
    assert streams.list() == []


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/x-www-form-urlencoded", "text/plain"],
)
def test_add_when_any_content_type_then_body_read_as_json(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}

    r = client.post(ADD, content=raw("add_file.json"), headers=headers)

    assert r.status_code == 200, r.text


def test_add_when_only_required_keys_then_added(client, streams):
    minimal = {
        "value": {"camera_id": "cam1", "camera_url": "test://pattern", "change": "camera_add"}
    }

    r = client.post(ADD, json=minimal)

    assert r.status_code == 200, r.text
    assert streams.get("cam1").spec.name == ""


def test_remove_when_only_id_and_change_then_removed(client, streams):
    client.post(ADD, json=body("add_file.json"))

    r = client.post(
        REMOVE, json={"value": {"camera_id": "uniqueSensorID1", "change": "camera_remove"}}
    )

    assert r.json() == REMOVE_OK
    assert "uniqueSensorID1" not in streams


def test_add_when_event_instead_of_value_then_added(client, streams):
    doc = body("add_file.json")
    doc["event"] = doc.pop("value")

    assert client.post(ADD, json=doc).json() == ADD_OK
    assert "uniqueSensorID1" in streams


def test_add_when_camera_streaming_then_added(client, streams):
    assert client.post(ADD, json=body("add_file.json", change="camera_streaming")).json() == ADD_OK


def test_add_when_unknown_keys_in_metadata_and_headers_then_accepted(client):
    doc = body("add_file.json")
    doc["value"]["metadata"]["bitrate_kbps"] = 4000
    doc["headers"]["trace_id"] = "abc"

    assert client.post(ADD, json=doc).json() == ADD_OK


# -------------------------------------------------------------------------------- failures


def test_add_when_camera_id_exists_then_409_duplicate(client, streams):
    client.post(ADD, json=body("add_file.json"))

    r = client.post(ADD, json=body("add_rtsp.json"))

    assert r.status_code == 409
    assert r.json() == DUPLICATE
    assert streams.get("uniqueSensorID1").spec.url.startswith("file://")


def test_remove_when_camera_unknown_then_404_no_record(client):
    r = client.post(REMOVE, json=body("remove.json"))

    assert r.status_code == 404
    assert r.json() == NO_RECORD


@pytest.mark.parametrize(
    ("path", "change", "prefix"),
    [
        (ADD, "camera_remove", "STREAM_ADD_FAIL, value.change: "),
        (ADD, "add", "STREAM_ADD_FAIL, value.change: "),
        (REMOVE, "camera_add", "STREAM_REMOVE_FAIL, value.change: "),
    ],
)
def test_post_when_change_does_not_match_endpoint_then_422_names_field(
    client, streams, path, change, prefix
):
    client.post(ADD, json=body("add_rtsp.json", camera_id="keep"))

    r = client.post(path, json=body("add_file.json", camera_id="keep", change=change))

    assert r.status_code == 422
    assert r.json()["status"] == "HTTP/1.1 422 Unprocessable Entity"
    assert r.json()["reason"].startswith(prefix)
    assert repr(change) in r.json()["reason"]
    assert [m.spec.id for m in streams.list()] == ["keep"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/cam.mp4", "value.camera_url: unsupported url scheme 'ftp'"),
        ("/videos/cam.mp4", "value.camera_url: unsupported url scheme no scheme"),
        ("rtsp:///stream", "value.camera_url: rtsp url needs a host"),
        ("file:///videos/my cam.mp4", "value.camera_url: url must not contain whitespace"),
    ],
)
def test_add_when_url_not_usable_then_422_says_why(client, streams, url, says):
    r = client.post(ADD, json=body("add_file.json", camera_url=url))

    assert r.status_code == 422
    assert r.json()["status"] == "HTTP/1.1 422 Unprocessable Entity"
    assert r.json()["reason"].startswith(f"STREAM_ADD_FAIL, {says}")
    assert streams.list() == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"camera_id": None}, "value.camera_id: Field required"),
        ({"camera_id": ""}, "value.camera_id: String should have at least 1 character"),
        ({"camera_url": None}, "value.camera_url: Field required"),
        ({"camera_url": ""}, "value.camera_url: String should have at least 1 character"),
        ({"change": None}, "value.change: Field required"),
        ({"camera_uri": "rtsp://h/x"}, "value.camera_uri: Extra inputs are not permitted"),
        ({"metadata": "1080p"}, "value.metadata: Input should be a valid dictionary"),
    ],
)
def test_add_when_value_key_missing_or_wrong_then_422_names_it(client, streams, change, says):
    r = client.post(ADD, json=body("add_file.json", **change))

    assert r.status_code == 422
    assert says in r.json()["reason"]
    assert r.json()["reason"].startswith("STREAM_ADD_FAIL, ")
    assert streams.list() == []


def test_add_when_value_missing_then_422(client):
    r = client.post(ADD, json={"key": "sensor", "headers": {"source": "vst"}})

    assert r.status_code == 422
    assert r.json()["reason"] == "STREAM_ADD_FAIL, value: Field required"


def test_remove_when_camera_id_missing_then_422(client):
    r = client.post(REMOVE, json=body("remove.json", camera_id=None))

    assert r.status_code == 422
    assert r.json()["reason"] == "STREAM_REMOVE_FAIL, value.camera_id: Field required"


def test_add_when_body_empty_then_422(client):
    r = client.post(ADD, content=b"", headers=CURL_FORM)

    assert r.status_code == 422
    assert r.json()["reason"] == "STREAM_ADD_FAIL, body: Field required"


def test_add_when_body_not_json_then_400(client):
    r = client.post(ADD, content=b'{"key": "sensor", "value": {', headers=CURL_FORM)

    assert r.status_code == 400
    assert r.json()["status"] == "HTTP/1.1 400 Bad Request"
    assert r.json()["reason"].startswith("STREAM_ADD_FAIL, body is not valid JSON")


def test_add_when_source_refused_then_422_failed_to_add(client, streams):
    streams.fail_add = SourceError("rtsp://127.0.0.1:8554/cam", "unsupported codec")

    r = client.post(ADD, json=body("add_rtsp.json"))

    assert r.status_code == 422
    assert r.json()["reason"] == "STREAM_ADD_FAIL, Failed to add source stream: unsupported codec"


# ---------------------------------------------------------------------------- camera ids


@pytest.mark.parametrize(
    "camera_id",
    ["0:tienda", "front door", "cam/1?x=2", "камера-1", "-leading-dash", ".", "x" * 65, "a" * 300],
)
def test_camera_id_when_not_a_vigil_id_then_mapped_and_round_trips(client, streams, camera_id):
    r = client.post(ADD, json=body("add_file.json", camera_id=camera_id))
    assert r.json() == ADD_OK
    stream_id = r.headers[STREAM_ID_HEADER]
    assert stream_id != camera_id
    assert VIGIL_ID.match(stream_id)
    assert len(stream_id) <= 64
    assert [m.spec.id for m in streams.list()] == [stream_id]

    again = client.post(ADD, json=body("add_rtsp.json", camera_id=camera_id))
    assert again.json() == DUPLICATE

    gone = client.post(REMOVE, json=body("remove.json", camera_id=camera_id))
    assert gone.json() == REMOVE_OK
    assert gone.headers[STREAM_ID_HEADER] == stream_id
    assert streams.list() == []


def test_remove_when_given_mapped_id_then_finds_stream(client, streams):
    added = client.post(ADD, json=body("add_file.json", camera_id="0:tienda"))
    mapped = added.headers[STREAM_ID_HEADER]

    r = client.post(REMOVE, json=body("remove.json", camera_id=mapped))

    assert r.json() == REMOVE_OK
    assert streams.list() == []


@pytest.mark.parametrize("camera_id", ["uniqueSensorID1", "cam-1", "a.b_c-d", "9", "x" * 64])
def test_stream_id_for_when_valid_id_then_unchanged(camera_id):
    assert stream_id_for(camera_id) == camera_id


def test_stream_id_for_when_invalid_then_stable_distinct_and_idempotent():
    mapped = stream_id_for("0:tienda")

    assert mapped == stream_id_for("0:tienda")
    assert re.fullmatch(r"0_tienda-[0-9a-f]{8}", mapped)
    assert stream_id_for(mapped) == mapped
    assert stream_id_for("0/tienda") != mapped  # same stem, different hash
    assert stream_id_for("???").startswith("camera-")


# ------------------------------------------------------------------------- get-stream-info


def test_get_stream_info_when_streams_then_deepstream_shape(client):
    client.post(ADD, json=body("add_file.json"))
    client.post(ADD, json=body("add_rtsp.json", camera_id="0:tienda", camera_name="tienda"))
    mapped = stream_id_for("0:tienda")

    r = client.get(INFO)

    assert r.status_code == 200
    assert r.json() == {
        "status": OK,
        "reason": "GET_LIVE_STREAM_INFO_SUCCESS",
        "stream-info": {
            "stream-count": 2,
            "stream-info": [
                {"source_id": 0, "camera_id": "uniqueSensorID1", "camera_name": "front_door"},
                {"source_id": 1, "camera_id": mapped, "camera_name": "tienda"},
            ],
        },
    }


def test_get_stream_info_when_no_streams_then_empty_list(client):
    r = client.get(INFO)

    assert r.json()["stream-info"] == {"stream-count": 0, "stream-info": []}


# ---------------------------------------------------------------------------------- API keys


@pytest.mark.parametrize(("path", "name"), [(ADD, "add_file.json"), (REMOVE, "remove.json")])
def test_post_when_keys_configured_then_key_required(streams, path, name):
    client = make_client(streams, ApiSettings(api_keys=["k"]))

    assert client.post(path, content=raw(name), headers=CURL_FORM).status_code == 401
    wrong = {**CURL_FORM, "X-API-Key": "nope"}
    assert client.post(path, content=raw(name), headers=wrong).status_code == 403
    assert streams.list() == []


def test_add_when_right_key_then_added(streams):
    client = make_client(streams, ApiSettings(api_keys=["k"]))

    r = client.post(ADD, content=raw("add_file.json"), headers={**CURL_FORM, "X-API-Key": "k"})

    assert r.json() == ADD_OK


def test_get_stream_info_when_reads_protected_then_key_required(streams):
    open_reads = make_client(streams, ApiSettings(api_keys=["k"]))
    protected = make_client(streams, ApiSettings(api_keys=["k"], protect_reads=True))

    assert open_reads.get(INFO).status_code == 200
    assert protected.get(INFO).status_code == 401
    assert protected.get(INFO, headers={"X-API-Key": "bad"}).status_code == 403
    assert protected.get(INFO, headers={"X-API-Key": "k"}).status_code == 200


# ------------------------------------------------------------------- DeepStream 6.2/6.3 paths


def test_legacy_paths_when_documented_bodies_then_legacy_replies(client, streams):
    added = client.post("/stream/add", content=raw("add_file.json"), headers=CURL_FORM)
    duplicate = client.post("/stream/add", content=raw("add_file.json"), headers=CURL_FORM)
    removed = client.post("/stream/remove", content=raw("remove.json"), headers=CURL_FORM)
    unknown = client.post("/stream/remove", content=raw("remove.json"), headers=CURL_FORM)

    assert added.json() == {"status": "STREAM_ADD_SUCCESS", "reason": "NA"}
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "status": "STREAM_ADD_FAIL",
        "reason": "Duplicate Camera id, unable to add stream",
    }
    assert removed.json() == {"status": "STREAM_REMOVE_SUCCESS", "reason": "NA"}
    assert unknown.status_code == 404
    assert unknown.json()["status"] == "STREAM_REMOVE_FAIL"
    assert streams.list() == []


def test_legacy_add_when_change_wrong_then_422_legacy_shape(client):
    r = client.post("/stream/add", json=body("add_file.json", change="camera_remove"))

    assert r.status_code == 422
    assert r.json()["status"] == "STREAM_ADD_FAIL"
    assert r.json()["reason"].startswith("value.change: ")


def test_openapi_when_generated_then_documents_deepstream_bodies(client):
    schema = client.get("/openapi.json").json()

    assert {ADD, REMOVE, INFO, "/stream/add", "/stream/remove"} <= schema["paths"].keys()
    assert "StreamAddRequest" in schema["components"]["schemas"]
