"""The check the NVDEC tests share: GPU-decoded frames show what the CPU decodes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vigil.frame import Frame
from vigil.infer.tensors import InputFormat, Layout
from vigil.preprocess.gpu import GpuPreprocessor


def assert_like_cpu_decode(frames: Sequence[Frame], clip: Path) -> None:
    """``frames`` (1080p, on the GPU) are the clip's first frames as OpenCV decodes them:
    converted to RGB on the GPU, they differ by less than 3 per channel on average."""
    import torch

    from bench.gpu.bench import cpu_frames  # imports torch: only where the test runs

    full = InputFormat(1920, 1080, Layout.HWC, np.dtype(np.uint8))
    out = torch.empty((len(frames), 1080, 1920, 3), dtype=torch.uint8, device="cuda")
    GpuPreprocessor(full)(frames, out)
    expected = np.stack(cpu_frames(clip, len(frames)))
    diff = np.abs(out.cpu().numpy().astype(np.int16) - expected.astype(np.int16))
    assert diff.mean() < 3.0, diff.mean()
