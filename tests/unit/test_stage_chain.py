"""The stage chain: order, per-stream hooks, frames of unknown streams."""

from __future__ import annotations

import time

import numpy as np

from vigil.detections import Detections
from vigil.frame import Frame
from vigil.specs import StreamSpec
from vigil.stages.base import FrameResult, Stage, StageChain


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
