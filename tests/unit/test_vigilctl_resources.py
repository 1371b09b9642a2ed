"""vigilctl's models, analytics and recordings commands against an httpx.MockTransport:
output, requests and exit codes (the same pattern as test_vigilctl.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import httpx
import pytest

from tests.support.fake_recordings import FakeRecordingsServer
from tests.unit.test_client_models_analytics import (
    DOOR,
    analytics_json,
    model_list_json,
    swap_json,
    version_json,
)
from tests.unit.test_vigilctl import FakeServer, run
from vigil_client import VigilClient, cli, output


def _wire(monkeypatch: pytest.MonkeyPatch, transport: httpx.BaseTransport) -> None:
    monkeypatch.delenv("VIGIL_URL", raising=False)
    monkeypatch.delenv("VIGIL_API_KEY", raising=False)
    monkeypatch.setattr(cli, "VigilClient", functools.partial(VigilClient, transport=transport))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """Canned replies, one per request (models and analytics)."""
    fake = FakeServer()
    _wire(monkeypatch, httpx.MockTransport(fake))
    return fake


@pytest.fixture
def recordings(monkeypatch: pytest.MonkeyPatch) -> FakeRecordingsServer:
    """The stateful fake of the recordings API."""
    fake = FakeRecordingsServer(streams=("cam-1",))
    _wire(monkeypatch, fake.transport())
    return fake


# --------------------------------------------------------------------------- models


def test_models_list_prints_serving_and_versions(server, capsys):
    server.reply(200, model_list_json())

    code, out, err = run(capsys, "models", "list")

    assert (code, err) == (0, "")
    assert str(server.last.url) == "http://127.0.0.1:8080/api/v1/models"
    assert out.splitlines()[0] == "serving: tiny version 2 (rollback to: tiny version 1)"
    for text in ("MODEL", "VERSION", "STATE", "SERVING", "PARSER", "UNLOADED", "READY", "ssd"):
        assert text in out
    assert "2026-11-21 10:00:00Z" in out


def test_models_list_plain_text_marks_serving_version(server, capsys, monkeypatch):
    monkeypatch.setattr(output, "Console", None)
    server.reply(200, model_list_json())

    _, out, _ = run(capsys, "models", "list")

    assert out.splitlines()[1:] == [
        "MODEL  VERSION  STATE     SERVING  FORMAT  PARSER  CLASSES  ADDED",
        "tiny   1        UNLOADED           onnx    ssd     4        2026-11-21 10:00:00Z",
        "tiny   2        READY     *        onnx    ssd     4        2026-11-21 10:00:00Z",
    ]


def test_models_list_json(server, capsys):
    server.reply(200, model_list_json())

    code, out, _ = run(capsys, "models", "list", "--json")

    assert code == 0
    assert json.loads(out) == model_list_json()


def test_models_show_prints_signature_and_labels(server, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich folds cells to fit the terminal's width
    detail = model_list_json()["models"][0]
    detail["versions"][1]["labels"] = ["background", "alpha", "beta", "gamma"]
    server.reply(200, detail)

    code, out, _ = run(capsys, "models", "show", "tiny")

    assert code == 0
    assert server.last.url.path == "/api/v1/models/tiny"
    assert out.startswith("tiny: onnx, max batch 8\n")
    assert "image_tensor uint8[64,64,3]" in out
    assert "abababababab" in out  # the checksum, shortened
    assert out.rstrip().endswith("labels (version 2): background, alpha, beta, gamma")


def test_models_upload_prints_new_version(server, capsys, tmp_path: Path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    server.reply(201, version_json(3, serving=False, origin="upload:model.onnx"))

    code, out, _ = run(capsys, "models", "upload", "tiny", str(model), "--version", "3")

    assert code == 0
    assert server.last.url.path == "/api/v1/models/tiny/versions"
    assert b'filename="model.onnx"' in server.last.content
    assert out == "added tiny version 3 (onnx, parser ssd, 4 classes, sha256 abababababab)\n"


def test_models_upload_when_file_missing_sends_nothing(server, capsys, tmp_path: Path):
    code, out, err = run(capsys, "models", "upload", "tiny", str(tmp_path / "nope.onnx"))

    assert (code, out) == (1, "")
    assert err.startswith(f"error: cannot read model file {tmp_path / 'nope.onnx'}")
    assert server.requests == []


def test_models_upload_when_server_refuses_file(server, capsys, tmp_path: Path):
    (tmp_path / "m.onnx").write_bytes(b"junk")
    server.reply(422, {"detail": "model.onnx: not a valid ONNX model: bad header"})

    code, _, err = run(capsys, "models", "upload", "tiny", str(tmp_path / "m.onnx"))

    assert code == 1
    assert err == (
        "error: invalid request: model.onnx: not a valid ONNX model: bad header (HTTP 422)\n"
    )


@pytest.mark.parametrize(("arg", "sent"), [("latest", "latest"), ("3", 3)])
def test_models_swap_sends_version_and_prints_result(server, capsys, arg, sent):
    server.reply(200, swap_json())

    code, out, _ = run(capsys, "models", "swap", "tiny", arg, "--allow-replan")

    assert code == 0
    assert json.loads(server.last.content) == {"version": sent, "allow_replan": True}
    assert out == "tiny: version 2 → 3: ok in 1.2 s\n"


def test_models_swap_when_it_failed_exits_1(server, capsys):
    server.reply(200, swap_json(state="failed", error="warm-up timed out", duration_s=None))

    code, out, _ = run(capsys, "models", "swap", "tiny", "3")

    assert code == 1
    assert out == "tiny: version 2 → 3: failed in - (warm-up timed out)\n"


def cluster_swap_json(w2_state: str = "ok", error: str = "") -> dict:
    return {
        "request": "9f0c",
        "model": "tiny",
        "version": 3,
        "complete": w2_state in ("ok", "failed"),
        "workers": [
            {"worker": "w1", "request": "9f0c", "model": "tiny", "version": 3, "state": "ok",
             "error": "", "serving": "tiny:3"},
            {"worker": "w2", "request": "9f0c", "model": "tiny", "version": 3, "state": w2_state,
             "error": error, "serving": "tiny:2"},
        ],
    }  # fmt: skip


def test_models_swap_on_a_cluster_prints_every_workers_outcome(server, capsys):
    server.reply(200, cluster_swap_json())

    code, out, _ = run(capsys, "models", "swap", "tiny", "3")

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "tiny: version 3 on every worker: ok"
    assert lines[1].split() == ["WORKER", "STATE", "SERVING", "ERROR"]
    assert lines[2].split() == ["w1", "ok", "tiny:3", "-"]


@pytest.mark.parametrize(("w2_state", "code"), [("failed", 1), ("pending", 1)])
def test_models_swap_on_a_cluster_when_a_worker_failed_or_is_pending_exits_1(
    server, capsys, w2_state, code
):
    server.reply(202 if w2_state == "pending" else 200, cluster_swap_json(w2_state, "no v3"))

    assert run(capsys, "models", "swap", "tiny", "3")[0] == code


def test_models_swap_when_incompatible(server, capsys):
    server.reply(409, {"detail": "version 4 is incompatible: classes: 4 → 5 labels"})

    code, _, err = run(capsys, "models", "swap", "tiny", "4")

    assert code == 1
    assert err == "error: version 4 is incompatible: classes: 4 → 5 labels (HTTP 409)\n"


@pytest.mark.parametrize("version", ["x", "0", "-1", "2.5"])
def test_models_swap_when_version_is_not_a_number_or_latest(server, capsys, version):
    code, _, err = run(capsys, "models", "swap", "tiny", version)

    assert code == 2
    assert "VERSION" in err
    assert server.requests == []


def test_models_rollback_json(server, capsys):
    server.reply(200, swap_json(version=2, from_version=3))

    code, out, _ = run(capsys, "models", "rollback", "tiny", "--json")

    assert code == 0
    assert server.last.url.path == "/api/v1/models/tiny/rollback"
    assert json.loads(out) == swap_json(version=2, from_version=3)


# --------------------------------------------------------------------------- analytics

COUNTS = {
    "lines": {"door": {"in": {"0": 2, "2": 1}, "out": {"0": 1}}},
    "crowding": {"hall": {"count": 3, "raised": 1, "episodes": 2}},
    "dwell": {"bench": {"inside": 1, "exceeded": 4}},
    "rois": {},
}


def test_analytics_show_prints_rules_and_counts(server, capsys):
    config = {"lines": [DOOR], "crowding": [{"name": "hall"}], "dwell": [{"name": "bench"}]}
    server.reply(200, analytics_json(config, COUNTS))

    code, out, _ = run(capsys, "analytics", "show", "cam")

    assert code == 0
    assert server.last.url.path == "/api/v1/streams/cam/analytics"
    lines = out.splitlines()
    assert lines[0] == "cam: lines: door; crowding: hall; dwell: bench"
    for text in ("LINE", "door", "in 0=2 2=1, out 0=1", "CROWDING ZONE", "EPISODES", "yes"):
        assert text in out
    assert "DWELL ZONE" in out
    assert "ROI" not in out  # no ROI rules, no ROI table


def test_analytics_show_plain_text_sums_classes(server, capsys, monkeypatch):
    monkeypatch.setattr(output, "Console", None)
    server.reply(200, analytics_json({"lines": [DOOR]}, {"lines": COUNTS["lines"]}))

    _, out, _ = run(capsys, "analytics", "show", "cam")

    assert out.splitlines() == [
        "cam: lines: door",
        "LINE  IN  OUT  BY CLASS",
        "door  3   1    in 0=2 2=1, out 0=1",
    ]


def test_analytics_show_when_stream_has_none(server, capsys):
    server.reply(200, analytics_json())

    assert run(capsys, "analytics", "show", "cam") == (0, "cam: no analytics\n", "")


def test_analytics_show_json(server, capsys):
    server.reply(200, analytics_json({"lines": [DOOR]}, COUNTS))

    _, out, _ = run(capsys, "analytics", "show", "cam", "--json")

    assert json.loads(out) == analytics_json({"lines": [DOOR]}, COUNTS)


def test_analytics_load_puts_yaml_file(server, capsys, tmp_path: Path):
    rules = tmp_path / "door.yaml"
    rules.write_text("lines:\n  - name: door\n    line: [[160, 0], [160, 192]]\n")
    server.reply(200, analytics_json({"lines": [DOOR]}))

    code, out, _ = run(capsys, "analytics", "load", "cam", str(rules), "--reset-counts")

    assert code == 0
    assert server.last.method == "PUT"
    assert server.last.url.params["reset_counts"] == "true"
    assert json.loads(server.last.content) == {"lines": [DOOR]}
    assert out == f"cam: loaded lines: door from {rules}\n"


def test_analytics_load_when_rule_is_invalid_names_field(server, capsys, tmp_path: Path):
    (tmp_path / "r.json").write_text(json.dumps({"lines": [{"name": "door"}]}))
    detail = [{"loc": ["body", "lines", 0, "line"], "msg": "Field required", "type": "missing"}]
    server.reply(422, {"detail": detail})

    code, _, err = run(capsys, "analytics", "load", "cam", str(tmp_path / "r.json"))

    assert code == 1
    assert err == "error: invalid request: lines[0].line: Field required (HTTP 422)\n"


def test_analytics_load_when_file_is_not_yaml_sends_nothing(server, capsys, tmp_path: Path):
    (tmp_path / "r.yaml").write_text("lines: [\n")

    code, _, err = run(capsys, "analytics", "load", "cam", str(tmp_path / "r.yaml"))

    assert code == 1
    assert err.startswith(f"error: {tmp_path / 'r.yaml'}: not valid YAML")
    assert server.requests == []


def test_analytics_clear(server, capsys):
    server.replies.append(lambda request: httpx.Response(204))

    assert run(capsys, "analytics", "clear", "cam") == (0, "cam: analytics removed\n", "")
    assert server.last.method == "DELETE"


# --------------------------------------------------------------------------- recordings

CLIP = bytes(range(256)) * 16


def test_recordings_start_then_extend_then_stop(recordings, capsys):
    code, out, _ = run(capsys, "recordings", "start", "cam-1", "--duration", "20")
    assert (code, out) == (0, "started recording rec-1 of cam-1 (until 2026-11-21 12:00:20Z)\n")
    assert json.loads(recordings.requests[-1].content) == {"duration_s": 20.0}

    code, out, _ = run(capsys, "recordings", "start", "cam-1")
    assert (code, out) == (0, "extended recording rec-1 of cam-1 (until stopped)\n")

    code, out, _ = run(capsys, "recordings", "stop", "cam-1")
    assert (code, out) == (0, "stopped recording rec-1 of cam-1 (complete, 5.0 s, 100 B)\n")


def test_recordings_start_sends_times_as_given(recordings, capsys):
    argv = ["--start", "2026-11-21T12:00:00Z", "--end", "2026-11-21T12:01:00Z"]
    argv += ["--pre-roll", "5", "--post-roll", "2.5", "--json"]

    code, out, _ = run(capsys, "recordings", "start", "cam-1", *argv)

    assert code == 0
    assert json.loads(recordings.requests[-1].content) == {
        "start": "2026-11-21T12:00:00Z",
        "end": "2026-11-21T12:01:00Z",
        "pre_roll_s": 5.0,
        "post_roll_s": 2.5,
    }
    assert json.loads(out)["id"] == "rec-1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0"], "duration_s: Input should be greater than 0 (HTTP 422)"),
        (["--start", "noon"], "start: Input should be a valid datetime (HTTP 422)"),
    ],
)
def test_recordings_start_when_times_are_bad_names_field(recordings, capsys, argv, message):
    code, _, err = run(capsys, "recordings", "start", "cam-1", *argv)

    assert code == 1
    assert err == f"error: invalid request: {message}\n"


def test_recordings_stop_when_nothing_records(recordings, capsys):
    code, _, err = run(capsys, "recordings", "stop", "cam-1")

    assert code == 1
    assert err == "error: stream 'cam-1' is not recording (HTTP 409)\n"


def test_recordings_list_plain_text_and_filters(recordings, capsys, monkeypatch):
    monkeypatch.setattr(output, "Console", None)
    recordings.add_clip("cam-1", CLIP, minutes=0)
    recordings.add_clip("cam-1", CLIP * 100, minutes=5, trigger={"kind": "rule", "rule": "door"})

    code, out, _ = run(
        capsys, "recordings", "list", "--stream", "cam-1", "--since", "2026-11-21T00:00:00Z"
    )

    assert code == 0
    assert dict(recordings.requests[-1].url.params) == {
        "stream_id": "cam-1",
        "since": "2026-11-21T00:00:00Z",
    }
    assert out.splitlines() == [
        "ID     STREAM  STATE     START                 DURATION  SIZE       TRIGGER",
        "rec-2  cam-1   complete  2026-11-21 12:05:00Z  20.0 s    400.0 KiB  rule:door",
        "rec-1  cam-1   complete  2026-11-21 12:00:00Z  20.0 s    4.0 KiB    rest",
    ]


def test_recordings_list_when_none_and_json(recordings, capsys):
    assert run(capsys, "recordings", "list") == (0, "no recordings\n", "")
    clip = recordings.add_clip("cam-1", CLIP)

    _, out, _ = run(capsys, "recordings", "list", "--json")

    assert json.loads(out) == [clip.to_json()]


def test_recordings_list_when_state_is_unknown_is_a_usage_error(recordings, capsys):
    code, _, err = run(capsys, "recordings", "list", "--state", "bogus")

    assert code == 2
    assert "invalid choice" in err
    assert recordings.requests == []


def test_recordings_show(recordings, capsys):
    recordings.add_clip("cam-1", CLIP)

    code, out, _ = run(capsys, "recordings", "show", "rec-1")

    assert code == 0
    assert out.splitlines() == [
        "id        rec-1",
        "stream    cam-1",
        "state     complete",
        "start     2026-11-21 12:00:00Z",
        "end       2026-11-21 12:00:20Z",
        "duration  20.0 s",
        "size      4.0 KiB",
        "file      mp4, h264: /api/v1/recordings/rec-1/file",
        "trigger   rest",
    ]


def test_recordings_download_resumes_after_interruption(recordings, capsys, tmp_path: Path):
    recordings.add_clip("cam-1", CLIP)
    recordings.break_after = 1000
    dest = tmp_path / "clip.mp4"

    code, _, err = run(capsys, "recordings", "download", "rec-1", "-o", str(dest))
    assert code == 1
    assert "connection reset by peer" in err
    assert (tmp_path / "clip.mp4.part").stat().st_size == 1000

    code, out, _ = run(capsys, "recordings", "download", "rec-1", "-o", str(dest))

    assert code == 0
    assert out == f"saved rec-1 to {dest} (4.0 KiB; resumed after 1000 B)\n"
    assert dest.read_bytes() == CLIP


def test_recordings_download_into_directory(recordings, capsys, tmp_path: Path):
    recordings.add_clip("cam-1", CLIP)

    code, out, _ = run(capsys, "recordings", "download", "rec-1", "--output", str(tmp_path))

    assert code == 0
    assert out == f"saved rec-1 to {tmp_path / 'rec-1.mp4'} (4.0 KiB)\n"
    assert (tmp_path / "rec-1.mp4").read_bytes() == CLIP


def test_recordings_download_while_recording_says_so(recordings, capsys, tmp_path: Path):
    run(capsys, "recordings", "start", "cam-1")
    recordings.clips["rec-1"].data = CLIP[:1024]

    code, out, _ = run(capsys, "recordings", "download", "rec-1", "-o", str(tmp_path / "a.mp4"))

    assert code == 0
    assert out == (
        f"saved rec-1 to {tmp_path / 'a.mp4'} (1.0 KiB; still recording: this is what was "
        "written so far)\n"
    )


def test_recordings_rm(recordings, capsys):
    run(capsys, "recordings", "start", "cam-1")

    code, _, err = run(capsys, "recordings", "rm", "rec-1")
    assert (code, err) == (1, "error: recording 'rec-1' is still recording (HTTP 409)\n")

    run(capsys, "recordings", "stop", "cam-1")
    assert run(capsys, "recordings", "delete", "rec-1") == (0, "deleted recording rec-1\n", "")
    assert recordings.clips == {}


@pytest.mark.parametrize(
    "argv", [["recordings", "show", ""], ["models", "show", ""], ["analytics", "show", ""]]
)
def test_empty_id_is_a_usage_error_not_a_request(server, capsys, argv):
    code, _, err = run(capsys, *argv)

    assert code == 2
    assert err.startswith("error: ")
    assert "must not be empty" in err
    assert server.requests == []


def test_help_lists_every_command(server, capsys):
    code, out, _ = run(capsys, "--help")

    assert code == 0
    for command in ("streams", "models", "analytics", "recordings", "health", "ready"):
        assert command in out
