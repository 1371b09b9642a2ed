"""Secondary classifier logic with a fake Triton client (selection, batching, carry-over)."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from vigil.classifiers import SecondaryClassifier, SecondaryClassifiers
from vigil.config import SecondaryModelSettings
from vigil.detections import ATTRIBUTES, Detections
from vigil.frame import Frame
from vigil.infer.errors import InferError, UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import Slot
from vigil.infer.tensors import TensorSpec
from vigil.shm_segments import SHM_DIR

F32 = np.dtype(np.float32)
PRIMARY = ModelInfo("det", "1", 8, [], [], labels=["person", "car"])
CLASSIFIER = ModelInfo(
    "color",
    "1",
    4,
    inputs=[TensorSpec("images", F32, (3, 8, 8))],
    outputs=[TensorSpec("probs", F32, (3,))],
    labels=["red", "green", "blue"],
)


class FakeClient:
    """Classifies each crop in the slot by its brightest channel; counts requests."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.fail = fail

    async def register_slot(self, slot: Slot) -> None:
        pass

    async def unregister_slot(self, slot: Slot) -> None:
        pass

    async def infer(self, model: ModelInfo, slot: Slot, batch: int) -> None:
        if self.fail:
            raise InferError("boom")
        self.batches.append(batch)
        means = slot.inputs["images"][:batch].mean(axis=(2, 3))
        slot.outputs["probs"][:batch] = np.eye(3, dtype=np.float32)[means.argmax(axis=1)]


def frame(stream: str, number: int) -> Frame:
    """Left half red, right half blue, 64×64."""
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32, 0] = 255
    image[:, 32:, 2] = 255
    return Frame(stream, number, 0.0, 0.0, 0.0, image)


def dets(tracker: list[int] | None = None) -> Detections:
    """A person on the red half, a car on the blue half, a tiny person."""
    return Detections(
        xyxy=np.array([[2, 2, 30, 60], [34, 2, 62, 60], [0, 0, 3, 3]], np.float32),
        confidence=np.array([0.9, 0.8, 0.7], np.float32),
        class_id=np.array([0, 1, 0], np.int32),
        tracker_id=None if tracker is None else np.array(tracker, np.int64),
    )


def classifier(client: FakeClient, **settings) -> SecondaryClassifier:
    defaults = {"name": "color", "attribute": "color", "min_size_px": 8}
    return SecondaryClassifier(
        client, CLASSIFIER, PRIMARY, SecondaryModelSettings(**{**defaults, **settings})
    )


def colors(result: list[Detections]) -> list[list[str | None]]:
    return [[a.get("color") for a in d.data[ATTRIBUTES]] for d in result]


async def test_secondary_batches_crops_of_all_frames_and_skips_small_objects():
    client = FakeClient()
    sgie = classifier(client, max_batch=8)
    try:
        result = await sgie.classify([frame("a", 0), frame("b", 0)], [dets(), dets()])
    finally:
        await sgie.stop()
    assert client.batches == [4], "two frames × two big objects in one request"
    assert colors(result) == [["red", "blue", None]] * 2
    assert result[0].data[ATTRIBUTES][0]["colorConfidence"] == "1.000"


async def test_secondary_splits_requests_at_max_batch_and_filters_classes():
    client = FakeClient()
    sgie = classifier(client, max_batch=1, operate_on_classes=["car"])
    try:
        result = await sgie.classify([frame("a", 0), frame("b", 0)], [dets(), dets()])
    finally:
        await sgie.stop()
    assert client.batches == [1, 1]
    assert colors(result) == [[None, "blue", None]] * 2
    assert not list(SHM_DIR.glob("vigil_*_sgie_*"))


@pytest.mark.parametrize("tracker", [None, [7, 8, 9]], ids=["by-overlap", "by-track"])
async def test_secondary_interval_carries_results_to_frames_in_between(tracker):
    client = FakeClient()
    sgie = classifier(client, interval=2)
    try:
        frames = [frame("a", n) for n in range(4)]
        result = await sgie.classify(frames, [dets(tracker) for _ in frames])
    finally:
        await sgie.stop()
    assert client.batches == [4], "frames 0 and 2 only"
    assert colors(result) == [["red", "blue", None]] * 4


async def test_secondary_stage_keeps_detections_when_the_classifier_fails():
    sgie = classifier(FakeClient(fail=True))
    stage = SecondaryClassifiers([sgie])
    try:
        result = await stage.run([frame("a", 0)], [dets()])
    finally:
        await stage.stop()
    assert len(result[0]) == 3
    assert sgie.failures == 1


def test_secondary_when_class_unknown_names_it():
    with pytest.raises(UnsupportedModelError, match=r"\['truck'\]"):
        classifier(FakeClient(), operate_on_classes=["truck"])


def test_secondary_settings_reject_reserved_attribute():
    with pytest.raises(pydantic.ValidationError, match="confidence"):
        SecondaryModelSettings(name="color", attribute="confidence")


def test_secondary_when_model_cannot_batch_says_so():
    model = ModelInfo(**{**CLASSIFIER.__dict__, "max_batch_size": 0})
    with pytest.raises(UnsupportedModelError, match="max_batch_size"):
        SecondaryClassifier(FakeClient(), model, PRIMARY, SecondaryModelSettings(name="color"))
