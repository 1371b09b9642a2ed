"""Tracking on real video with the real SSD: two runs give the same ids and counts.

``TEST_VTEST_FRAMES`` frames of vtest.avi (default 300; 795 is the whole clip) run twice
through the real pipeline with a line across the walkway; every event's track id and box
and every count must be identical. ``pytest -s`` prints unique ids, mean track length and
the crossings.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.support.clips import make_clip
from tests.support.sinks import RecordingSink
from vigil.config import Settings
from vigil.events.schema import Event
from vigil.jobs import run_streams
from vigil.specs import StreamSpec

pytestmark = pytest.mark.integration

FRAMES = int(os.environ.get("TEST_VTEST_FRAMES", "300"))
# vtest.avi is 768×576: a vertical line through the middle of the square people walk across
WALKWAY = {"name": "walkway", "line": [[384, 150], [384, 576]], "direction": [[0, 400], [768, 400]]}


async def _run(settings: Settings, clip: Path) -> list[Event]:
    sink = RecordingSink()
    spec = StreamSpec(id="vtest", url=clip.as_uri(), analytics={"lines": [WALKWAY]})
    result = await run_streams(settings, [spec], extra_sinks=[sink])
    assert not result.failed
    return sink.events


def _signature(events: list[Event]) -> list[tuple]:
    return [
        (e.frame_id, e.object.id, e.event.type.value, e.object.bbox.model_dump_json())
        for e in events
    ]


async def test_two_runs_on_vtest_give_identical_tracks_and_counts(
    settings, sample_video, reference_model, tmp_path
):
    clip = make_clip(sample_video, FRAMES, tmp_path / "vtest.mp4")
    first, second = await _run(settings, clip), await _run(settings, clip)
    assert _signature(first) == _signature(second)
    tracked = [e for e in first if e.event.type.value in ("entry", "moving", "stopped")]
    lengths = Counter(e.object.id for e in tracked)
    crossings = Counter(
        (e.object.class_name, e.object.analytics.lc_status[0])
        for e in first
        if e.event.type.value == "line_crossed"
    )
    print(
        f"\nvtest ({FRAMES} frames): {len(lengths)} unique ids, mean track length "
        f"{sum(lengths.values()) / len(lengths):.1f} frames, crossings {dict(crossings)}"
    )
    assert len(lengths) >= 5
    assert crossings, "people cross the walkway"
