import time

import numpy as np
import pytest

from vigil.frame import Frame
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.tensors import InputFormat, Layout, TensorSpec
from vigil.preprocess.cpu import CpuPreprocessor


def frame(value: int) -> Frame:
    image = np.full((60, 80, 3), value, np.uint8)
    image[..., 0] = 10  # red channel differs, to check channel order survives
    return Frame("s", 0, None, 0.0, time.monotonic(), image)


def test_preprocess_hwc_uint8_writes_into_the_given_buffer():
    fmt = InputFormat.from_tensor(TensorSpec("x", np.dtype(np.uint8), (30, 40, 3)))
    assert (fmt.width, fmt.height, fmt.layout) == (40, 30, Layout.HWC)
    out = np.zeros((2, 30, 40, 3), np.uint8)
    CpuPreprocessor(fmt)([frame(200), frame(50)], out)
    assert out[0, :, :, 0].max() == 10
    assert out[0, :, :, 1].min() == 200
    assert out[1, :, :, 2].min() == 50


def test_preprocess_chw_float_scales_to_unit_range():
    fmt = InputFormat.from_tensor(TensorSpec("x", np.dtype(np.float32), (3, 30, 40)))
    out = np.zeros((1, 3, 30, 40), np.float32)
    CpuPreprocessor(fmt)([frame(255)], out)
    np.testing.assert_allclose(out[0, 1], 1.0)
    np.testing.assert_allclose(out[0, 0], 10 / 255, rtol=1e-5)


@pytest.mark.parametrize("shape", [(-1, -1, 3), (30, 40), (4, 30, 40)])
def test_input_format_when_shape_unsupported_raises(shape):
    with pytest.raises(UnsupportedModelError, match="fixed image shape"):
        InputFormat.from_tensor(TensorSpec("x", np.dtype(np.uint8), shape))
