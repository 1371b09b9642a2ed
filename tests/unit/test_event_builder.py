"""The event builder's per-frame conversions and the event ids: the values the per-object
path gave (BBox.from_xyxy, clamped confidences, uuid4-style ids)."""

from __future__ import annotations

import dataclasses
import os
import uuid

import numpy as np
import pytest

from tests.unit import engine_fakes
from vigil.detections import Detections
from vigil.events.builder import EventBuilder
from vigil.events.ids import random_uuid, random_uuid_str
from vigil.events.object_schema import BBox
from vigil.events.schema import EventType, PlaceInfo
from vigil.frame import Frame
from vigil.stages.base import FrameResult
from vigil.track import TrackChange, TrackChangeKind

MODEL = dataclasses.replace(engine_fakes.MODEL, labels=["person", "car"])


def test_random_ids_are_version_4_uuids_and_unique() -> None:
    ids = {random_uuid_str() for _ in range(20_000)} | {str(random_uuid()) for _ in range(20_000)}
    assert len(ids) == 40_000
    for text in list(ids)[:500]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(random_uuid_str() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 4096).decode().split())
    os.close(read)
    parent = {random_uuid_str() for _ in range(4)}
    assert len(child) == 4
    assert not child & parent


def test_boxes_are_those_of_bbox_from_xyxy() -> None:
    rng = np.random.default_rng(0)
    corner = rng.uniform(-40, 1900, (500, 2))
    xyxy = np.concatenate([corner, corner + rng.uniform(0, 300, (500, 2))], 1).astype(np.float32)
    xyxy[:5] = [[-0.5, -1.0, 0.5, 0.0], [0, 0, 0, 0], [-3.7, 2.9, -0.2, 3.1], [1, 2, 3, 4],
                [1919.99, 1079.5, 1920.0, 1080.0]]  # fmt: skip
    expected = [BBox.from_xyxy(*(float(v) for v in row)) for row in xyxy]
    assert BBox.from_xyxy_rows(xyxy) == expected
    assert BBox.from_xyxy_rows(np.zeros((0, 4), np.float32)) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_boxes_refuse_a_coordinate_that_is_not_finite(bad: float) -> None:
    xyxy = np.array([[1, 2, 3, 4], [0, 0, bad, 9]], np.float32)
    with pytest.raises(ValueError, match="finite"):
        BBox.from_xyxy_rows(xyxy)


def test_events_of_a_frame_keep_types_ids_clamped_confidences_and_boxes() -> None:
    dets = Detections(
        xyxy=np.array([[10, 20, 30, 40], [-5, 1.9, 7.5, 8], [0, 0, 1, 1]], np.float32),
        confidence=np.array([1.5, np.nan, 0.25], np.float32),
        class_id=np.array([0, 1, 7], np.int32),
        tracker_id=np.array([3, 4, 5]),
    )
    frame = Frame("cam", 9, 0.3, 1_700_000_000.0, 0.0, np.zeros((8, 8, 3), np.uint8))
    result = FrameResult(frame, dets, inferred=True, model=MODEL)
    result.moving = np.array([True, False, True])
    result.track_changes = [
        TrackChange(5, TrackChangeKind.ENTRY, 7, np.zeros(4, np.float32)),
        TrackChange(8, TrackChangeKind.EXIT, 0, np.array([1, 2, 3, 4], np.float32)),
    ]
    events = EventBuilder(MODEL, PlaceInfo(id="p"), "m").build_result(result)
    assert [(e.object.id, e.event.type) for e in events] == [
        ("3", EventType.MOVING),
        ("4", EventType.STOPPED),
        ("5", EventType.ENTRY),
        ("8", EventType.EXIT),
    ]
    assert [e.object.class_name for e in events] == ["person", "car", "class_7", "person"]
    assert [e.object.confidence for e in events] == [1.0, 0.0, 0.25, 0.0]
    assert [e.object.bbox.to_full() for e in events[:2]] == [
        {"topleftx": 10, "toplefty": 20, "bottomrightx": 30, "bottomrighty": 40},
        {"topleftx": 0, "toplefty": 1, "bottomrightx": 7, "bottomrighty": 8},
    ]
    assert len({e.event.id for e in events} | {str(e.message_id) for e in events}) == 8
    assert all(e.frame_id == 9 for e in events)
