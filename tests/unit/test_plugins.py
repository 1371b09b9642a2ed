"""Plugin discovery, isolation and events, with plugins written as modules on the fly."""

from __future__ import annotations

import logging
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from vigil.detections import Detections
from vigil.events.builder import EventBuilder
from vigil.events.schema import Event, EventType, PlaceInfo
from vigil.events.sinks import EventSink
from vigil.ext import API_VERSION, Alert, FrameResult, FrameStage
from vigil.frame import Frame
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import TensorSpec
from vigil.parsers import make_parser
from vigil.plugins.discovery import (
    PluginError,
    check_refs,
    describe,
    find_parser,
    instantiate,
    resolve,
)
from vigil.plugins.sinks import GuardedSink, StreamSinks
from vigil.plugins.stages import PluginMetrics, PluginStages
from vigil.specs import PluginRef, StageRef, StreamSpec
from vigil.stages.base import StageChain

PLUGIN_MODULE = """
import time
from vigil.ext import Alert, FrameStage, Parser, Detections

class Tagger(FrameStage):
    def __init__(self, every: int = 1, fail_every: int = 0, sleep_s: float = 0.0):
        self.every, self.fail_every, self.sleep_s = every, fail_every, sleep_s
        self.seen = 0
        self.events = []

    def start(self):
        self.events.append("start")

    def process_frame(self, result):
        self.seen += 1
        result.alerts.append(Alert("tag", attributes={"n": str(self.seen)}))
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail_every and self.seen % self.fail_every == 0:
            raise RuntimeError("boom")

    def stream_added(self, spec):
        self.events.append(("added", spec.id))

    def stream_removed(self, stream_id):
        self.events.append(("removed", stream_id))

    def stop(self):
        self.events.append("stop")

class Rows(Parser):
    name = "rows"
    def parse(self, outputs, sizes):
        return [Detections.empty() for _ in sizes]

class NotAStage:
    pass

class Broken(FrameStage):
    def __init__(self):
        raise ValueError("constructor failed")
"""


@pytest.fixture
def plugin_module(tmp_path: Path) -> Iterator[str]:
    """A module ``vigil_test_plugins_<n>`` on ``sys.path`` holding the plugins above."""
    name = f"vigil_test_plugins_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def _result(stream_id: str = "s", n: int = 0) -> FrameResult:
    image = np.zeros((4, 4, 3), np.uint8)
    frame = Frame(stream_id, n, None, 1_700_000_000.0 + n, time.monotonic(), image)
    return FrameResult(frame, Detections.empty())


def test_ext_exports_its_version_and_the_plugin_bases() -> None:
    assert API_VERSION.split(".")[0] == "1"
    assert issubclass(FrameStage, object)


def test_resolve_by_dotted_path_finds_the_class(plugin_module: str) -> None:
    cls = resolve("stage", f"{plugin_module}:Tagger")
    assert cls.__name__ == "Tagger"
    info = describe("stage", "tagger", cls)
    assert info.cls == f"{plugin_module}:Tagger"


@pytest.mark.parametrize(
    ("kind", "ref", "words"),
    [
        ("stage", "no_such_plugin_anywhere", "unknown stage plugin 'no_such_plugin_anywhere'"),
        ("stage", "no_such_module_xyz:Thing", "cannot import module 'no_such_module_xyz'"),
        ("stage", "{mod}:Missing", "has no 'Missing'"),
        ("stage", "{mod}:NotAStage", "not a subclass of vigil.ext.FrameStage"),
        ("sink", "{mod}:Tagger", "not a subclass of vigil.ext.EventSink"),
        ("parser", "{mod}:Tagger", "not a subclass of vigil.ext.Parser"),
    ],
)
def test_resolve_when_reference_is_bad_names_it(
    plugin_module: str, kind: str, ref: str, words: str
) -> None:
    with pytest.raises(PluginError, match="plugin") as caught:
        resolve(kind, ref.format(mod=plugin_module))  # type: ignore[arg-type]
    assert words in str(caught.value)


def test_instantiate_checks_options_before_constructing(plugin_module: str) -> None:
    with pytest.raises(PluginError, match="bad options") as caught:
        instantiate("stage", PluginRef(plugin=f"{plugin_module}:Tagger", options={"colour": 1}))
    assert "colour" in str(caught.value)
    with pytest.raises(PluginError, match="failed to start: constructor failed"):
        instantiate("stage", PluginRef(plugin=f"{plugin_module}:Broken"))


def test_check_refs_names_the_place_of_the_bad_one(plugin_module: str) -> None:
    good = PluginRef(plugin=f"{plugin_module}:Tagger")
    with pytest.raises(PluginError, match=r"^stages\[1\]: unknown stage plugin 'nope'"):
        check_refs("stage", "stages", [good, PluginRef(plugin="nope")])


def _model(parser: str) -> ModelInfo:
    spec = TensorSpec("x", np.dtype(np.float32), (4,))
    return ModelInfo("m", "1", 1, [spec], [spec], parameters={"vigil.parser": parser})


def test_make_parser_finds_a_plugin_parser_by_dotted_path(plugin_module: str) -> None:
    parser = make_parser(_model(f"{plugin_module}:Rows"), 0.5, find_parser)
    assert type(parser).__name__ == "Rows"


def test_make_parser_when_plugin_is_unknown_lists_built_ins_and_plugins() -> None:
    with pytest.raises(UnsupportedModelError, match="built-in: detectnet_v2, ssd") as caught:
        make_parser(_model("nope"), 0.5, find_parser)
    assert "'vigil.parser'" in str(caught.value)


def _stages(plugin_module: str, **options: object) -> tuple[PluginStages, StageChain]:
    ref = StageRef(plugin=f"{plugin_module}:Tagger", options=options, budget_ms=1000)
    stages = PluginStages([ref], PluginMetrics(CollectorRegistry()))
    chain = StageChain([stages])
    stages.start()
    chain.stream_added(StreamSpec(id="s", url="test://pattern"))
    return stages, chain


def test_stage_that_raises_on_every_10th_frame_loses_only_those_frames(
    plugin_module: str, caplog: pytest.LogCaptureFixture
) -> None:
    stages, chain = _stages(plugin_module, fail_every=10)
    results = [_result(n=n) for n in range(100)]
    with caplog.at_level(logging.ERROR, logger="vigil.plugins.stages"):
        for batch in range(0, 100, 4):
            chain.process(results[batch : batch + 4])
    tagged = [r for r in results if r.alerts]
    assert len(tagged) == 90, "the other 90 % of frames carry the stage's output"
    assert all(len(r.alerts) == 1 for r in tagged)
    assert stages.failures[f"{stages.shared[0].info.name}"] == 10
    assert chain.failures == {}, "the chain itself saw no failure"
    logged = [r for r in caplog.records if "raised in process_frame" in r.getMessage()]
    assert len(logged) == 1, "logged once a minute, not once a frame"
    assert logged[0].exc_info is not None


def test_stage_over_its_budget_is_counted(plugin_module: str) -> None:
    ref = StageRef(plugin=f"{plugin_module}:Tagger", options={"sleep_s": 0.003}, budget_ms=1)
    stages = PluginStages([ref])
    chain = StageChain([stages])
    chain.stream_added(StreamSpec(id="s", url="test://pattern"))
    chain.process([_result(n=n) for n in range(3)])
    assert stages.over_budget[ref.plugin] == 3


def test_per_stream_stage_runs_on_its_stream_only_and_stops_with_it(plugin_module: str) -> None:
    stages = PluginStages()
    chain = StageChain([stages])
    ref = StageRef(plugin=f"{plugin_module}:Tagger")
    mine = StreamSpec(id="mine", url="test://pattern", stages=[ref])
    stages.check(mine)  # the REST call: loaded here, started on the chain's thread
    chain.stream_added(mine)
    chain.stream_added(StreamSpec(id="other", url="test://pattern"))
    results = [_result("mine", 0), _result("other", 0)]
    chain.process(results)
    assert [bool(r.alerts) for r in results] == [True, False]
    stage = stages.per_stream["mine"][0].stage
    chain.stream_removed("mine")
    assert stage.events == ["start", ("added", "mine"), ("removed", "mine"), "stop"]  # type: ignore[attr-defined]
    assert "mine" not in stages.per_stream


def test_check_when_a_stream_stage_is_bad_names_its_place(plugin_module: str) -> None:
    stages = PluginStages()
    bad = StreamSpec(
        id="x",
        url="test://pattern",
        stages=[StageRef(plugin=f"{plugin_module}:Tagger"), StageRef(plugin="nope")],
    )
    with pytest.raises(PluginError, match=r"^stages\[1\]: unknown stage plugin"):
        stages.check(bad)
    assert stages.per_stream == {}


def _track_7(**data: np.ndarray) -> Detections:
    """One object, track 7, box (1, 2)-(3, 4)."""
    return Detections(
        xyxy=np.array([[1, 2, 3, 4]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([0], np.int32),
        tracker_id=np.array([7], np.int64),
        data=data,
    )


def test_alert_becomes_an_alert_event_about_its_track() -> None:
    model = _model("ssd")
    builder = EventBuilder(model, PlaceInfo(id="p"), "test")
    result = _result()
    result.detections = _track_7()
    result.alerts += [Alert("no_helmet", 7, attributes={"zone": "a"}), Alert("frame_rule")]
    events = builder.build_result(result)
    alerts = [e for e in events if e.event.type is EventType.ALERT]
    assert len(alerts) == 2
    tracked, whole = (e.to_full()["object"] for e in alerts)
    assert tracked["id"] == "7"
    assert tracked["analytics"]["rule"] == "no_helmet"
    assert tracked["bbox"]["topleftx"] == 1
    assert whole["analytics"]["rule"] == "frame_rule"
    assert "frame" in whole


class _RaisingSink(EventSink):
    def __init__(self) -> None:
        self.closed = False

    async def emit(self, events: Sequence[Event]) -> None:
        raise ConnectionError("receiver down")

    async def close(self) -> None:
        self.closed = True


async def test_guarded_sink_loses_the_batch_not_the_pipeline(plugin_module: str) -> None:
    inner = _RaisingSink()
    sink = GuardedSink(inner, describe("sink", "raising", _RaisingSink))
    await sink.emit([])
    await sink.emit([])
    assert sink.failures == 2
    await sink.close()
    assert inner.closed


class _ListSink(EventSink):
    def __init__(self) -> None:
        self.got: list[str] = []
        self.closed = False

    async def emit(self, events: Sequence[Event]) -> None:
        self.got += [e.sensor.id for e in events]

    async def close(self) -> None:
        self.closed = True


async def test_stream_sinks_get_their_stream_only_and_close_with_it(plugin_module: str) -> None:
    module = sys.modules.get(plugin_module) or __import__(plugin_module)
    module.ListSink = _ListSink  # type: ignore[attr-defined]
    sinks = StreamSinks()
    spec = StreamSpec(
        id="mine", url="test://pattern", sinks=[PluginRef(plugin=f"{plugin_module}:ListSink")]
    )
    sinks.check(spec)
    builder = EventBuilder(_model("ssd"), PlaceInfo(id="p"), "test")
    events = []
    for stream_id in ("mine", "other", "mine"):
        result = _result(stream_id)
        result.alerts.append(Alert("x"))
        events += builder.build_result(result)
    await sinks.emit(events)
    (guarded,) = sinks.sinks()
    inner = guarded.sink
    assert inner.got == ["mine", "mine"]  # type: ignore[attr-defined]
    await sinks.release("mine")
    assert inner.closed  # type: ignore[attr-defined]
    assert sinks.sinks() == []


def test_stream_sinks_check_names_the_bad_one() -> None:
    spec = StreamSpec(id="x", url="test://pattern", sinks=[PluginRef(plugin="nope")])
    with pytest.raises(PluginError, match=r"^sinks\[0\]: unknown sink plugin 'nope'"):
        StreamSinks().check(spec)


def test_examples_import_nothing_of_vigil_but_vigil_ext() -> None:
    import ast

    examples = Path(__file__).resolve().parents[2] / "examples" / "plugins"
    files = sorted(examples.rglob("*.py"))
    assert files, "the example plugins are missing"
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name == "vigil" or name.startswith("vigil."):
                    assert name == "vigil.ext", f"{path.name} imports {name}"


def test_analytics_events_name_their_track_or_a_zone() -> None:
    from vigil.analytics import AnalyticsEvent, AnalyticsResult
    from vigil.detections import ATTRIBUTES

    builder = EventBuilder(_model("ssd"), PlaceInfo(id="p"), "test")
    result = _result()
    result.detections = _track_7(**{ATTRIBUTES: np.array([{"color": "red"}], object)})
    crossing = AnalyticsEvent("line_crossed", "door", 7, 0, "in", 1, 0.0, 0, 0.0)
    crowding = AnalyticsEvent("crowding_raised", "hall", None, None, None, 5, 2.0, 0, 0.0)
    result.analytics = AnalyticsResult(np.ones(1, bool), [], [crossing, crowding])
    tracked, zone = (
        e.to_full()["object"]
        for e in builder.build_result(result)
        if e.event.type in (EventType.LINE_CROSSED, EventType.CROWDING_RAISED)
    )
    assert tracked["id"] == "7"
    assert tracked["bbox"]["topleftx"] == 1
    assert tracked["analytics"]["rule"] == "door"
    assert "zone" in zone
    assert zone["bbox"]["bottomrightx"] == 0
    assert zone["analytics"]["count"] == 5
