"""GPU preprocessing gives what the CPU preprocessing gives (RGB and NV12 frames)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from tests.support.nv12 import to_nv12
from vigil.frame import Frame, PixelFormat
from vigil.infer.tensors import InputFormat, Layout
from vigil.preprocess.cpu import CpuPreprocessor
from vigil.preprocess.gpu import GpuPreprocessor

pytestmark = pytest.mark.gpu

DETECTOR = InputFormat(960, 544, Layout.CHW, np.dtype(np.float16), 1 / 255)
SSD = InputFormat(300, 300, Layout.HWC, np.dtype(np.uint8))


def scene(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth gradients with a few solid boxes (what cameras see; noise would only test
    rounding)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([255 * x / width, 255 * y / height, 128 + 0 * x], -1)
    for _ in range(5):
        x0, y0 = rng.integers(0, width - 100), rng.integers(0, height - 100)
        image[y0 : y0 + 90, x0 : x0 + 60] = rng.integers(0, 255, 3)
    return image.astype(np.uint8)


def frame(image, pixel_format=PixelFormat.RGB) -> Frame:
    return Frame("s", 0, None, 0.0, time.monotonic(), image, pixel_format)


@pytest.mark.parametrize("fmt", [DETECTOR, SSD], ids=["chw-fp16", "hwc-uint8"])
def test_gpu_preprocess_matches_cpu_for_rgb_frames_of_mixed_sizes(cuda, fmt):
    torch = cuda
    frames = [frame(scene(1920, 1080, 0)), frame(scene(1280, 720, 1)), frame(scene(1920, 1080, 2))]
    shape = (
        (4, 3, fmt.height, fmt.width) if fmt.layout is Layout.CHW else (4, fmt.height, fmt.width, 3)
    )
    expected = np.zeros(shape, fmt.dtype)
    CpuPreprocessor(fmt)(frames, expected)
    dtype = torch.from_numpy(np.empty(0, fmt.dtype)).dtype
    out = torch.full(shape, 7, dtype=dtype, device="cuda")
    GpuPreprocessor(fmt)(frames, out)
    got = out.cpu().numpy()
    scale = 255 if fmt.dtype == np.float16 else 1
    diff = np.abs(got[:3].astype(np.float32) - expected[:3].astype(np.float32)) * scale
    assert diff.max() <= 2.0, diff.max()
    assert (got[3] == 7).all(), "rows past the batch must stay untouched"


def test_gpu_preprocess_converts_nv12_like_opencv(cuda):
    torch = cuda
    rgb = scene(1920, 1080, 3)
    nv12 = to_nv12(rgb)
    reference = cv2.cvtColor(nv12, cv2.COLOR_YUV2RGB_NV12)
    expected = np.zeros((1, 3, 544, 960), np.float16)
    CpuPreprocessor(DETECTOR)([frame(reference)], expected)
    out = torch.zeros((1, 3, 544, 960), dtype=torch.float16, device="cuda")
    gpu_frame = frame(torch.from_numpy(nv12).cuda(), PixelFormat.NV12)
    assert (gpu_frame.width, gpu_frame.height) == (1920, 1080)
    GpuPreprocessor(DETECTOR)([gpu_frame], out)
    diff = np.abs(out.cpu().numpy().astype(np.float32) - expected.astype(np.float32)) * 255
    assert diff.mean() < 1.5, diff.mean()
    assert np.percentile(diff, 99.9) < 12, np.percentile(diff, 99.9)


@pytest.mark.parametrize("fmt", [DETECTOR, SSD], ids=["chw-fp16", "hwc-uint8"])
def test_fused_nv12_kernel_matches_the_torch_version(cuda, fmt):
    """The one-launch NV12 kernel writes what the torch ops write, also into scattered rows
    of a batch that mixes NV12 and RGB frames (the RGB row goes the torch way)."""
    torch = cuda
    fused = GpuPreprocessor(fmt)
    if fused._fused is None:
        pytest.skip("OpenAI Triton (torch's kernel compiler) is not installed")
    nv12 = [torch.from_numpy(to_nv12(scene(1920, 1080, s))).cuda() for s in (4, 5)]
    frames = [
        frame(nv12[0], PixelFormat.NV12),
        frame(scene(1280, 720, 6)),
        frame(nv12[1], PixelFormat.NV12),
    ]
    shape = (
        (4, 3, fmt.height, fmt.width) if fmt.layout is Layout.CHW else (4, fmt.height, fmt.width, 3)
    )
    dtype = torch.from_numpy(np.empty(0, fmt.dtype)).dtype
    got = torch.full(shape, 7, dtype=dtype, device="cuda")
    expected = torch.full(shape, 7, dtype=dtype, device="cuda")
    fused(frames, got)
    GpuPreprocessor(fmt, fused=False)(frames, expected)
    scale = 255 if fmt.dtype == np.float16 else 1
    diff = (got.float() - expected.float()).abs() * scale
    # same arithmetic, different rounding order (fp32 in both; fp16/uint8 at the end)
    assert diff.max().item() <= 1.0, diff.max().item()
    assert (got[3] == 7).all(), "rows past the batch must stay untouched"
