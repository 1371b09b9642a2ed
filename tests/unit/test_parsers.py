"""Parsers on known output tensors (no Triton): layouts, NMS / DBSCAN, masks, bad parameters.

The tensors are the ones the tiny ONNX test models produce (``tests/support/tiny_models``);
``tests/integration/test_parsers_triton.py`` runs the same models through the real Triton.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from jsonschema import Draft202012Validator

from tests.support.tiny_models import (
    DETECTNET_WHITE_NMS,
    YOLO_SEG_128,
    YOLO_WHITE,
    TinyModel,
    detectnet_model,
    yolo_seg_model,
    yolo_v5_model,
    yolo_v8_model,
)
from vigil.detections import ATTRIBUTES, Detections
from vigil.events.builder import EventBuilder
from vigil.events.schema import FULL_SCHEMA_PATH, PlaceInfo
from vigil.frame import Frame
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import TensorSpec
from vigil.masks import MASKS, InstanceMask
from vigil.parsers import make_parser
from vigil.parsers import nms as nms_module
from vigil.parsers.base import Cluster
from vigil.parsers.nms import dbscan_merge, iou_matrix, nms
from vigil.parsers.yolo import YoloLayout, detect_layout


def model_info(model: TinyModel, **parameters: str) -> ModelInfo:
    """The ModelInfo Vigil would read from the tiny model's config."""
    outputs = [TensorSpec(n, np.dtype(np.float32), c.shape) for n, (c, _) in model.outputs.items()]
    return ModelInfo(
        name=model.name,
        version="1",
        max_batch_size=model.max_batch_size,
        inputs=[TensorSpec("images", model.input_dtype, model.input_shape)],
        outputs=outputs,
        parameters={**model.parameters, **parameters},
        labels=model.labels,
    )


def batch(model: TinyModel, means: list[float]) -> dict[str, np.ndarray]:
    """Outputs of a batch of frames with the given image means."""
    per_frame = [model.expected(m) for m in means]
    return {name: np.stack([f[name] for f in per_frame]) for name in per_frame[0]}


def rows(dets: Detections) -> list[tuple[int, float, tuple[float, ...]]]:
    return [(c, round(s, 4), tuple(round(float(v), 2) for v in b)) for b, s, c, _ in dets]


def scaled(expected, sx: float, sy: float):
    return [(c, s, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)) for c, s, b in expected]


# --- NMS and clustering -------------------------------------------------------------------------


def test_iou_matrix_of_identical_disjoint_and_half_overlapping_boxes():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 0.0, 1 / 3]])


def test_nms_when_classes_differ_keeps_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    classes = np.array([0, 0, 1])
    assert nms(boxes, scores, classes, 0.5).tolist() == [0, 2]
    assert nms(boxes, scores, None, 0.5).tolist() == [0], "class-agnostic"


def test_nms_returns_best_first_and_stops_at_max_detections():
    boxes = np.array([[0, 0, 1, 1], [10, 10, 11, 11], [20, 20, 21, 21]], np.float32)
    scores = np.array([0.2, 0.9, 0.5], np.float32)
    assert nms(boxes, scores, np.zeros(3, int), 0.5).tolist() == [1, 2, 0]
    assert nms(boxes, scores, np.zeros(3, int), 0.5, max_detections=2).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), None, 0.5).tolist() == []


def test_nms_of_a_few_boxes_keeps_what_the_array_path_keeps(monkeypatch):
    # Up to nms_module._SMALL candidates run in plain Python: the same boxes in the same order,
    # ties, touching boxes, classes, limits and thresholds 0 and 1 included.
    rng = np.random.default_rng(1)
    cases = []
    for case in range(3000):
        n = int(rng.integers(1, nms_module._SMALL + 1))
        corner, size = rng.uniform(0, 200, (n, 2)), rng.uniform(-5, 80, (n, 2))
        if case % 5 == 0:
            corner, size = np.round(corner / 10) * 10, np.round(size / 10) * 10
        boxes = np.concatenate([corner, corner + size], 1).astype(np.float32)
        scores = rng.choice([0.5, 0.6, 0.9], n) if case % 3 == 0 else rng.uniform(0, 1, n)
        classes = None if case % 4 == 0 else rng.integers(0, 3, n).astype(np.int32)
        limit = None if case % 2 else int(rng.integers(1, 5))
        threshold = float(rng.choice([0.0, 0.3, 0.5, 1.0]))
        cases.append((boxes, scores.astype(np.float32), classes, threshold, limit))
    small = [nms(*case).tolist() for case in cases]
    monkeypatch.setattr(nms_module, "_SMALL", 0)
    assert small == [nms(*case).tolist() for case in cases]
    assert sum(map(len, small)) > 5000


def test_dbscan_merges_overlapping_boxes_by_score_weighted_mean():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.3, 0.8], np.float32)
    xyxy, conf, _ = dbscan_merge(boxes, scores, np.zeros(3, np.int32), eps=0.5, min_boxes=1)
    assert conf.tolist() == pytest.approx([0.8, 0.6])
    np.testing.assert_allclose(xyxy[1], [2 / 3, 0, 10 + 2 / 3, 10], rtol=1e-5)
    # min_boxes=2: the lone box is noise
    xyxy, conf, _ = dbscan_merge(boxes, scores, np.zeros(3, np.int32), eps=0.5, min_boxes=2)
    assert conf.tolist() == pytest.approx([0.6])


# --- YOLO ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((84, 8400), YoloLayout.V8), ((25200, 85), YoloLayout.V5), ((116, 8400), YoloLayout.V8)],
)
def test_yolo_layout_detection_from_output_shape(shape, layout):
    assert detect_layout(shape) is layout


@pytest.mark.parametrize("factory", [yolo_v8_model, yolo_v5_model], ids=["v8", "v5"])
def test_yolo_parser_decodes_layout_applies_per_class_nms_and_scales_to_source(factory):
    model = factory()
    parser = make_parser(model_info(model), 0.4)
    white, black = parser.parse(batch(model, [1.0, 0.0]), [(128, 96), (64, 64)])
    assert rows(white) == scaled(YOLO_WHITE, 2, 1.5)
    assert rows(black) == list(YOLO_WHITE[:2]), "the gated dog is absent on a black frame"


def test_yolo_parser_when_cluster_none_keeps_the_overlapping_person():
    model = yolo_v8_model()
    parser = make_parser(model_info(model, **{"vigil.cluster": "none"}), 0.4)
    (dets,) = parser.parse(batch(model, [1.0]), [(64, 64)])
    assert dets.confidence.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])


def test_yolo_parser_model_parameters_override_confidence_and_max_detections():
    model = yolo_v8_model()
    params = {"vigil.confidence": "0.65", "vigil.max_detections": "1"}
    parser = make_parser(model_info(model, **params), 0.1)
    assert parser.options.cluster is Cluster.NMS
    (dets,) = parser.parse(batch(model, [1.0]), [(64, 64)])
    assert rows(dets) == [YOLO_WHITE[0]]


def test_yolo_parser_clips_boxes_to_the_frame():
    model = yolo_v8_model()
    const, _ = model.outputs["output0"]
    const[:4, 0] = [60, 60, 20, 20]  # the person spills over the bottom-right corner
    (dets,) = make_parser(model_info(model), 0.4).parse(batch(model, [0.0]), [(64, 64)])
    assert dets.xyxy[0].tolist() == [50, 50, 63, 63]


# --- DetectNet_v2 -------------------------------------------------------------------------------


def test_detectnet_v2_decodes_grid_boxes_with_nms():
    model = detectnet_model()
    parser = make_parser(model_info(model), 0.4)
    assert (parser.stride, parser.bbox_norm, parser.offset) == (16, 35, 0.5)
    white, black = parser.parse(batch(model, [1.0, 0.0]), [(256, 128), (128, 64)])
    assert rows(white) == scaled(DETECTNET_WHITE_NMS, 2, 2)
    assert rows(black) == list(DETECTNET_WHITE_NMS[:2])


@pytest.mark.parametrize("cluster", ["nms", "dbscan", "none"])
def test_detectnet_v2_parses_a_batch_as_it_parses_each_frame_alone(cluster: str) -> None:
    # The batch is decoded in one pass: no frame may see another's cells, and frames past
    # the batch's (the output's spare rows) are ignored.
    rng = np.random.default_rng(7)
    info = model_info(detectnet_model(), **{"vigil.cluster": cluster})
    parser = make_parser(info, 0.3)
    shapes = {spec.name: spec.shape for spec in info.outputs}
    outputs = {
        "output_cov/Sigmoid": rng.uniform(0, 1, (6, *shapes["output_cov/Sigmoid"])) ** 4,
        "output_bbox/BiasAdd": rng.normal(1, 1, (6, *shapes["output_bbox/BiasAdd"])),
    }
    outputs = {name: value.astype(np.float32) for name, value in outputs.items()}
    outputs["output_cov/Sigmoid"][2] = 0.0  # a frame without candidates
    sizes = [(256, 128), (640, 480), (128, 64), (1920, 1080), (300, 200)]
    together = parser.parse(outputs, sizes)
    assert len(together) == len(sizes)
    assert not len(together[2])
    for i, size in enumerate(sizes):
        (alone,) = parser.parse({k: v[i : i + 1] for k, v in outputs.items()}, [size])
        assert rows(together[i]) == rows(alone)
        assert together[i].xyxy.dtype == np.float32
        assert together[i].class_id.dtype == np.int32
    assert sum(len(d) for d in together) > 10


def test_detectnet_v2_dbscan_merges_neighbouring_cells():
    model = detectnet_model()
    parser = make_parser(model_info(model, **{"vigil.cluster": "dbscan"}), 0.4)
    (dets,) = parser.parse(batch(model, [0.0]), [(128, 64)])
    merged = (
        0.9 * np.array([22.5, 8.5, 44.5, 30.5]) + 0.6 * np.array([24.5, 8.5, 44.5, 30.5])
    ) / 1.5
    assert dets.class_id.tolist() == [0, 1]
    np.testing.assert_allclose(dets.xyxy[0], merged, atol=1e-3)
    assert dets.confidence[0] == pytest.approx(0.9)


def test_detectnet_v2_output_names_come_from_parameters():
    model = detectnet_model()
    info = model_info(model, **{"vigil.cov_output": "cov"})
    with pytest.raises(UnsupportedModelError, match=r"lacks \['cov'\]"):
        make_parser(info, 0.4)


# --- YOLO segmentation --------------------------------------------------------------------------


def test_yolo_seg_masks_are_cropped_to_the_box_in_source_pixels():
    model = yolo_seg_model()
    parser = make_parser(model_info(model), 0.4)
    (dets,) = parser.parse(batch(model, [1.0]), [(128, 128)])
    assert dets.class_id.tolist() == [0, 1]
    for i, (_, score, box, rect) in enumerate(YOLO_SEG_128):
        assert dets.confidence[i] == pytest.approx(score)
        np.testing.assert_allclose(dets.xyxy[i], box)
        mask: InstanceMask = dets.data[MASKS][i]
        assert (mask.left, mask.top) == (box[0], box[1])
        full = mask.full(128, 128)
        x0, y0, x1, y1 = rect
        expected = np.zeros((128, 128), bool)
        expected[y0 : y1 + 1, x0 : x1 + 1] = True
        assert np.array_equal(full, expected), f"mask {i} differs"
        (polygon,) = mask.polygons()
        corners = set(zip(polygon[0::2], polygon[1::2], strict=True))
        assert corners == {(x0, y0), (x0, y1), (x1, y1), (x1, y0)}


def test_yolo_seg_mask_equals_upsampling_the_whole_prototype_mask_then_cropping():
    """The per-box warp is the reference method (bilinear upsampling of the full mask with
    half-pixel centres, as Ultralytics does, then crop) without the full-frame mask."""
    model = yolo_seg_model()
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(2, 16, 16)).astype(np.float32)
    model.outputs["output1"] = (protos, np.zeros_like(protos))
    (dets,) = make_parser(model_info(model), 0.4).parse(batch(model, [1.0]), [(128, 96)])
    for i, coefs in enumerate([(1.0, 0.0), (0.0, 1.0)]):
        logits = np.tensordot(np.array(coefs, np.float32), protos, axes=1)
        full = cv2.resize(logits, (128, 96), interpolation=cv2.INTER_LINEAR) > 0
        mask = dets.data[MASKS][i]
        h, w = mask.mask.shape
        reference = full[mask.top : mask.top + h, mask.left : mask.left + w]
        assert np.mean(mask.mask == reference) > 0.99, "only float rounding may differ"


def test_yolo_seg_selection_keeps_masks_aligned_with_rows():
    model = yolo_seg_model()
    (dets,) = make_parser(model_info(model), 0.4).parse(batch(model, [1.0]), [(128, 128)])
    car = dets[dets.class_id == 1]
    assert len(car) == 1
    assert car.data[MASKS][0].area == 40 * 40


def test_yolo_seg_when_prototypes_missing_says_so():
    model = yolo_seg_model()
    info = model_info(model)
    info = ModelInfo(**{**info.__dict__, "outputs": info.outputs[:1]})
    with pytest.raises(UnsupportedModelError, match="prototype output"):
        make_parser(info, 0.4)


# --- bad parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("vigil.nms_iou", "0"),
        ("vigil.nms_iou", "high"),
        ("vigil.confidence", "1.5"),
        ("vigil.max_detections", "0"),
        ("vigil.max_detections", "2.5"),
        ("vigil.cluster", "dbscan"),  # YOLO has no DBSCAN
        ("vigil.cluster", "kmeans"),
        ("vigil.yolo_layout", "v7"),
        ("vigil.dbscan_eps", "1"),
    ],
)
def test_yolo_parser_when_parameter_invalid_names_it(key, value):
    with pytest.raises(UnsupportedModelError, match=rf"'{key}' = '{value}' is invalid"):
        make_parser(model_info(yolo_v8_model(), **{key: value}), 0.4)


@pytest.mark.parametrize(
    ("key", "value"),
    [("vigil.stride", "-16"), ("vigil.bbox_norm", "nan"), ("vigil.offset", "x")],
)
def test_detectnet_v2_when_parameter_invalid_names_it(key, value):
    with pytest.raises(UnsupportedModelError, match=rf"'{key}'"):
        make_parser(model_info(detectnet_model(), **{key: value}), 0.4)


def test_yolo_seg_when_mask_threshold_invalid_names_it():
    with pytest.raises(UnsupportedModelError, match=r"'vigil\.mask_threshold'"):
        make_parser(model_info(yolo_seg_model(), **{"vigil.mask_threshold": "1"}), 0.4)


# --- events -------------------------------------------------------------------------------------


def test_events_carry_mask_outlines_and_attributes_and_match_the_schema():
    model = yolo_seg_model()
    info = model_info(model)
    (dets,) = make_parser(info, 0.4).parse(batch(model, [1.0]), [(128, 128)])
    attributes = np.empty(len(dets), object)
    attributes[:] = [{"apparel": "red"}, {"color": "blue"}]
    dets = Detections(
        dets.xyxy, dets.confidence, dets.class_id, data={**dets.data, ATTRIBUTES: attributes}
    )
    frame = Frame(
        "cam", 7, 0.7, datetime.now(UTC).timestamp(), 0.0, np.zeros((128, 128, 3), np.uint8)
    )
    events = EventBuilder(info, PlaceInfo(id="p"), "m").build(frame, dets)
    validator = Draft202012Validator(json.loads(FULL_SCHEMA_PATH.read_text()))
    for event in events:
        message = event.to_full()
        assert not [e.message for e in validator.iter_errors(message)]
    person, car = (e.to_full()["object"] for e in events)
    assert person["person"]["apparel"] == "red"
    assert car["vehicle"]["color"] == "blue"
    (outline,) = person["maskoutline"]
    corners = sorted(zip(outline[0::2], outline[1::2], strict=True))
    assert corners == [(16, 48), (16, 111), (79, 48), (79, 111)]


def test_events_without_masks_have_no_maskoutline():
    model = yolo_v8_model()
    info = model_info(model)
    (dets,) = make_parser(info, 0.4).parse(batch(model, [0.0]), [(64, 64)])
    frame = Frame("cam", 0, 0.0, 0.0, 0.0, np.zeros((64, 64, 3), np.uint8))
    for event in EventBuilder(info, PlaceInfo(id="p"), "m").build(frame, dets):
        assert "maskoutline" not in event.to_full()["object"]
