"""Plain descriptions of a model's tensors: what a tensor is, and how an image input is laid out.

These types import nothing of the engine, so the Triton client, the preprocessors, the parsers
and the model registry all share them without depending on each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
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


class Resize(StrEnum):
    """How a frame is fitted to the model input (the model's ``vigil.resize`` parameter)."""

    #: The whole frame is scaled to the input's width and height (aspect ratio not kept).
    STRETCH = "stretch"
    #: Scaled by one factor to fit inside the input, centred, the rest padded
    #: (``vigil.pad_value``); what YOLO-family models are trained with.
    LETTERBOX = "letterbox"


#: Default padding of letterboxed inputs, in pixel units before the model's scale (Ultralytics'
#: gray, 114).
DEFAULT_PAD_VALUE = 114.0


@dataclass(frozen=True)
class Placement:
    """Where a source frame lands inside the model input, in input pixels: the rectangle
    ``[left, left + width) × [top, top + height)``; the rest of the input is padding."""

    left: int
    top: int
    width: int
    height: int

    def to_source(self, xyxy: np.ndarray, source_width: int, source_height: int) -> np.ndarray:
        """Boxes ``(N, 4)`` in input pixels → ``float32`` boxes in source pixels (not
        clipped)."""
        scale_x = source_width / self.width
        scale_y = source_height / self.height
        # one pass per operation (this runs for every frame of every stream)
        offset = np.array([self.left, self.top, self.left, self.top], np.float32)
        scale = np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
        return ((np.asarray(xyxy, np.float32) - offset) * scale).astype(np.float32, copy=False)


@dataclass(frozen=True)
class InputFormat:
    """How a model wants its image input.

    Frames are stretched to ``width`` × ``height`` (``resize`` stretch, the default) or
    letterboxed into it (``resize`` letterbox: scaled by one factor, centred, padded with
    ``pad_value``); :meth:`placement` gives where a frame lands, which the preprocessors
    write and the parsers undo.
    """

    width: int
    height: int
    layout: Layout
    dtype: np.dtype
    scale: float = 1.0
    resize: Resize = Resize.STRETCH
    pad_value: float = DEFAULT_PAD_VALUE

    @classmethod
    def from_tensor(
        cls, spec: TensorSpec, parameters: Mapping[str, str] | None = None
    ) -> InputFormat:
        """Derive the format from the model's input tensor: ``uint8 (H, W, 3)`` or
        ``float (3, H, W)`` scaled to [0, 1]; ``parameters`` (the model config's) give
        ``vigil.resize`` (``stretch`` or ``letterbox``) and ``vigil.pad_value`` (0–255).

        Raises:
            UnsupportedModelError: any other shape, dynamic dimensions, or a bad parameter
                (the message names it).
        """
        shape = spec.shape
        if len(shape) == 3 and shape[2] == 3 and min(shape) > 0:
            fmt = cls(shape[1], shape[0], Layout.HWC, np.dtype(spec.dtype))
        elif len(shape) == 3 and shape[0] == 3 and min(shape) > 0 and spec.dtype.kind == "f":
            fmt = cls(shape[2], shape[1], Layout.CHW, np.dtype(spec.dtype), 1 / 255)
        else:
            raise UnsupportedModelError(
                f"input {spec.name!r} {spec.dtype} {list(shape)}: Vigil's preprocessing needs a "
                "fixed image shape, (H, W, 3) or float (3, H, W)"
            )
        return fmt.with_parameters(parameters or {})

    def with_parameters(self, parameters: Mapping[str, str]) -> InputFormat:
        """This format with the resize options of a model config's ``parameters``.

        Raises:
            UnsupportedModelError: ``vigil.resize`` or ``vigil.pad_value`` is invalid.
        """
        raw = parameters.get("vigil.resize", "").strip()
        try:
            resize = Resize(raw) if raw else self.resize
        except ValueError:
            raise UnsupportedModelError(
                f"config parameter 'vigil.resize' = {raw!r} is invalid; expected one of "
                f"{[r.value for r in Resize]}"
            ) from None
        raw = parameters.get("vigil.pad_value", "").strip()
        try:
            pad = float(raw) if raw else self.pad_value
        except ValueError:
            pad = math.nan
        if not 0 <= pad <= 255:
            raise UnsupportedModelError(
                f"config parameter 'vigil.pad_value' = {raw!r} is invalid; expected a number "
                "in [0, 255]"
            )
        return replace(self, resize=resize, pad_value=pad)

    def placement(self, source_width: int, source_height: int) -> Placement:
        """Where a ``source_width`` × ``source_height`` frame lands in the input.

        Letterbox: one scale ``r = min(W / w, H / h)``, content ``round(w·r) × round(h·r)``,
        centred (the odd pixel of padding goes right / bottom).
        """
        if self.resize is Resize.STRETCH:
            return Placement(0, 0, self.width, self.height)
        ratio = min(self.width / source_width, self.height / source_height)
        width = min(self.width, max(1, round(source_width * ratio)))
        height = min(self.height, max(1, round(source_height * ratio)))
        return Placement((self.width - width) // 2, (self.height - height) // 2, width, height)
