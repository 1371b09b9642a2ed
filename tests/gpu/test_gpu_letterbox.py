"""Letterbox on the GPU path: the torch preprocessing (RGB frames) and the fused NV12 kernel
give the reference letterbox, and the parsed boxes equal the reference parse in plain numpy
(tests/support/letterbox.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.support import letterbox as ref
from tests.support.nv12 import to_nv12
from vigil.frame import Frame, PixelFormat
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import Layout
from vigil.parsers import make_parser
from vigil.preprocess.gpu import GpuPreprocessor

pytestmark = pytest.mark.gpu

LETTERBOX = {"vigil.resize": "letterbox"}
SOURCES = [(1280, 720, (400, 200, 700, 500)), (480, 640, (100, 300, 260, 600))]
MODELS = {
    "yolo-chw-fp32": ref.yolo_model(**LETTERBOX),
    "detectnet-chw-fp32": ref.detectnet_model(**LETTERBOX),
    "ssd-hwc-uint8": ref.ssd_model(300, **LETTERBOX),
}


def run(torch, model: ModelInfo, frames: list[Frame], *, fused: bool = True) -> np.ndarray:
    """GPU preprocessing of ``frames``, as ``(N, H, W, 3)`` float64 inputs in pixel units."""
    fmt = model.input_format()
    n = len(frames)
    shape = (
        (n, 3, fmt.height, fmt.width) if fmt.layout is Layout.CHW else (n, fmt.height, fmt.width, 3)
    )
    dtype = torch.from_numpy(np.empty(0, fmt.dtype)).dtype
    out = torch.full(shape, 7, dtype=dtype, device="cuda")
    GpuPreprocessor(fmt, fused=fused)(frames, out)
    pixels = out.cpu().numpy().astype(np.float64) / fmt.scale
    return pixels.transpose(0, 2, 3, 1) if fmt.layout is Layout.CHW else pixels


def rgb_frame(image: np.ndarray) -> Frame:
    return Frame("s", 0, None, 0.0, time.monotonic(), image)


def nv12_frame(torch, image: np.ndarray) -> Frame:
    nv12 = torch.from_numpy(to_nv12(image)).cuda()
    return Frame("s", 0, None, 0.0, time.monotonic(), nv12, PixelFormat.NV12)


def check_boxes(model: ModelInfo, model_input: np.ndarray, width, height, rect) -> None:
    """The parse of the object found in ``model_input`` equals the reference parse, and lies
    on the object."""
    fmt = model.input_format()
    box = ref.find_object(model_input)
    outputs = {
        "yolo": ref.yolo_outputs,
        "detectnet_v2": ref.detectnet_outputs,
        "ssd": lambda b: ref.ssd_outputs(b, fmt.width),
    }[model.parser](box)
    (dets,) = make_parser(model, 0.5).parse(outputs, [(width, height)])
    expected = ref.reference_boxes(box, width, height, fmt.width, fmt.height)
    np.testing.assert_allclose(dets.xyxy, expected, atol=1e-3)
    r = min(fmt.width / width, fmt.height / height)
    np.testing.assert_allclose(dets.xyxy[0], rect, atol=1.0 / r + 1.5)


@pytest.mark.parametrize("name", list(MODELS))
def test_gpu_letterbox_of_rgb_frames_is_the_reference(cuda, name):
    model = MODELS[name]
    fmt = model.input_format()
    images = [ref.scene(w, h, rect) for w, h, rect in SOURCES]
    got = run(cuda, model, [rgb_frame(i) for i in images])
    for k, (image, (width, height, rect)) in enumerate(zip(images, SOURCES, strict=True)):
        expected = ref.reference_letterbox(image, fmt.width, fmt.height, ref.PAD)
        assert np.abs(got[k] - expected).max() <= 1.01
        check_boxes(model, got[k], width, height, rect)


@pytest.mark.parametrize("name", list(MODELS))
def test_fused_nv12_letterbox_equals_torch_and_the_reference(cuda, name):
    torch = cuda
    model = MODELS[name]
    fmt = model.input_format()
    images = [ref.scene(w, h, rect) for w, h, rect in SOURCES]
    frames = [nv12_frame(torch, i) for i in images]
    fused = run(torch, model, frames)
    plain = run(torch, model, frames, fused=False)
    # same arithmetic, fp16 / uint8 rounding apart
    assert np.abs(fused - plain).max() <= 1.01
    for k, (image, (width, height, rect)) in enumerate(zip(images, SOURCES, strict=True)):
        g = ref.geometry(width, height, fmt.width, fmt.height)
        pad = np.ones(fused.shape[1:3], bool)
        pad[g.top : g.top + g.height, g.left : g.left + g.width] = False
        np.testing.assert_allclose(fused[k][pad], ref.PAD, atol=0.3)
        # NV12 has half-resolution chroma and limited range: the object's edges stay put
        expected = ref.reference_letterbox(image, fmt.width, fmt.height, ref.PAD)
        assert np.median(np.abs(fused[k] - expected)) <= 2.0
        check_boxes(model, fused[k], width, height, rect)


def test_fused_stretch_is_unchanged_by_the_letterbox_arguments(cuda):
    """Stretch (the default) still fills the whole input, as before the letterbox option."""
    torch = cuda
    model = ref.yolo_model()
    image = ref.scene(1280, 720, (400, 200, 700, 500))
    frames = [nv12_frame(torch, image)]
    fused = run(torch, model, frames)
    plain = run(torch, model, frames, fused=False)
    assert np.abs(fused - plain).max() <= 1.01
    assert (fused != 7).all()


@pytest.mark.parametrize("nv12", [False, True], ids=["rgb-torch", "nv12-fused"])
def test_letterbox_of_interleaved_sizes_lands_in_the_right_rows(cuda, nv12):
    """Frames of one size that are not next to each other in the batch (written through a
    scratch tensor and index_copy) get the same input as when alone."""
    torch = cuda
    model = MODELS["yolo-chw-fp32"]
    images = [ref.scene(w, h, rect) for w, h, rect in (*SOURCES, SOURCES[0])]
    make = (lambda i: nv12_frame(torch, i)) if nv12 else rgb_frame
    together = run(torch, model, [make(i) for i in images])
    for k, image in enumerate(images):
        alone = run(torch, model, [make(image)])
        np.testing.assert_array_equal(together[k], alone[0])
    width, height, rect = SOURCES[0]
    check_boxes(model, together[2], width, height, rect)
