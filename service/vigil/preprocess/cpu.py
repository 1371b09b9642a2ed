"""CPU preprocessing: resize, color and layout, written straight into a shared-memory slot."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vigil.frame import Frame
from vigil.infer.tensors import InputFormat, Layout, Resize

__all__ = ["CpuPreprocessor"]


class CpuPreprocessor:
    """Resizes RGB frames into a batch tensor with OpenCV (which releases the GIL).

    Frames are stretched to the input, or letterboxed into it when the format says so
    (:meth:`~vigil.infer.tensors.InputFormat.placement`: one scale, centred, the rest
    ``pad_value``). Frames must hold host RGB images (what the CPU sources make).
    """

    def __init__(self, fmt: InputFormat) -> None:
        self.format = fmt

    def __call__(self, frames: Sequence[Frame], out: np.ndarray) -> None:
        """Write ``frames`` into ``out[:len(frames)]`` (a view into a shared-memory slot)."""
        fmt = self.format
        direct = fmt.layout is Layout.HWC and fmt.dtype == np.uint8
        letterbox = fmt.resize is Resize.LETTERBOX
        for i, frame in enumerate(frames):
            place = fmt.placement(frame.width, frame.height)
            size = (place.width, place.height)
            if letterbox:
                # the whole slot row is written: padding, then the content over it
                out[i] = fmt.pad_value * fmt.scale
            if fmt.layout is Layout.CHW:
                target = out[i][:, place.top : place.top + place.height]
                target = target[:, :, place.left : place.left + place.width]
            else:
                target = out[i][place.top : place.top + place.height]
                target = target[:, place.left : place.left + place.width]
            if direct and not letterbox:
                cv2.resize(frame.image, size, dst=target, interpolation=cv2.INTER_LINEAR)
                continue
            resized = cv2.resize(frame.image, size, interpolation=cv2.INTER_LINEAR)
            if fmt.layout is Layout.CHW:
                resized = resized.transpose(2, 0, 1)
            np.multiply(resized, fmt.scale, out=target, casting="unsafe")
