"""The stage chain: order, per-stream hooks, frames of unknown streams."""

from __future__ import annotations

import time

import numpy as np

from vigil.detections import Detections
from vigil.frame import Frame
from vigil.specs import StreamSpec
from vigil.stages.base import FrameResult, Stage, StageChain
from vigil.stages.tracking import TrackingStage
from vigil.track import TrackerSettings


class Recorder(Stage):
    def __init__(self, name: str, log: list[str]) -> None:
        self.label = name
        self.log = log
        self.state: dict[str, int] = {}

    def process(self, results: list[FrameResult]) -> None:
        for r in results:
            self.state[r.stream_id] = self.state.get(r.stream_id, 0) + 1
            self.log.append(f"{self.label}:{r.stream_id}:{r.frame.frame_number}")

    def stream_removed(self, stream_id: str) -> None:
        self.state.pop(stream_id, None)
        self.log.append(f"{self.label}:removed:{stream_id}")


def spec(stream_id: str) -> StreamSpec:
    return StreamSpec(id=stream_id, url="test://pattern")


def _result(stream_id: str, n: int, pts: float | None = None) -> FrameResult:
    frame = Frame(stream_id, n, pts, 1000.0 + n, time.monotonic(), np.zeros((4, 4, 3), np.uint8))
    return FrameResult(frame, Detections.empty())


def test_chain_runs_stages_in_order_over_the_whole_batch() -> None:
    log: list[str] = []
    chain = StageChain([Recorder("a", log), Recorder("b", log)])
    chain.stream_added(spec("s"))
    chain.process([_result("s", 0), _result("s", 1)])
    assert log == ["a:s:0", "a:s:1", "b:s:0", "b:s:1"]


def test_chain_when_stream_is_removed_frees_every_stage_state() -> None:
    log: list[str] = []
    stages = [Recorder("a", log), Recorder("b", log)]
    chain = StageChain(stages)
    chain.stream_added(spec("s"))
    chain.stream_added(spec("t"))
    chain.process([_result("s", 0), _result("t", 0)])
    chain.stream_removed("s")
    assert all(set(stage.state) == {"t"} for stage in stages)
    assert "a:removed:s" in log
    assert "b:removed:s" in log


def test_chain_when_frame_of_unknown_stream_arrives_creates_no_state() -> None:
    log: list[str] = []
    stage = Recorder("a", log)
    chain = StageChain([stage])
    chain.stream_added(spec("s"))
    chain.stream_removed("s")
    chain.process([_result("s", 5)])  # in flight when the stream was removed
    assert stage.state == {}


def test_frame_result_time_is_media_time_when_known_else_capture_time() -> None:
    assert _result("s", 3, pts=0.3).time_s == 0.3
    assert _result("s", 3).time_s == 1003.0


def test_chain_tracks_only_with_a_predicting_stage() -> None:
    class Predictor(Recorder):
        predicts = True

    assert not StageChain([Recorder("a", [])]).tracks
    assert StageChain([Recorder("a", []), Predictor("p", [])]).tracks


def _live_frames(
    stage: Stage, start_s: float, count: int, box: list[float], vx: float = 0.0
) -> set[int]:
    """Frames of a live stream at 10 fps with one object moving ``vx`` px per frame; returns
    the ids reported."""
    ids: set[int] = set()
    for i in range(count):
        t = start_s + i / 10
        pixels = np.zeros((360, 640, 3), np.uint8)
        frame = Frame("live", int(t * 10), t, t, time.monotonic(), pixels)
        moved = [box[0] + vx * i, box[1], box[2] + vx * i, box[3]]
        dets = Detections(
            np.array([moved], np.float32), np.array([0.9], np.float32), np.array([0], np.int32)
        )
        result = FrameResult(frame, dets)
        stage.process([result])
        if result.detections.tracker_id is not None:
            ids.update(int(i) for i in result.detections.tracker_id)
    return ids


def test_tracker_bridges_an_inference_outage_so_ids_carry_on() -> None:
    # A person walks 20 px/s, then waits; Triton was down 12 s meanwhile, so the live
    # stream's next frame comes 12 s later, with the person a few pixels on.
    bridged, unbridged = TrackingStage(TrackerSettings()), TrackingStage(TrackerSettings())
    for stage in (bridged, unbridged):
        stage.stream_added(StreamSpec(id="live", url="test://pattern"))
    before = _live_frames(bridged, 0.0, 20, [100.0, 100.0, 140.0, 180.0], vx=2.0)
    assert _live_frames(unbridged, 0.0, 20, [100.0, 100.0, 140.0, 180.0], vx=2.0) == before
    bridged.inference_resumed(12.0)
    waiting = [142.0, 100.0, 182.0, 180.0]
    assert _live_frames(bridged, 14.0, 10, waiting) == before, "same person, same id"
    # Without the bridge the tracker carries the walk on for 12 s (240 px): a new id.
    assert _live_frames(unbridged, 14.0, 10, waiting).isdisjoint(before)
