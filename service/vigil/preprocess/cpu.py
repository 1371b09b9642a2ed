"""CPU preprocessing: resize, color and layout, written straight into a shared-memory slot."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vigil.frame import Frame
from vigil.infer.tensors import InputFormat, Layout

__all__ = ["CpuPreprocessor"]


class CpuPreprocessor:
    """Resizes RGB frames into a batch tensor with OpenCV (which releases the GIL).

    Frames must hold host RGB images (what the CPU sources make).
    """

    def __init__(self, fmt: InputFormat) -> None:
        self.format = fmt

    def __call__(self, frames: Sequence[Frame], out: np.ndarray) -> None:
        """Write ``frames`` into ``out[:len(frames)]`` (a view into a shared-memory slot)."""
        fmt = self.format
        size = (fmt.width, fmt.height)
        direct = fmt.layout is Layout.HWC and fmt.dtype == np.uint8
        for i, frame in enumerate(frames):
            if direct:
                cv2.resize(frame.image, size, dst=out[i], interpolation=cv2.INTER_LINEAR)
                continue
            resized = cv2.resize(frame.image, size, interpolation=cv2.INTER_LINEAR)
            if fmt.layout is Layout.CHW:
                resized = resized.transpose(2, 0, 1)
            np.multiply(resized, fmt.scale, out=out[i], casting="unsafe")
