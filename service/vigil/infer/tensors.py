"""Plain descriptions of a model's tensors: what a tensor is, and how an image input is laid out.

These types import nothing of the engine, so the Triton client, the preprocessors, the parsers
and the model registry all share them without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from vigil.infer.errors import UnsupportedModelError


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of one batch item: dtype and shape without the batch dimension."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def item_bytes(self) -> int:
        """Bytes of one batch item."""
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


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
