import numpy as np
import pytest

from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import TensorSpec
from vigil.parsers import make_parser
from vigil.parsers.ssd import SsdParser

F32 = np.dtype(np.float32)
SSD = ModelInfo(
    name="ssd",
    version="1",
    max_batch_size=4,
    inputs=[TensorSpec("image_tensor", np.dtype(np.uint8), (300, 300, 3))],
    outputs=[
        TensorSpec("detection_boxes", F32, (100, 4)),
        TensorSpec("detection_classes", F32, (100,)),
        TensorSpec("detection_scores", F32, (100,)),
        TensorSpec("num_detections", F32, ()),
    ],
    parameters={"vigil.parser": "ssd"},
    labels=["background", "person", "bicycle", "car"],
)


def outputs(batch: int) -> dict[str, np.ndarray]:
    out = {
        "detection_boxes": np.zeros((batch, 100, 4), F32),
        "detection_classes": np.zeros((batch, 100), F32),
        "detection_scores": np.zeros((batch, 100), F32),
        "num_detections": np.zeros((batch,), F32),
    }
    # frame 0: a person in the middle, a weak car, and a box spilling out of the frame
    out["detection_boxes"][0, :3] = [
        [0.25, 0.5, 0.75, 1.0],
        [0, 0, 0.1, 0.1],
        [-0.1, 0.9, 0.5, 1.2],
    ]
    out["detection_classes"][0, :3] = [1, 3, 3]
    out["detection_scores"][0, :3] = [0.9, 0.2, 0.6]
    out["num_detections"][0] = 3
    # a stale row past num_detections must be ignored
    out["detection_scores"][0, 5] = 0.99
    return out


def test_ssd_parser_maps_normalized_yxyx_to_source_pixels_and_thresholds():
    parser = SsdParser(SSD, confidence_threshold=0.5)
    dets = parser.parse(outputs(2), [(800, 600), (100, 100)])
    assert len(dets) == 2
    assert len(dets[1]) == 0
    first = dets[0]
    assert first.class_id.tolist() == [1, 3]
    np.testing.assert_allclose(first.xyxy[0], [400, 150, 799, 450])
    x1, y1, x2, y2 = first.xyxy[1]
    assert (x1, y1) == (720, 0)
    assert x2 <= 799, "boxes are clipped to the frame"
    assert y2 <= 599


def test_make_parser_when_parser_unknown_lists_known_ones():
    model = ModelInfo(**{**SSD.__dict__, "parameters": {"vigil.parser": "yolo9000"}})
    with pytest.raises(
        UnsupportedModelError, match="known parsers: detectnet_v2, ssd, yolo, yolo_seg"
    ):
        make_parser(model, 0.5)


def test_ssd_parser_when_outputs_missing_names_them():
    model = ModelInfo(**{**SSD.__dict__, "outputs": SSD.outputs[:2]})
    with pytest.raises(UnsupportedModelError, match="detection_scores"):
        SsdParser(model, 0.5)


def test_model_label_falls_back_for_unknown_ids():
    assert SSD.label(1) == "person"
    assert SSD.label(77) == "class_77"
