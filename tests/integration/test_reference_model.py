"""The reference path: real vtest.avi → real Triton → real SSD → nvmsgconv events."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from tests.support.sinks import RecordingSink
from vigil.events.schema import FULL_SCHEMA_PATH
from vigil.jobs import file_spec, run_streams
from vigil.pipeline.stream_state import StreamState

pytestmark = pytest.mark.integration

VTEST_FRAMES, VTEST_W, VTEST_H = 795, 768, 576


async def test_ssd_on_vtest_detects_people_in_most_frames_with_valid_events(
    settings, sample_video, reference_model
):
    recorder = RecordingSink()
    # untracked: every frame's detections become events (the per-frame checks below)
    untracked = settings.model_copy(
        update={"tracking": settings.tracking.model_copy(update={"enabled": False})}
    )
    result = await run_streams(
        untracked,
        [file_spec("vtest", str(sample_video))],
        extra_sinks=[recorder],
    )

    status = result.streams["vtest"]
    assert status.state is StreamState.STOPPED, status.reason
    processed = status.stats.frames_processed
    assert processed >= 0.95 * VTEST_FRAMES, f"only {processed}/{VTEST_FRAMES} frames processed"
    assert status.stats.frames_dropped == 0, "a file source must not drop frames"

    frames_with_person = {e.frame_id for e in recorder.events if e.object.class_name == "person"}
    share = len(frames_with_person) / processed
    assert share >= 0.80, f"person detected in only {share:.0%} of frames"

    validator = Draft202012Validator(json.loads(FULL_SCHEMA_PATH.read_text()))
    lines = settings.events.jsonl_path.read_text().splitlines()
    assert len(lines) == result.events_written == len(recorder.events)
    message_ids = set()
    for line in lines:
        event = json.loads(line)
        errors = [e.message for e in validator.iter_errors(event)]
        assert not errors, f"event does not match the nvmsgconv full schema: {errors}"
        bbox = event["object"]["bbox"]
        assert 0 <= bbox["topleftx"] <= bbox["bottomrightx"] < VTEST_W, bbox
        assert 0 <= bbox["toplefty"] <= bbox["bottomrighty"] < VTEST_H, bbox
        assert event["sensor"]["id"] == "vtest"
        assert event["analyticsModule"]["description"] == reference_model
        message_ids.add(event["messageid"])
    assert len(message_ids) == len(lines), "messageid must be unique"
