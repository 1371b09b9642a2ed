"""VigilClient and vigilctl against a real `vigil serve` (with its real Triton): the model
registry (list, show, upload, swap, rollback), a stream's analytics (show, load, clear), and
recordings of a real RTSP camera (start, extend, stop, list, show, download with resume
through real HTTP ranges, delete).

vigilctl runs in this process (``cli.main``) so its output can be read; it still talks HTTP
to the service like any other client.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import av
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.scenes import DOOR
from tests.support.swap_models import VERSION_1, tiny_detector, tiny_repository
from tests.support.synthetic_detector import NAME, write_detector
from vigil_client import (
    ConflictError,
    NotFoundError,
    RecordingInfo,
    ValidationError,
    VigilClient,
    cli,
    read_analytics_file,
)

pytestmark = pytest.mark.integration


def vigilctl(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    """Run vigilctl against ``url``; returns (exit status, stdout, stderr)."""
    capsys.readouterr()  # what came before is not this command's
    code = cli.main(["--url", url, "--timeout", "60", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich would fold table cells at 80


def test_models_through_client_and_vigilctl(tmp_path: Path, capsys) -> None:
    repo = tiny_repository(tmp_path / "repo")
    config = {
        "triton": {"model_repository": str(repo)},
        "model": {"name": "tiny"},
        "data_dir": str(tmp_path / "data"),
        "streams": [{"id": "cam-1", "url": "test://pattern?width=320&height=240&fps=10"}],
    }
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with ServiceProcess(run_dir, config) as svc, VigilClient(svc.url, timeout_s=60) as vigil:
        listing = vigil.list_models()
        assert (listing.serving.model, listing.serving.version) == ("tiny", 2)
        (tiny,) = listing.models
        assert [v.version for v in tiny.versions] == [1, 2]
        assert tiny.serving_version is not None
        assert tiny.serving_version.state == "READY"
        assert tiny.versions[1].signature.inputs[0].shape == (64, 64, 3)
        assert tiny.versions[1].labels is None  # the listing leaves labels out
        assert vigil.get_model("tiny").versions[0].labels == (
            "background",
            "alpha",
            "beta",
            "gamma",
        )
        with pytest.raises(NotFoundError, match="available models: tiny"):
            vigil.get_model("nope")

        code, out, err = vigilctl(capsys, svc.url, "models", "list")
        assert (code, err) == (0, "")
        assert out.splitlines()[0] == "serving: tiny version 2"
        assert "READY" in out

        # upload: the client sends the file's checksum, the server checks and keeps it
        good = tiny_detector(tmp_path / "v3.onnx", VERSION_1)
        code, out, err = vigilctl(capsys, svc.url, "models", "upload", "tiny", str(good))
        assert (code, err) == (0, "")
        assert out.startswith("added tiny version 3 (onnx, parser ssd, 4 classes")
        v3 = vigil.get_model("tiny").versions[2]
        assert v3.sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
        assert v3.origin == "upload:v3.onnx"
        corrupt = tmp_path / "corrupt.onnx"
        corrupt.write_bytes(os.urandom(2048))
        with pytest.raises(ValidationError, match="not a valid ONNX model"):
            vigil.upload_model_version("tiny", corrupt)
        with pytest.raises(ValidationError, match="sha256 mismatch"):
            vigil.upload_model_version("tiny", good, sha256="0" * 64)

        # swap with vigilctl, refuse a second one, roll back with the client
        code, out, err = vigilctl(capsys, svc.url, "models", "swap", "tiny", "3")
        assert (code, err) == (0, "")
        assert out.startswith("tiny: version 2 → 3: ok in ")
        assert vigil.list_models().serving.version == 3
        with pytest.raises(ConflictError, match="already serving"):
            vigil.swap_model("tiny", 3)
        code, _, err = vigilctl(capsys, svc.url, "models", "swap", "tiny", "99")
        assert code == 1
        assert err.startswith("error: ")
        assert "(HTTP 404)" in err
        swap = vigil.rollback_model("tiny")
        assert (swap.state, swap.from_version, swap.version) == ("ok", 3, 2)
        assert swap.duration_s is not None
        assert swap.duration_s > 0

        code, out, _ = vigilctl(capsys, svc.url, "models", "list", "--json")
        assert code == 0
        printed = json.loads(out)
        assert printed["serving"] == {"model": "tiny", "version": 2}
        assert [s["trigger"] for s in printed["swaps"]] == ["rest", "rest"]
        assert printed == vigil.list_models().to_dict()


def test_analytics_through_client_and_vigilctl(tmp_path: Path, crossing_clip: Path, capsys):
    repository = tmp_path / "repository"
    write_detector(repository, 320, 192)
    config = {"triton": {"model_repository": str(repository)}, "model": {"name": NAME}}
    rules = tmp_path / "door.yaml"
    rules.write_text(
        "# the door of the lobby\nlines:\n"
        "  - name: door\n    line: [[160, 0], [160, 192]]\n    direction: [[0, 100], [320, 100]]\n"
    )
    with ServiceProcess(tmp_path, config) as svc, VigilClient(svc.url, timeout_s=30) as vigil:
        vigil.add_stream("cam", crossing_clip.as_uri(), analytics=read_analytics_file(rules))

        def finished() -> bool:
            s = vigil.get_stream("cam")
            return s.state == "stopped" and s.frames_processed >= s.frames_decoded > 0

        assert wait_for(finished, 60), svc.log()[-2000:]
        info = vigil.get_analytics("cam")
        assert info.rule_names() == {"lines": ["door"]}
        assert info.config is not None
        assert info.config["lines"][0]["hysteresis"] == 0.1  # the server's default, filled in
        assert (info.counts.crossings("door", "in"), info.counts.crossings("door", "out")) == (1, 1)

        code, out, err = vigilctl(capsys, svc.url, "analytics", "show", "cam")
        assert (code, err) == (0, "")
        assert out.splitlines()[0] == "cam: lines: door"
        row = next(line for line in out.splitlines() if line.startswith("door"))
        assert row.split()[:3] == ["door", "1", "1"]

        # hot reload from a JSON file: the kept rule keeps its counts, the new one starts at 0
        two = tmp_path / "two.json"
        two.write_text(json.dumps({"lines": [DOOR, {**DOOR, "name": "exit"}]}))
        code, out, err = vigilctl(capsys, svc.url, "analytics", "load", "cam", str(two))
        assert (code, out, err) == (0, f"cam: loaded lines: door, exit from {two}\n", "")
        counts = vigil.get_analytics("cam").counts
        assert counts.crossings("door", "in") == 1
        assert counts.lines["exit"] == {"in": {}, "out": {}}
        code, out, _ = vigilctl(capsys, svc.url, "analytics", "load", "cam", str(two), "--json")
        assert code == 0
        assert json.loads(out)["counts"]["lines"]["door"]["in"] == {"0": 1}
        info = vigil.load_analytics_file("cam", two, reset_counts=True)
        assert info.counts.crossings("door", "in") == 0

        # a bad rule is refused naming the field, and changes nothing
        bad = tmp_path / "bad.yaml"
        bad.write_text("lines:\n  - {name: door, line: [[4, 4], [4, 4]]}\n")
        code, _, err = vigilctl(capsys, svc.url, "analytics", "load", "cam", str(bad))
        assert code == 1
        assert err.startswith("error: invalid request: lines[0]")
        assert "zero length" in err
        assert vigil.get_analytics("cam").rule_names() == {"lines": ["door", "exit"]}
        with pytest.raises(NotFoundError):
            vigil.load_analytics_file("nope", rules)

        code, out, _ = vigilctl(capsys, svc.url, "analytics", "clear", "cam")
        assert (code, out) == (0, "cam: analytics removed\n")
        assert vigilctl(capsys, svc.url, "analytics", "show", "cam")[1] == "cam: no analytics\n"


def _frames(path: Path) -> int:
    with av.open(str(path)) as f:
        return sum(1 for _ in f.decode(video=0))


def test_recordings_through_client_and_vigilctl(tmp_path: Path, capsys) -> None:
    reason = rtsp_server_available()
    if reason:
        pytest.fail(f"GStreamer RTSP server unavailable (run `make test`): {reason}")
    config = {
        "triton": {"model_repository": str(tiny_repository(tmp_path / "repo"))},
        "model": {"name": "tiny"},
        "recording": {"directory": str(tmp_path / "recordings"), "pre_roll_s": 1.0,
                      "post_roll_s": 0.0},
        "sources": {"open_timeout_s": 5, "read_timeout_s": 3},
        "data_dir": str(tmp_path / "data"),
    }  # fmt: skip
    with (
        RtspCamera(fps=10, width=320, height=240) as camera,
        ServiceProcess(tmp_path, config) as svc,
        VigilClient(svc.url, timeout_s=30) as vigil,
    ):
        vigil.add_stream("cam", camera.url)
        assert wait_for(lambda: vigil.get_stream("cam").frames_processed > 20, 60), svc.log()[
            -2000:
        ]

        clip = vigil.start_recording("cam", duration_s=2)
        assert (clip.state, clip.extended) == ("recording", False)
        code, out, err = vigilctl(capsys, svc.url, "recordings", "start", "cam", "--duration", "3")
        assert (code, err) == (0, "")
        assert out.startswith(f"extended recording {clip.id} of cam (until ")
        with pytest.raises(NotFoundError):
            vigil.start_recording("nope")
        with pytest.raises(ValidationError, match="end: must be after start"):
            vigil.start_recording("cam", start="2026-01-01T00:00:10Z", end="2026-01-01T00:00:00Z")
        with pytest.raises(ConflictError, match="still being written"):
            vigil.delete_recording(clip.id)

        # a clip being written downloads as far as it is written
        assert wait_for(lambda: vigil.get_recording(clip.id).size_bytes > 0, 30)
        early = vigil.download_recording(clip.id, tmp_path / "early.mp4")
        if vigil.get_recording(clip.id).state == "recording":
            assert early.complete is False
        assert early.size_bytes > 0

        assert wait_for(lambda: vigil.get_recording(clip.id).state == "complete", 30)
        with pytest.raises(ConflictError):
            vigil.stop_recording("cam")
        done = vigil.get_recording(clip.id)
        assert isinstance(done, RecordingInfo)
        assert (done.codec, done.container, done.trigger.kind) == ("h264", "mp4", "rest")
        assert done.duration_s is not None
        assert 3.5 <= done.duration_s <= 7.0, done  # 3 s, the pre-roll, a keyframe's slack

        code, out, _ = vigilctl(capsys, svc.url, "recordings", "list", "--stream", "cam")
        assert code == 0
        assert [line.split()[:3] for line in out.splitlines()[1:]] == [[clip.id, "cam", "complete"]]
        code, out, _ = vigilctl(capsys, svc.url, "recordings", "list", "--json")
        assert json.loads(out) == [done.to_dict()]
        code, out, _ = vigilctl(capsys, svc.url, "recordings", "show", clip.id)
        assert f"file      mp4, h264: /api/v1/recordings/{clip.id}/file" in out.splitlines()

        # download whole, then resume from a partial file through real Range requests
        whole = vigil.download_recording(clip.id, tmp_path)
        assert whole.path == tmp_path / f"{clip.id}.mp4"
        assert whole.complete
        assert whole.size_bytes == done.size_bytes
        assert _frames(whole.path) >= 30
        data = whole.path.read_bytes()
        resumed = tmp_path / "resumed.mp4"
        for kept in (1000, len(data), len(data) + 10):  # 206, 416 complete, 416 too long
            Path(f"{resumed}.part").write_bytes(data[:kept] + b"x" * max(0, kept - len(data)))
            code, out, err = vigilctl(
                capsys, svc.url, "recordings", "download", clip.id, "-o", str(resumed)
            )
            assert (code, err) == (0, "")
            assert resumed.read_bytes() == data, kept
            assert ("resumed after" in out) == (kept <= len(data)), out
            assert not Path(f"{resumed}.part").exists()

        code, out, _ = vigilctl(capsys, svc.url, "recordings", "rm", clip.id)
        assert (code, out) == (0, f"deleted recording {clip.id}\n")
        with pytest.raises(NotFoundError):
            vigil.get_recording(clip.id)
        assert vigil.list_recordings(stream_id="cam") == []
