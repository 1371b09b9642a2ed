"""VigilClient's model and analytics calls against an httpx.MockTransport: the requests
sent, the typed results, the errors. (tests/integration/test_client_api.py runs the same
calls against a real `vigil serve`.)"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.unit.test_client import BASE_URL, make_client, reply
from vigil_client import (
    LocalFileError,
    ModelList,
    NotFoundError,
    ValidationError,
    VigilClient,
    read_analytics_file,
)


def version_json(version: int = 2, **overrides) -> dict:
    """A VersionInfo as the server sends it."""
    data = {
        "version": version,
        "state": "READY",
        "serving": True,
        "format": "onnx",
        "sha256": "ab" * 32,
        "origin": "repository",
        "added_at": "2026-11-21T10:00:00Z",
        "signature": {
            "inputs": [{"name": "image_tensor", "dtype": "uint8", "shape": [64, 64, 3]}],
            "outputs": [{"name": "detection_boxes", "dtype": "float32", "shape": [-1, 4]}],
            "classes": 4,
        },
        "input_format": {"width": 64, "height": 64, "layout": "NHWC"},
        "parser": "ssd",
        "classes": 4,
    }
    data.update(overrides)
    return data


def swap_json(**overrides) -> dict:
    data = {
        "id": 1,
        "model": "tiny",
        "version": 3,
        "from_model": "tiny",
        "from_version": 2,
        "trigger": "rest",
        "requested_at": "2026-11-21T12:00:00.123Z",
        "state": "ok",
        "error": "",
        "duration_s": 1.25,
        "switch_s": 0.8,
        "drained_frames": 3,
    }
    data.update(overrides)
    return data


def model_list_json() -> dict:
    return {
        "serving": {"model": "tiny", "version": 2},
        "previous": [{"model": "tiny", "version": 1}],
        "swap_in_progress": False,
        "models": [
            {
                "name": "tiny",
                "format": "onnx",
                "max_batch_size": 8,
                "parameters": {},
                "loadable_here": True,
                "versions": [
                    version_json(1, serving=False, state="UNLOADED", labels=None),
                    version_json(2, labels=None),
                ],
            }
        ],
        "swaps": [swap_json(version=2, from_version=1)],
    }


# --------------------------------------------------------------------------- models


def test_list_models_parses_typed_result_and_round_trips():
    client, seen = make_client(reply(200, model_list_json()))

    listing = client.list_models()

    assert seen.last.url.path == "/api/v1/models"
    assert isinstance(listing, ModelList)
    assert (listing.serving.model, listing.serving.version) == ("tiny", 2)
    assert listing.previous[0].version == 1
    (tiny,) = listing.models
    assert tiny.serving_version is not None
    assert tiny.serving_version.version == 2
    assert tiny.versions[0].signature.inputs[0].shape == (64, 64, 3)
    assert tiny.versions[0].added_at == datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert listing.swaps[0].duration_s == 1.25
    assert listing.to_dict() == model_list_json()


def test_get_model_when_unknown_gives_servers_message():
    client, _ = make_client(reply(404, {"detail": "unknown model 'nope'; available models: tiny"}))

    with pytest.raises(NotFoundError, match="available models: tiny"):
        client.get_model("nope")


def test_upload_model_version_sends_file_and_local_checksum(tmp_path: Path):
    model = tmp_path / "v3.onnx"
    model.write_bytes(b"\x08\x07onnx-bytes")
    client, seen = make_client(reply(201, version_json(3, origin="upload:v3.onnx")))

    version = client.upload_model_version("tiny", model, version=3)

    request = seen.last
    assert (request.method, request.url.path) == ("POST", "/api/v1/models/tiny/versions")
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    body = request.content
    assert b'name="file"; filename="v3.onnx"' in body
    assert b"\x08\x07onnx-bytes" in body
    assert hashlib.sha256(model.read_bytes()).hexdigest().encode() in body
    assert b'name="version"\r\n\r\n3\r\n' in body
    assert request.extensions["timeout"]["read"] >= 300  # the server validates the model
    assert version.version == 3
    assert version.origin == "upload:v3.onnx"


def test_upload_model_version_sends_given_checksum(tmp_path: Path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    client, seen = make_client(reply(201, version_json(3)))

    client.upload_model_version("tiny", model, sha256="0" * 64)

    assert b"0" * 64 in seen.last.content
    assert b'name="version"' not in seen.last.content


def test_upload_model_version_when_file_is_missing_sends_nothing(tmp_path: Path):
    client, seen = make_client(reply(201, version_json(3)))

    with pytest.raises(LocalFileError, match="cannot read model file") as caught:
        client.upload_model_version("tiny", tmp_path / "missing.onnx")
    assert caught.value.path == tmp_path / "missing.onnx"
    assert seen.requests == []


@pytest.mark.parametrize(("version", "allow_replan"), [(3, False), ("latest", False), (4, True)])
def test_swap_model_posts_version(version, allow_replan):
    client, seen = make_client(reply(200, swap_json()))

    swap = client.swap_model("tiny", version, allow_replan=allow_replan)

    assert seen.last.url.path == "/api/v1/models/tiny/swap"
    assert json.loads(seen.last.content) == {"version": version, "allow_replan": allow_replan}
    assert (swap.from_version, swap.version, swap.state) == (2, 3, "ok")
    assert swap.requested_at == datetime(2026, 11, 21, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "printed"),
    [
        ("2026-11-21T12:00:00.123+00:00", "2026-11-21T12:00:00.123Z"),  # the lifecycle's form
        ("2026-11-21T12:00:00Z", "2026-11-21T12:00:00Z"),  # the registry's
        ("2026-11-21T13:00:00.000001+01:00", "2026-11-21T13:00:00.000001+01:00"),
        ("2026-11-21T12:00:00", "2026-11-21T12:00:00Z"),  # no zone: the server's UTC
    ],
)
def test_swap_times_keep_their_value_in_to_dict(sent, printed):
    client, _ = make_client(reply(200, swap_json(requested_at=sent)))

    assert client.swap_model("tiny", 3).to_dict()["requested_at"] == printed


def test_rollback_model_posts_and_returns_swap():
    client, seen = make_client(reply(200, swap_json(version=2, from_version=3)))

    swap = client.rollback_model("tiny", timeout_s=5)

    assert (seen.last.method, seen.last.url.path) == ("POST", "/api/v1/models/tiny/rollback")
    assert seen.last.extensions["timeout"]["read"] == 5
    assert swap.version == 2


def test_model_name_is_one_path_segment():
    client, seen = make_client(reply(404, {"detail": "nope"}))

    with pytest.raises(NotFoundError):
        client.get_model("a/b")
    assert seen.last.url.raw_path == b"/api/v1/models/a%2Fb"


# --------------------------------------------------------------------------- analytics

DOOR = {"name": "door", "line": [[160, 0], [160, 192]]}


def analytics_json(config: dict | None = None, counts: dict | None = None) -> dict:
    return {"stream": "cam", "config": config, "counts": counts or {}}


def test_get_analytics_parses_counts():
    counts = {
        "lines": {"door": {"in": {"0": 2, "2": 1}, "out": {"0": 1}}},
        "crowding": {"hall": {"count": 3, "raised": 1, "episodes": 2}},
        "dwell": {},
        "rois": {"yard": 4},
    }
    client, seen = make_client(reply(200, analytics_json({"lines": [DOOR]}, counts)))

    info = client.get_analytics("cam")

    assert seen.last.url.path == "/api/v1/streams/cam/analytics"
    assert info.counts.crossings("door", "in") == 3
    assert info.counts.crossings("door", "out") == 1
    assert info.counts.crossings("nope", "in") == 0
    assert info.counts.crowding["hall"]["episodes"] == 2
    assert info.rule_names() == {"lines": ["door"]}
    assert info.to_dict() == analytics_json({"lines": [DOOR]}, counts)


def test_get_analytics_when_stream_has_none():
    client, _ = make_client(reply(200, analytics_json()))

    info = client.get_analytics("cam")

    assert info.config is None
    assert info.rule_names() == {}
    assert info.counts.lines == {}


@pytest.mark.parametrize(("reset", "query"), [(False, b""), (True, b"reset_counts=true")])
def test_set_analytics_puts_config(reset, query):
    client, seen = make_client(reply(200, analytics_json({"lines": [DOOR]})))

    client.set_analytics("cam", {"lines": [DOOR]}, reset_counts=reset)

    assert seen.last.method == "PUT"
    assert seen.last.url.query == query
    assert json.loads(seen.last.content) == {"lines": [DOOR]}


def test_set_analytics_when_rule_is_invalid_names_the_field():
    detail = [{"loc": ["body", "lines", 0, "line"], "msg": "Value error, zero length", "type": "x"}]
    client, _ = make_client(reply(422, {"detail": detail}))

    with pytest.raises(ValidationError, match=r"lines\[0\]\.line: Value error") as caught:
        client.set_analytics("cam", {"lines": [{**DOOR, "line": [[1, 1], [1, 1]]}]})
    assert caught.value.errors[0].field == "lines[0].line"


def test_clear_analytics_sends_delete():
    client, seen = make_client(lambda request: httpx.Response(204))

    assert client.clear_analytics("cam") is None
    assert (seen.last.method, seen.last.url.path) == ("DELETE", "/api/v1/streams/cam/analytics")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("rules.yaml", "lines:\n  - name: door\n    line: [[160, 0], [160, 192]]\n"),
        ("rules.yml", "analytics:\n  lines: [{name: door, line: [[160, 0], [160, 192]]}]\n"),
        ("rules.json", json.dumps({"lines": [DOOR]})),
        ("stream.yaml", "id: cam\nurl: test://x\nanalytics: {lines: [" + json.dumps(DOOR) + "]}"),
    ],
)
def test_load_analytics_file_reads_yaml_or_json(tmp_path: Path, name, text):
    (tmp_path / name).write_text(text)
    client, seen = make_client(reply(200, analytics_json({"lines": [DOOR]})))

    client.load_analytics_file("cam", tmp_path / name, reset_counts=True)

    assert json.loads(seen.last.content) == {"lines": [DOOR]}
    assert seen.last.url.params["reset_counts"] == "true"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "lines: [\n", "not valid YAML"),
        ("bad.json", "{'lines': []}", "not valid JSON"),
        ("list.yaml", "- door\n", "found list"),
        ("empty.yaml", "", "found nothing"),
    ],
)
def test_read_analytics_file_when_invalid(tmp_path: Path, name, text, message):
    (tmp_path / name).write_text(text)

    with pytest.raises(LocalFileError, match=message) as caught:
        read_analytics_file(tmp_path / name)
    assert caught.value.path == tmp_path / name
    assert name in str(caught.value)


def test_load_analytics_file_when_missing_sends_nothing(tmp_path: Path):
    client, seen = make_client(reply(200, analytics_json()))

    with pytest.raises(LocalFileError, match="cannot read analytics config"):
        client.load_analytics_file("cam", tmp_path / "nope.yaml")
    assert seen.requests == []


def test_client_base_url_is_shared_by_every_call_group():
    vigil = VigilClient(BASE_URL + "/api/v1/")
    assert repr(vigil) == f"VigilClient('{BASE_URL}')"
    vigil.close()
