"""DeepStream's nvdsanalytics sample config imports unchanged and behaves as written.

``tests/data/deepstream/config_nvdsanalytics.txt`` holds the groups, keys and values of the
nvdsanalytics sample in DeepStream's Python apps (apps/deepstream-nvdsanalytics), coordinates
for 1920×1080.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vigil.analytics import StreamAnalytics
from vigil.analytics.nvdsanalytics import parse_nvdsanalytics
from vigil.detections import Detections

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "deepstream" / "config_nvdsanalytics.txt"


def person(track: int, x: float, y: float, scale: float = 1.0, cls: int = 0) -> Detections:
    """A person whose bottom centre is at (x, y) in 1920×1080 pixels, scaled."""
    box = np.array([[x - 30, y - 120, x + 30, y]], np.float32) * scale
    return Detections(box, np.array([0.9], np.float32), np.array([cls], np.int32),
                      np.array([track], np.int64))  # fmt: skip


def test_sample_imports_every_enabled_group_per_stream() -> None:
    configs = parse_nvdsanalytics(SAMPLE.read_text())
    assert sorted(configs) == [0, 1, 2]
    zero, one, two = configs[0], configs[1], configs[2]
    assert zero.reference_size == (1920, 1080)
    assert [(r.name, r.mode, r.classes) for r in zero.rois] == [("RF", "include", None)]
    assert [(r.name, r.mode, r.classes) for r in two.rois] == [("RF", "exclude", [0])]
    assert [(z.name, z.threshold) for z in one.crowding] == [("OC", 2)]
    (line,) = zero.lines
    assert (line.name, line.classes, line.direction, line.line) == (
        "Exit", [0], ((789, 672), (1084, 900)), ((851, 773), (1203, 732)),
    )  # fmt: skip
    assert [d.name for d in zero.directions] == ["South", "North"]


@pytest.mark.parametrize("frame", [(1920, 1080), (960, 540)])
def test_sample_line_counts_a_person_walking_its_direction_once(frame: tuple[int, int]) -> None:
    # Stream 1: stream 0 has the same line, but its ROI filter removes objects outside RF
    # (as DeepStream removes them from the metadata), and this path is outside it.
    config = parse_nvdsanalytics(SAMPLE.read_text())[1]
    engine = StreamAnalytics(config)
    scale = frame[0] / 1920
    for k in range(30):  # walks down through the line's middle, the way its direction points
        engine.update(person(1, 1000 + 4 * k, 650 + 8 * k, scale), k / 10, k, *frame)
    assert engine.counts().lines["Exit"] == {"in": {"0": 1}, "out": {}}


def test_sample_line_ignores_other_classes() -> None:
    engine = StreamAnalytics(parse_nvdsanalytics(SAMPLE.read_text())[1])
    for k in range(30):
        engine.update(person(1, 1000 + 4 * k, 650 + 8 * k, cls=2), k / 10, k, 1920, 1080)
    assert engine.counts().lines["Exit"] == {"in": {}, "out": {}}


def test_sample_roi_on_stream_0_keeps_objects_outside_it_from_being_counted() -> None:
    engine = StreamAnalytics(parse_nvdsanalytics(SAMPLE.read_text())[0])
    for k in range(30):
        engine.update(person(1, 1000 + 4 * k, 650 + 8 * k), k / 10, k, 1920, 1080)
    assert engine.counts().lines["Exit"] == {"in": {}, "out": {}}


def test_sample_roi_keeps_objects_inside_on_stream_0_and_removes_them_on_stream_2() -> None:
    configs = parse_nvdsanalytics(SAMPLE.read_text())
    inside, outside = person(1, 350, 800), person(2, 1500, 300)
    both = Detections(
        np.concatenate([inside.xyxy, outside.xyxy]), np.full(2, 0.9, np.float32),
        np.zeros(2, np.int32), np.array([1, 2], np.int64),
    )  # fmt: skip
    keep0 = StreamAnalytics(configs[0]).update(both, 0.0, 0, 1920, 1080).keep
    keep2 = StreamAnalytics(configs[2]).update(both, 0.0, 0, 1920, 1080).keep
    assert keep0.tolist() == [True, False]
    assert keep2.tolist() == [False, True]


def test_sample_overcrowding_raises_at_two_objects_on_stream_1() -> None:
    engine = StreamAnalytics(parse_nvdsanalytics(SAMPLE.read_text())[1])
    one = person(1, 350, 800)
    two = Detections(
        np.concatenate([one.xyxy, person(2, 400, 780).xyxy]), np.full(2, 0.9, np.float32),
        np.zeros(2, np.int32), np.array([1, 2], np.int64),
    )  # fmt: skip
    assert engine.update(one, 0.0, 0, 1920, 1080).events == []
    (raised,) = engine.update(two, 0.1, 1, 1920, 1080).events
    assert (raised.kind, raised.name, raised.count) == ("crowding_raised", "OC", 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[roi-filtering-stream-0]\nroi-A=1;1;5;1;1;5\n", "[property] group is missing"),
        ("[property]\nconfig-width=100\nconfig-height=100\nfoo=1\n", "[property] foo: unknown key"),
        ("[property]\nconfig-width=100\nconfig-height=100\n[bogus-stream-0]\n", "[bogus-stream-0]"),
        ("[property]\nconfig-width=100\nconfig-height=100\n[line-crossing-stream-0]\n"
         "line-crossing-A=1;2;3;4\n", "expected 8 numbers"),
        ("[property]\nconfig-width=100\nconfig-height=100\n[roi-filtering-stream-0]\n"
         "roi-A=1;1;500;1;1;5\n", "outside the frame"),
        ("[property]\nconfig-width=100\nconfig-height=100\n[roi-filtering-stream-0]\n"
         "roi-A=1;x;5;1;1;5\n", "roi-A: expected numbers"),
        ("not an ini file", "not a DeepStream analytics config"),
    ],
)  # fmt: skip
def test_malformed_config_is_refused_naming_group_and_key(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_nvdsanalytics(text)
