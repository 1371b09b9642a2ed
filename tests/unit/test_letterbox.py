"""Letterbox (``vigil.resize: letterbox``) on the CPU path: preprocessing and parsers against
a reference letterbox + parse in plain numpy (tests/support/letterbox.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.support import letterbox as ref
from vigil.frame import Frame
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import InputFormat, Layout, Placement, Resize
from vigil.masks import MASKS
from vigil.parsers import make_parser
from vigil.preprocess.cpu import CpuPreprocessor

LETTERBOX = {"vigil.resize": "letterbox"}
#: (source width, height, object rect): landscape, portrait, and the input's own aspect
SOURCES = [
    (1280, 720, (400, 200, 700, 500)),
    (480, 640, (100, 300, 260, 600)),
    (1920, 1080, (50, 60, 1900, 300)),
]


def frame(image: np.ndarray) -> Frame:
    return Frame("s", 0, None, 0.0, time.monotonic(), image)


def preprocess(model: ModelInfo, image: np.ndarray) -> np.ndarray:
    """Vigil's CPU preprocessing of one frame, as an ``(H, W, 3)`` float input in pixel
    units."""
    fmt = model.input_format()
    shape = (
        (1, 3, fmt.height, fmt.width) if fmt.layout is Layout.CHW else (1, fmt.height, fmt.width, 3)
    )
    out = np.full(shape, 7, fmt.dtype)
    CpuPreprocessor(fmt)([frame(image)], out)
    pixels = out[0].astype(np.float64) / fmt.scale
    return pixels.transpose(1, 2, 0) if fmt.layout is Layout.CHW else pixels


@pytest.mark.parametrize(
    ("src", "dst"),
    [((1280, 720), (640, 640)), ((480, 640), (640, 640)), ((1920, 1080), (960, 544)),
     ((1000, 333), (300, 300)), ((640, 640), (640, 640)), ((7, 1000), (300, 300))],
)  # fmt: skip
def test_placement_is_the_reference_geometry(src, dst):
    fmt = InputFormat(dst[0], dst[1], Layout.CHW, np.dtype(np.float32), resize=Resize.LETTERBOX)
    g = ref.geometry(*src, *dst)
    assert fmt.placement(*src) == Placement(g.left, g.top, g.width, g.height)
    stretch = InputFormat(dst[0], dst[1], Layout.CHW, np.dtype(np.float32))
    assert stretch.placement(*src) == Placement(0, 0, *dst)


@pytest.mark.parametrize(
    "model",
    [ref.yolo_model(**LETTERBOX), ref.ssd_model(**LETTERBOX)],
    ids=["chw-float", "hwc-uint8"],
)
@pytest.mark.parametrize(("width", "height", "rect"), SOURCES)
def test_cpu_letterbox_is_the_reference_image(model, width, height, rect):
    image = ref.scene(width, height, rect)
    fmt = model.input_format()
    got = preprocess(model, image)
    expected = ref.reference_letterbox(image, fmt.width, fmt.height, ref.PAD)
    # OpenCV's fixed-point weights and the uint8 rounding: at most a level or so apart
    assert np.abs(got - expected).max() <= 1.01
    g = ref.geometry(width, height, fmt.width, fmt.height)
    pad = np.ones(got.shape[:2], bool)
    pad[g.top : g.top + g.height, g.left : g.left + g.width] = False
    assert pad.any() or (g.width, g.height) == (fmt.width, fmt.height)
    np.testing.assert_allclose(got[pad], ref.PAD, atol=1e-4)


def _check_boxes(model, outputs_of, width, height, rect):
    """preprocess → "model" → parse equals the reference parse of the same input box, lies on
    the object, and the reference letterbox finds the same box."""
    image = ref.scene(width, height, rect)
    fmt = model.input_format()
    got_input = preprocess(model, image)
    box = ref.find_object(got_input)
    reference_box = ref.find_object(ref.reference_letterbox(image, fmt.width, fmt.height, ref.PAD))
    np.testing.assert_allclose(box, reference_box, atol=1)
    (dets,) = make_parser(model, 0.5).parse(outputs_of(box), [(width, height)])
    expected = ref.reference_boxes(box, width, height, fmt.width, fmt.height)
    np.testing.assert_allclose(dets.xyxy, expected, atol=1e-3)
    # and it is the object: within one input pixel of its true edges (clipped like the parse)
    r = min(fmt.width / width, fmt.height / height)
    true = np.array(rect, np.float64)
    true[0::2] = np.clip(true[0::2], 0, width - 1)
    true[1::2] = np.clip(true[1::2], 0, height - 1)
    np.testing.assert_allclose(dets.xyxy[0], true, atol=1.0 / r + 1)
    return dets


@pytest.mark.parametrize(("width", "height", "rect"), SOURCES)
def test_yolo_letterbox_boxes_equal_the_reference(width, height, rect):
    _check_boxes(ref.yolo_model(**LETTERBOX), ref.yolo_outputs, width, height, rect)


@pytest.mark.parametrize(("width", "height", "rect"), SOURCES)
def test_detectnet_letterbox_boxes_equal_the_reference(width, height, rect):
    _check_boxes(ref.detectnet_model(**LETTERBOX), ref.detectnet_outputs, width, height, rect)


@pytest.mark.parametrize(("width", "height", "rect"), SOURCES)
def test_ssd_letterbox_boxes_equal_the_reference(width, height, rect):
    outputs = lambda box: ref.ssd_outputs(box, 300)  # noqa: E731
    _check_boxes(ref.ssd_model(300, **LETTERBOX), outputs, width, height, rect)


@pytest.mark.parametrize(("width", "height", "rect"), SOURCES[:2])
def test_yolo_seg_letterbox_masks_cover_the_object_in_source_pixels(width, height, rect):
    outputs = lambda box: ref.yolo_seg_outputs(box, 640)  # noqa: E731
    dets = _check_boxes(ref.yolo_seg_model(**LETTERBOX), outputs, width, height, rect)
    full = dets.data[MASKS][0].full(width, height)
    x0, y0, x1, y1 = rect
    truth = np.zeros((height, width), bool)
    truth[y0:y1, x0:x1] = True
    iou = (full & truth).sum() / (full | truth).sum()
    assert iou > 0.97, iou


def test_stretch_and_letterbox_differ_on_the_same_outputs():
    """The parameter really changes the mapping (a letterbox parse of stretched boxes is
    off by the padding)."""
    outputs = ref.yolo_outputs((100.0, 200.0, 300.0, 400.0))
    (stretched,) = make_parser(ref.yolo_model(), 0.5).parse(outputs, [(1280, 720)])
    (boxed,) = make_parser(ref.yolo_model(**LETTERBOX), 0.5).parse(outputs, [(1280, 720)])
    np.testing.assert_allclose(stretched.xyxy[0], [200, 225, 600, 450], atol=1e-3)
    # r = 0.5, content 640 × 360 at top 140: y = (200 − 140) / 0.5
    np.testing.assert_allclose(boxed.xyxy[0], [200, 120, 600, 520], atol=1e-3)


def test_pad_value_comes_from_the_config():
    model = ref.yolo_model(**LETTERBOX, **{"vigil.pad_value": "0"})
    got = preprocess(model, ref.scene(1280, 720, (400, 200, 700, 500)))
    assert got[0, 0].tolist() == [0.0, 0.0, 0.0]
    assert model.input_format().pad_value == 0.0


@pytest.mark.parametrize(
    ("params", "name"),
    [({"vigil.resize": "fit"}, "vigil.resize"), ({"vigil.pad_value": "300"}, "vigil.pad_value"),
     ({"vigil.pad_value": "gray"}, "vigil.pad_value")],
)  # fmt: skip
def test_bad_resize_parameters_name_the_parameter_and_the_model(params, name):
    model = ref.yolo_model(**params)
    with pytest.raises(UnsupportedModelError, match=f"'yolo_lb'.*'{name}'"):
        model.input_format()
    with pytest.raises(UnsupportedModelError, match=name):
        make_parser(model, 0.5)
