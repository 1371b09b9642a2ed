"""The tracker bank gives every stream exactly what a tracker of its own gives it.

Several streams' crowds (births, deaths, crossings, occlusions, skipped frames, clock
glitches, resets) are fed to one :class:`TrackerBank` in rounds of random make-up — a stream
may sit a round out, frames the model skipped mix with frames it saw, streams leave and new
ones take their lanes — and each stream's outputs are held, frame by frame, to a
:class:`ByteTracker` of its own fed the same frames (which the equivalence tests hold to the
reference implementation). Each lane has its own id counter, so the ids must match too.
"""

from __future__ import annotations

import itertools
import random

import pytest

from tests.support.track_sequences import TrackerStep, assert_same_output, crowd, step_tracker
from vigil.track import ByteTracker, TrackerBank, TrackerSettings
from vigil.track import bank as bank_module

SHIPPED = TrackerSettings(enabled=True)


def _sequences(seed: int, streams: int, on_screen: int) -> list[list[TrackerStep]]:
    rng = random.Random(seed)
    return [
        crowd(
            seed * 100 + k,
            frames=rng.randint(40, 90),
            fps=rng.choice([10.0, 25.0, 30.0]),
            on_screen=on_screen,
            interval=rng.choice([1, 1, 3]),
            attributes=k % 2 == 0,
        )
        for k in range(streams)
    ]


def _run_both(seed: int, streams: int, on_screen: int, settings: TrackerSettings) -> int:
    """Streams through a bank and alone; returns how many frames were compared."""
    rng = random.Random(seed)
    waiting = _sequences(seed, streams + 2, on_screen)  # two join when others leave
    bank = TrackerBank(settings)
    active: dict[int, tuple[list[TrackerStep], ByteTracker, int]] = {}

    def join() -> None:
        steps = waiting.pop(0)
        counter = itertools.count(1)
        lane = bank.add_lane(counter.__next__)
        active[lane] = (steps, ByteTracker(settings), 0)

    for _ in range(streams):
        join()
    compared = 0
    while active:
        members = [lane for lane in active if rng.random() < 0.8] or [next(iter(active))]
        rng.shuffle(members)
        frames = []
        for lane in members:
            steps, _, position = active[lane]
            step = steps[position]
            if step.reset:
                bank.reset_lane(lane)
            frames.append((lane, step.detections, step.time_s))
        outputs = bank.step(frames)
        for lane, out in zip(members, outputs, strict=True):
            steps, alone, position = active[lane]
            expected = step_tracker(alone, steps[position])
            assert_same_output(out, expected, f"lane {lane}, frame {position}")
            assert bank.active_ids(lane) == alone.active_ids, f"lane {lane}, frame {position}"
            compared += 1
            if position + 1 == len(steps):
                del active[lane]
                bank.remove_lane(lane)
                if waiting:
                    join()
            else:
                active[lane] = (steps, alone, position + 1)
    return compared


@pytest.mark.parametrize("seed", range(4))
def test_bank_gives_each_stream_what_its_own_tracker_gives(seed: int) -> None:
    assert _run_both(seed, streams=5, on_screen=6, settings=SHIPPED) > 300


def test_bank_with_every_class_and_confirmation_on_sight() -> None:
    settings = SHIPPED.model_copy(update={"per_class": False, "confirm_s": 0.0})
    assert _run_both(7, streams=4, on_screen=6, settings=settings) > 200


def test_bank_computes_each_lane_s_overlaps_apart_for_large_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Above the pair limit each lane's IoU block is computed on its own: the same results.
    monkeypatch.setattr(bank_module, "_ROUND_IOU_PAIRS", 0)
    assert _run_both(11, streams=4, on_screen=8, settings=SHIPPED) > 200


def test_bank_hands_a_removed_stream_s_lane_to_the_next_and_forgets_its_tracks() -> None:
    bank = TrackerBank(SHIPPED)
    first = bank.add_lane(itertools.count(1).__next__)
    second = bank.add_lane(itertools.count(100).__next__)
    for step in crowd(3, frames=30, on_screen=4, glitches=False):
        assert step.detections is not None
        bank.step([(first, step.detections, step.time_s), (second, step.detections, step.time_s)])
    assert bank.active_ids(first)
    assert min(bank.active_ids(second)) >= 100
    bank.remove_lane(first)
    again = bank.add_lane(itertools.count(1000).__next__)
    assert again == first
    assert bank.active_ids(again) == set()
    assert bank.active_ids(second)


def test_bank_refuses_a_round_with_two_frames_of_one_lane() -> None:
    bank = TrackerBank(SHIPPED)
    lane = bank.add_lane(itertools.count(1).__next__)
    step = crowd(3, frames=30, on_screen=2, glitches=False)[0]
    with pytest.raises(ValueError, match="one frame of each lane"):
        bank.step([(lane, step.detections, 0.0), (lane, step.detections, 0.033)])
