"""Secondary classifiers end to end: real video, real Triton, a tiny detector and a tiny
color classifier built in the test.

The clip is half red (left), half blue (right). The detector always finds a person on the
left, a car on the right and a 4-pixel person (under ``min_size_px``); the classifier labels
a crop by its dominant channel. So every person event must say red and every car blue, and
the tiny person must carry no color.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from jsonschema import Draft202012Validator

from tests.support.tiny_models import TinyModel, color_classifier_model, write_repository
from vigil.config import SecondaryModelSettings, Settings
from vigil.events.schema import FULL_SCHEMA_PATH
from vigil.jobs import file_spec, run_streams
from vigil.pipeline.stream_state import StreamState
from vigil.runtime import Runtime
from vigil.shm_segments import SHM_DIR
from vigil.triton_connection import TritonConnection

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

FRAMES = 12


def halves_detector() -> TinyModel:
    """YOLOv8 layout: person [4, 8, 28, 56], car [36, 8, 60, 56], tiny person [30, 2, 32, 4]
    (input pixels of 64×64; ×2 on the 128×128 clip)."""
    const = np.zeros((6, 16), np.float32)
    const[:, 0] = [16, 32, 24, 48, 0.9, 0.0]
    const[:, 1] = [48, 32, 24, 48, 0.0, 0.8]
    const[:, 2] = [31, 3, 2, 2, 0.7, 0.0]
    return TinyModel(
        "tiny_halves",
        (3, 64, 64),
        {"output0": (const, np.zeros_like(const))},
        {"vigil.parser": "yolo"},
        ["person", "car"],
    )


def red_blue_clip(path: Path) -> Path:
    """128×128 H.264 clip: left half red, right half blue."""
    image = np.zeros((128, 128, 3), np.uint8)
    image[:, :64, 0] = 255
    image[:, 64:, 2] = 255
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 128, "yuv420p"
        stream.time_base = Fraction(1, 10)
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("secondary")
    repository = write_repository(
        base / "repository", [halves_detector(), color_classifier_model()]
    )
    settings = Settings()
    return settings.model_copy(
        update={
            "run_dir": base,
            "triton": settings.triton.model_copy(update={"model_repository": repository}),
            "model": settings.model.model_copy(
                update={"name": "tiny_halves", "confidence_threshold": 0.4}
            ),
            # untracked: classification per frame and interval (tracked: once per track,
            # tests/integration/test_tracking_e2e.py)
            "tracking": settings.tracking.model_copy(update={"enabled": False}),
        }
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return red_blue_clip(tmp_path_factory.mktemp("clip") / "red_blue.mp4")


async def run_with(
    settings: Settings, triton: TritonConnection, clip: Path, tmp_path: Path, **secondary
):
    """Run two streams of the clip with one color classifier; returns (events, runtime)."""
    settings = settings.model_copy(
        update={
            "secondary": [SecondaryModelSettings(name="tiny_color", **secondary)],
            "events": settings.events.model_copy(update={"jsonl_path": tmp_path / "ev.jsonl"}),
        }
    )
    seen: list[Runtime] = []
    result = await run_streams(
        settings,
        [file_spec("cam-a", str(clip)), file_spec("cam-b", str(clip))],
        connection=triton,
        on_start=seen.append,
    )
    for status in result.streams.values():
        assert status.state is StreamState.STOPPED, status.reason
        assert status.stats.frames_processed == FRAMES
    lines = settings.events.jsonl_path.read_text().splitlines()
    return [json.loads(line) for line in lines], seen[0]


def batches_sent(runtime: Runtime) -> int:
    for metric in runtime.metrics.batch_size.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return int(sample.value)
    raise AssertionError("no batch count")


async def test_classifier_labels_crops_by_color_in_one_request_per_primary_batch(
    module_settings, triton, clip, tmp_path
):
    events, runtime = await run_with(
        module_settings,
        triton,
        clip,
        tmp_path,
        attribute="color",
        operate_on_classes=["person", "car"],
        min_size_px=16,
    )
    validator = Draft202012Validator(json.loads(FULL_SCHEMA_PATH.read_text()))
    assert len(events) == 2 * FRAMES * 3
    colors = {"person": set(), "car": set(), "tiny": set()}
    for event in events:
        assert not [e.message for e in validator.iter_errors(event)]
        obj = event["object"]
        if "vehicle" in obj:
            colors["car"].add((obj["vehicle"]["color"], obj["vehicle"]["colorConfidence"]))
        elif obj["bbox"]["bottomrightx"] - obj["bbox"]["topleftx"] < 16:
            colors["tiny"].add(obj["person"].get("color"))
        else:
            colors["person"].add((obj["person"]["color"], obj["person"]["colorConfidence"]))
    assert colors == {"person": {("red", "1.000")}, "car": {("blue", "1.000")}, "tiny": {None}}

    classifier = runtime.pipeline.secondary.classifiers[0]
    assert classifier.failures == 0
    assert classifier.requests == batches_sent(runtime), "one classifier request per batch"
    assert batches_sent(runtime) < 2 * FRAMES, "frames of both streams share batches"
    assert not list(SHM_DIR.glob("vigil_*_sgie_*")), "the classifier's slot is removed"


async def test_classifier_with_interval_carries_results_over_and_skips_other_classes(
    module_settings, triton, clip, tmp_path
):
    events, runtime = await run_with(
        module_settings, triton, clip, tmp_path, operate_on_classes=["car"], interval=3
    )
    cars = [e["object"]["vehicle"] for e in events if "vehicle" in e["object"]]
    persons = [e["object"]["person"] for e in events if "person" in e["object"]]
    assert len(cars) == 2 * FRAMES
    assert {c["tiny_color"] for c in cars} == {"blue"}, "frames between reuse the result"
    assert all("tiny_color" not in p for p in persons)
    classifier = runtime.pipeline.secondary.classifiers[0]
    assert 1 <= classifier.requests <= batches_sent(runtime)


async def test_tracked_streams_classify_each_track_once_and_attributes_follow_it(
    module_settings, triton, clip, tmp_path
):
    tracked = module_settings.model_copy(
        update={"tracking": module_settings.tracking.model_copy(update={"enabled": True})}
    )
    events, runtime = await run_with(
        tracked, triton, clip, tmp_path, attribute="color", operate_on_classes=["car"]
    )
    cars = [e for e in events if "vehicle" in e["object"] and e["event"]["type"] != "exit"]
    assert cars, "the car is tracked"
    assert {e["object"]["vehicle"]["color"] for e in cars} == {"blue"}, "on every frame"
    tracks = {e["object"]["id"] for e in cars}
    assert len(tracks) == 2  # one car per stream
    classifier = runtime.pipeline.secondary.classifiers[0]
    assert classifier.failures == 0
    # each car's crop is classified once, the first time its track shows (both streams'
    # first frames may share one request)
    assert 1 <= classifier.requests <= len(tracks)
