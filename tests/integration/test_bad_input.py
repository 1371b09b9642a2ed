"""Bad input gets a clear error and never stops the other streams."""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import assert_clean, run_vigil
from vigil.jobs import file_spec, run_streams
from vigil.pipeline.stream_state import StreamState

pytestmark = pytest.mark.integration


async def test_corrupt_and_missing_files_fail_their_stream_only(
    settings, short_clip, corrupt_video, tmp_path, reference_model
):
    missing = tmp_path / "nope.mp4"
    result = await run_streams(
        settings,
        [
            file_spec("good", str(short_clip)),
            file_spec("corrupt", str(corrupt_video)),
            file_spec("missing", str(missing)),
        ],
    )
    good, corrupt, gone = (result.streams[k] for k in ("good", "corrupt", "missing"))
    assert good.state is StreamState.STOPPED
    assert good.stats.frames_processed == 40
    assert corrupt.state is StreamState.ERROR
    assert str(corrupt_video) in corrupt.reason
    assert "Invalid data" in corrupt.reason or "cannot open" in corrupt.reason
    assert gone.state is StreamState.ERROR
    assert gone.reason == f"{missing}: no such file"
    sensors = {
        json.loads(line)["sensor"]["id"]
        for line in settings.events.jsonl_path.read_text().splitlines()
    }
    assert sensors == {"good"}


def test_cli_exit_code_says_a_stream_failed(tmp_path, short_clip, corrupt_video, reference_model):
    code, out, pid = run_vigil(
        [
            "run",
            "--source",
            f"good={short_clip}",
            "--source",
            f"bad={corrupt_video}",
            "--out",
            str(tmp_path / "e.jsonl"),
            "--no-progress",
        ],
        tmp_path,
    )
    assert code == 1, out
    assert "stream bad failed" in out
    assert str(corrupt_video.name) in out
    assert_clean(tmp_path, pid)


def test_cli_unknown_model_lists_available_models(tmp_path, short_clip, reference_model):
    code, out, pid = run_vigil(
        ["run", "--source", str(short_clip), "--model", "yolo9000", "--no-progress"], tmp_path
    )
    assert code == 2, out
    assert "unknown model 'yolo9000'" in out
    assert f"available models: {reference_model}" in out
    assert_clean(tmp_path, pid)
