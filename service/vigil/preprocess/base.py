"""What every preprocessor shares: the model's input format and the call interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from vigil.frame import Frame
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.shm import TensorSpec


class Layout(StrEnum):
    """Memory layout of an image tensor (without the batch dimension)."""

    HWC = "hwc"
    CHW = "chw"


@dataclass(frozen=True)
class InputFormat:
    """How a model wants its image input.

    Frames are stretched to ``width`` × ``height`` (the detectors Vigil ships resize the same
    way internally, so boxes map back by plain scaling).
    """

    width: int
    height: int
    layout: Layout
    dtype: np.dtype
    scale: float = 1.0

    @classmethod
    def from_tensor(cls, spec: TensorSpec) -> InputFormat:
        """Derive the format from the model's input tensor: ``uint8 (H, W, 3)`` or
        ``float (3, H, W)`` scaled to [0, 1].

        Raises:
            UnsupportedModelError: any other shape, or dynamic dimensions.
        """
        shape = spec.shape
        if len(shape) == 3 and shape[2] == 3 and min(shape) > 0:
            return cls(shape[1], shape[0], Layout.HWC, np.dtype(spec.dtype))
        if len(shape) == 3 and shape[0] == 3 and min(shape) > 0 and spec.dtype.kind == "f":
            return cls(shape[2], shape[1], Layout.CHW, np.dtype(spec.dtype), 1 / 255)
        raise UnsupportedModelError(
            f"input {spec.name!r} {spec.dtype} {list(shape)}: Vigil's preprocessing needs a fixed "
            "image shape, (H, W, 3) or float (3, H, W)"
        )


class Preprocessor(Protocol):
    """Writes a batch of frames into a slot's input tensor.

    :class:`~vigil.preprocess.cpu.CpuPreprocessor` writes numpy arrays in system shared
    memory; :class:`~vigil.preprocess.gpu.GpuPreprocessor` writes CUDA tensors in CUDA shared
    memory. The pipeline calls either the same way, from a worker thread.
    """

    format: InputFormat

    def __call__(self, frames: Sequence[Frame], out: Any) -> None:
        """Write ``frames`` into ``out[:len(frames)]``; done (readable by Triton) on return."""
        ...
