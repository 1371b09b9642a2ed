"""ByteTracker gives exactly the results of the tracker it replaced (commit 1a1230a).

Three checks, on the same kinds of input:

* step by step against the frozen reference implementation
  (``tests/support/tracker_reference.py``): crowds with births, deaths, crossings, occlusions,
  weak and missed detections, false boxes, skipped frames, clock glitches and a reset, under
  the shipped settings and edge settings (hypothesis draws more);
* against outputs recorded from that implementation (``tests/data/tracking/golden.json.gz``,
  compressed because every GPU staging carries the tree), so neither the reference nor the
  environment can drift unnoticed;
* on the tracking accuracy benchmark's input (TUD-Stadtmitte ground truth made into noisy
  detections, ``bench/tracking_bench.py``), when its ground truth file is available: from
  PyPI ``motmetrics`` (``make bench-tracking`` installs it) or ``TEST_MOT_DATA`` (a folder
  holding ``TUD-Stadtmitte/gt.txt``).

Same means: the same ids, classes, scores, data columns, predicted flags, motion states and
changes (id, kind, class) on every frame and the same active ids after it; boxes equal to
within ``BOX_ATOL`` pixels (they are in fact bitwise equal with NumPy's OpenBLAS; another
LAPACK may round the Kalman gain differently in the last bit).

Re-record the golden file (from the reference implementation, never from the tracker under
test): ``PYTHONPATH=service python -m tests.unit.test_tracker_equivalence``.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.track_sequences import (
    BOX_ATOL,
    TrackerStep,
    assert_same_output,
    crowd,
    step_tracker,
)
from tests.support.tracker_reference import ReferenceTracker
from vigil.detections import Detections
from vigil.track import ByteTracker, TrackerOutput, TrackerSettings

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "tracking" / "golden.json.gz"
GOLDEN_DECIMALS = 2  # boxes are recorded to 0.01 px
SHIPPED = TrackerSettings(enabled=True)

# name -> (settings changes, sequence): the golden file records these.
GOLDEN_CASES: dict[str, tuple[dict[str, Any], Callable[[], list[TrackerStep]]]] = {
    "crowd-30fps": ({}, lambda: crowd(7, frames=150, on_screen=8)),
    "crowd-10fps-interval3": (
        {},
        lambda: crowd(8, frames=150, fps=10, on_screen=8, interval=3, attributes=True),
    ),
    "crowd-any-class-slow-confirm": (
        {"per_class": False, "confirm_s": 0.2, "lost_track_s": 0.5, "motion_hold_s": 0.1},
        lambda: crowd(9, frames=150, on_screen=8, classes=3),
    ),
}


# --- running and comparing ---------------------------------------------------------------------


def _assert_same_run(steps: Sequence[TrackerStep], tracker_settings: TrackerSettings) -> int:
    """Both trackers step by step; returns how many rows were compared."""
    new, ref = ByteTracker(tracker_settings), ReferenceTracker(tracker_settings)
    rows = 0
    for k, step in enumerate(steps):
        try:
            expected = step_tracker(ref, step)
        except Exception as e:  # the reference's failures are part of its behaviour
            with pytest.raises(type(e)):
                step_tracker(new, step)
            return rows
        assert_same_output(step_tracker(new, step), expected, f"step {k} (t={step.time_s:.3f})")
        assert new.active_ids == ref.active_ids, f"step {k}: active ids"
        rows += len(expected.detections)
    return rows


# --- recorded outputs --------------------------------------------------------------------------


def _record(outputs: Sequence[TrackerOutput], *, boxes: bool = True) -> list[list[Any]]:
    """Per frame: ids, boxes (rounded, flat; or their sum), changes, moving as 0/1."""
    frames = []
    for out in outputs:
        d = out.detections
        assert d.tracker_id is not None
        xyxy = d.xyxy.astype(np.float64)
        box_record = (
            np.round(xyxy, GOLDEN_DECIMALS).ravel().tolist()
            if boxes
            else round(float(xyxy.sum()), GOLDEN_DECIMALS)
        )
        changes = [[c.track_id, c.kind.value, c.class_id] for c in out.changes]
        moving = "".join("1" if m else "0" for m in out.moving.tolist())
        frames.append([d.tracker_id.tolist(), box_record, changes, moving])
    return frames


def _assert_matches_record(outputs: Sequence[TrackerOutput], recorded: list, name: str) -> None:
    mine = _record(outputs, boxes=isinstance(recorded[0][1], list))
    assert len(mine) == len(recorded), name
    for k, (got, want) in enumerate(zip(mine, recorded, strict=True)):
        where = f"{name}, frame {k}"
        assert got[0] == want[0], f"{where}: ids"
        assert got[2] == want[2], f"{where}: changes"
        assert got[3] == want[3], f"{where}: moving"
        # recorded to 0.01 px: a box may differ by half of that plus float noise
        tolerance = 0.5 * 10**-GOLDEN_DECIMALS + BOX_ATOL
        if isinstance(want[1], list):
            np.testing.assert_allclose(got[1], want[1], rtol=0, atol=tolerance, err_msg=where)
        else:  # the sum of up to ~40 boxes' coordinates, rounded
            assert got[1] == pytest.approx(want[1], abs=tolerance + 160 * BOX_ATOL), where


def _run(tracker: Any, steps: Sequence[TrackerStep]) -> list[TrackerOutput]:
    return [step_tracker(tracker, step) for step in steps]


# --- the tracking benchmark's input -----------------------------------------------------------


def _mot_data() -> Path | None:
    """Folder with ``TUD-Stadtmitte/gt.txt``: ``TEST_MOT_DATA``, else motmetrics' own data."""
    if folder := os.environ.get("TEST_MOT_DATA"):
        return Path(folder)
    spec = importlib.util.find_spec("motmetrics")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _tud_sequence(seed: int) -> list[TrackerStep] | None:
    """The benchmark's detections for ``seed``, as tracker steps (25 fps, class 0)."""
    data = _mot_data()
    if data is None or not (data / "TUD-Stadtmitte" / "gt.txt").is_file():
        return None
    spec = importlib.util.spec_from_file_location(
        "tracking_bench", ROOT / "bench" / "tracking_bench.py"
    )
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    gt = bench.read_mot(str(data / "TUD-Stadtmitte" / "gt.txt"))
    steps = []
    for frame, rows in sorted(bench.noisy_detections(gt, seed).items()):
        dets = Detections(
            rows[:, :4].astype(np.float32),
            rows[:, 4].astype(np.float32),
            np.zeros(len(rows), np.int32),
        )
        steps.append(TrackerStep((frame - 1) / bench.FPS, dets))
    return steps


# --- tests -------------------------------------------------------------------------------------


def _golden() -> dict[str, Any]:
    return json.loads(gzip.decompress(GOLDEN.read_bytes()))


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_tracker_reproduces_recorded_outputs_of_the_replaced_tracker(name: str) -> None:
    changes, sequence = GOLDEN_CASES[name]
    steps = sequence()
    tracker_settings = SHIPPED.model_copy(update=changes)
    recorded = _golden()["sequences"][name]
    _assert_matches_record(_run(ReferenceTracker(tracker_settings), steps), recorded, name)
    _assert_matches_record(_run(ByteTracker(tracker_settings), steps), recorded, name)
    assert _assert_same_run(steps, tracker_settings) > 300


@pytest.mark.parametrize(
    ("changes", "sequence"),
    [
        ({}, dict(seed=1)),
        ({}, dict(seed=2, on_screen=30, frames=400)),
        ({}, dict(seed=3, fps=5, interval=2)),
        ({}, dict(seed=4, fps=60, interval=4, attributes=True)),
        ({"per_class": False}, dict(seed=5, classes=3)),
        ({"confirm_s": 0.0}, dict(seed=6)),
        ({"confirm_s": 0.5, "tentative_lost_s": 0.1}, dict(seed=7)),
        ({"lost_track_s": 0.2, "motion_hold_s": 0.0}, dict(seed=8)),
        ({"high_score": 0.7, "low_score": 0.3, "new_track_score": 0.8}, dict(seed=9)),
        ({"match_iou": 0.05, "stopped_speed": 1.0}, dict(seed=10, glitches=False)),
    ],
)
def test_tracker_when_stepped_beside_the_replaced_tracker_gives_the_same_outputs(
    changes: dict[str, Any], sequence: dict[str, Any]
) -> None:
    assert _assert_same_run(crowd(**sequence), SHIPPED.model_copy(update=changes)) > 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    on_screen=st.integers(0, 24),
    fps=st.sampled_from([5.0, 12.5, 30.0]),
    interval=st.integers(1, 3),
    classes=st.integers(1, 3),
    confirm_s=st.sampled_from([0.0, 0.04, 0.3]),
    per_class=st.booleans(),
    motion_hold_s=st.sampled_from([0.0, 0.5]),
)
def test_tracker_on_random_crowds_gives_the_same_outputs_as_the_replaced_tracker(
    seed: int,
    on_screen: int,
    fps: float,
    interval: int,
    classes: int,
    confirm_s: float,
    per_class: bool,
    motion_hold_s: float,
) -> None:
    steps = crowd(seed, frames=60, fps=fps, on_screen=on_screen, classes=classes, interval=interval)
    changes = {"confirm_s": confirm_s, "per_class": per_class, "motion_hold_s": motion_hold_s}
    _assert_same_run(steps, SHIPPED.model_copy(update=changes))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_tracker_on_the_accuracy_benchmark_input_gives_the_recorded_outputs(seed: int) -> None:
    steps = _tud_sequence(seed)
    if steps is None:
        pytest.skip("TUD-Stadtmitte ground truth not found (motmetrics or TEST_MOT_DATA)")
    recorded = _golden()["sequences"][f"tud-stadtmitte-seed{seed}"]
    _assert_matches_record(_run(ByteTracker(SHIPPED), steps), recorded, f"seed {seed}")
    assert _assert_same_run(steps, SHIPPED) > 1000


def _write_golden() -> None:
    sequences: dict[str, Any] = {}
    for name, (changes, sequence) in sorted(GOLDEN_CASES.items()):
        tracker = ReferenceTracker(SHIPPED.model_copy(update=changes))
        sequences[name] = _record(_run(tracker, sequence()))
    for seed in range(5):
        steps = _tud_sequence(seed)
        if steps is None:
            raise SystemExit("TUD-Stadtmitte ground truth not found (motmetrics or TEST_MOT_DATA)")
        outputs = _run(ReferenceTracker(SHIPPED), steps)
        sequences[f"tud-stadtmitte-seed{seed}"] = _record(outputs, boxes=False)
    document = {
        "about": "Outputs of the tracker at commit 1a1230a (tests/support/tracker_reference.py)"
        " per frame: [track ids, boxes rounded to 0.01 px (flat) or their sum, changes"
        " [id, kind, class], moving flags]. Written by tests/unit/test_tracker_equivalence.py.",
        "sequences": sequences,
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    # one frame per line, for zcat and diff
    lines = [
        f"    {json.dumps(k)}: [\n"
        + ",\n".join(f"      {json.dumps(f, separators=(',', ':'))}" for f in v)
        + "\n    ]"
        for k, v in sequences.items()
    ]
    text = (
        "{\n"
        + f'  "about": {json.dumps(document["about"])},\n'
        + '  "sequences": {\n'
        + ",\n".join(lines)
        + "\n  }\n}\n"
    )
    GOLDEN.write_bytes(gzip.compress(text.encode(), mtime=0))  # same bytes for the same outputs


if __name__ == "__main__":
    _write_golden()
