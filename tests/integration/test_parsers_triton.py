"""Parsers on the outputs of tiny ONNX models served by the real embedded Triton.

The models (``tests/support/tiny_models``) are written into a temporary repository as
``onnxruntime_onnx`` models, materialized and served like a user's model; one Triton serves
the whole module. Requests go through the same shared-memory slots as the pipeline's. The
expected objects are the ones the unit tests check on the same tables, so a difference here
is in the serving path (config, materializer, batching, shared memory), not the parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from tests.support.tiny_models import (
    DETECTNET_WHITE_NMS,
    YOLO_SEG_128,
    YOLO_WHITE,
    detectnet_model,
    write_repository,
    yolo_seg_model,
    yolo_v5_model,
    yolo_v8_model,
)
from vigil.config import Settings
from vigil.detections import Detections
from vigil.events.schema import FULL_SCHEMA_PATH
from vigil.infer.model import ModelInfo
from vigil.infer.shm import SystemShmRing
from vigil.jobs import file_spec, run_streams
from vigil.masks import MASKS
from vigil.parsers import make_parser
from vigil.pipeline.stream_state import StreamState
from vigil.shm_segments import new_prefix
from vigil.triton_connection import TritonConnection

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

MODELS = [yolo_v8_model(), yolo_v5_model(), detectnet_model(), yolo_seg_model()]


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose repository holds only the tiny models."""
    base = tmp_path_factory.mktemp("tiny")
    repository = write_repository(base / "repository", MODELS)
    settings = Settings()
    return settings.model_copy(
        update={
            "run_dir": base,
            "triton": settings.triton.model_copy(update={"model_repository": repository}),
            "events": settings.events.model_copy(update={"jsonl_path": base / "events.jsonl"}),
            # untracked: each frame's detections become events, as the parser checks expect
            "tracking": settings.tracking.model_copy(update={"enabled": False}),
        }
    )


async def infer(
    triton: TritonConnection, name: str, images: np.ndarray
) -> tuple[ModelInfo, dict[str, np.ndarray]]:
    """Load ``name`` and run one batch through a registered shared-memory slot."""
    model = await triton.client.load_model(name)
    ring = SystemShmRing(new_prefix("test"), 1, len(images), model.inputs, model.outputs)
    try:
        for slot in ring.slots:
            await triton.client.register_slot(slot)
        slot = await ring.acquire()
        slot.inputs[model.inputs[0].name][: len(images)] = images
        await triton.client.infer(model, slot, len(images))
        outputs = {name: view[: len(images)].copy() for name, view in slot.outputs.items()}
    finally:
        for slot in ring.slots:
            await triton.client.unregister_slot(slot)
        ring.close()
    return model, outputs


def white_and_black(shape: tuple[int, ...]) -> np.ndarray:
    """A batch of a white and a black preprocessed float image."""
    return np.stack([np.ones(shape, np.float32), np.zeros(shape, np.float32)])


def rows(dets: Detections) -> list[tuple[int, float, tuple[float, ...]]]:
    return [(c, round(s, 4), tuple(round(float(v), 2) for v in b)) for b, s, c, _ in dets]


def scaled(expected, sx: float, sy: float):
    return [(c, s, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)) for c, s, b in expected]


@pytest.mark.parametrize("name", ["tiny_yolo_v8", "tiny_yolo_v5"])
async def test_yolo_through_triton_gives_the_known_objects_per_frame(triton, name):
    model, outputs = await infer(triton, name, white_and_black((3, 64, 64)))
    assert model.parser == "yolo"
    white, black = make_parser(model, 0.4).parse(outputs, [(128, 96), (64, 64)])
    assert rows(white) == scaled(YOLO_WHITE, 2, 1.5)
    assert rows(black) == list(YOLO_WHITE[:2])
    assert [model.label(int(c)) for c in white.class_id] == ["person", "car", "dog"]


async def test_detectnet_v2_through_triton_gives_the_known_objects_per_frame(triton):
    model, outputs = await infer(triton, "tiny_detectnet", white_and_black((3, 64, 128)))
    white, black = make_parser(model, 0.4).parse(outputs, [(256, 128), (128, 64)])
    assert rows(white) == scaled(DETECTNET_WHITE_NMS, 2, 2)
    assert rows(black) == list(DETECTNET_WHITE_NMS[:2])


async def test_yolo_seg_through_triton_gives_the_known_masks(triton):
    model, outputs = await infer(triton, "tiny_yolo_seg", white_and_black((3, 64, 64)))
    for dets in make_parser(model, 0.4).parse(outputs, [(128, 128), (128, 128)]):
        assert dets.class_id.tolist() == [0, 1]
        for i, (_, score, box, (x0, y0, x1, y1)) in enumerate(YOLO_SEG_128):
            assert dets.confidence[i] == pytest.approx(score)
            np.testing.assert_allclose(dets.xyxy[i], box)
            expected = np.zeros((128, 128), bool)
            expected[y0 : y1 + 1, x0 : x1 + 1] = True
            assert np.array_equal(dets.data[MASKS][i].full(128, 128), expected)


async def test_yolo_seg_pipeline_writes_mask_outlines_in_valid_events(
    triton, module_settings, short_clip: Path
):
    """The whole engine (decode, batch, preprocess, Triton, parse, events) on a real clip."""
    settings = module_settings.model_copy(
        update={"model": module_settings.model.model_copy(update={"name": "tiny_yolo_seg"})}
    )
    result = await run_streams(settings, [file_spec("clip", str(short_clip))], connection=triton)
    status = result.streams["clip"]
    assert status.state is StreamState.STOPPED, status.reason
    assert status.stats.frames_processed == 40

    validator = Draft202012Validator(json.loads(FULL_SCHEMA_PATH.read_text()))
    events = [json.loads(line) for line in settings.events.jsonl_path.read_text().splitlines()]
    assert len(events) == 2 * 40, "a person and a car in every frame"
    for event in events:
        errors = [e.message for e in validator.iter_errors(event)]
        assert not errors, errors
        obj = event["object"]
        box = obj["bbox"]
        (outline,) = obj["maskoutline"]
        xs, ys = outline[0::2], outline[1::2]
        assert box["topleftx"] <= min(xs) <= max(xs) <= box["bottomrightx"]
        assert box["toplefty"] <= min(ys) <= max(ys) <= box["bottomrighty"]
    # vtest is 768×576: 12 × 9 source pixels per input pixel; the person's band is input
    # rows 24–56 (prototype rows 6–13), i.e. source rows 216–503, across its whole box
    person = next(e["object"] for e in events if "person" in e["object"])
    assert person["bbox"] == {
        "topleftx": 96,
        "toplefty": 144,
        "bottomrightx": 480,
        "bottomrighty": 575,
    }
    (outline,) = person["maskoutline"]
    corners = sorted(zip(outline[0::2], outline[1::2], strict=True))
    assert corners == [(96, 216), (96, 503), (479, 216), (479, 503)]
