"""The frame envelope that travels through the pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class PixelFormat(StrEnum):
    """How a frame's pixels are laid out.

    ``RGB``: ``uint8 (H, W, 3)``. ``NV12``: ``uint8 (H * 3 / 2, W)`` — the luma plane, then the
    interleaved half-resolution chroma plane (what hardware video decoders produce).
    """

    RGB = "rgb"
    NV12 = "nv12"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded video frame and where it came from.

    The image lives in host memory (a numpy array) or, on the GPU path, in device memory (a
    torch tensor on a CUDA device, as the NVDEC source makes them). Stages that need pixels
    (preprocessing) handle both; every other stage reads only the metadata and
    :attr:`width` / :attr:`height`, which never touch the pixels.

    Attributes:
        stream_id: Id of the stream (sensor) the frame belongs to.
        frame_number: 0-based index of the frame within its stream.
        pts_s: Presentation time in seconds, from the container (None if unknown).
        capture_time_s: Wall-clock time (UNIX epoch seconds) when the frame was captured;
            for files, when it was decoded.
        decoded_monotonic_s: ``time.monotonic()`` when decoding finished; latency figures
            are measured from here.
        image: The pixels: a numpy array, or a CUDA tensor (anything with ``shape``,
            ``dtype`` and ``device``), laid out as ``pixel_format`` says.
        pixel_format: Layout of ``image``.
        infer: False for a frame the model skips (the stream's inference interval) that
            still goes through the stages, where the tracker predicts its boxes.
    """

    stream_id: str
    frame_number: int
    pts_s: float | None
    capture_time_s: float
    decoded_monotonic_s: float
    image: Any = field(repr=False)
    pixel_format: PixelFormat = PixelFormat.RGB
    infer: bool = True

    def __post_init__(self) -> None:
        shape = tuple(self.image.shape)
        dtype = str(self.image.dtype).removeprefix("torch.")
        if self.pixel_format is PixelFormat.RGB:
            ok = len(shape) == 3 and shape[2] == 3
            expected = "(H, W, 3)"
        else:
            ok = len(shape) == 2 and shape[0] % 3 == 0 and shape[0] >= 3
            expected = "(H * 3 / 2, W)"
        if not ok or dtype != "uint8":
            raise ValueError(
                f"Frame.image in {self.pixel_format.value} must be uint8 {expected}; "
                f"got {dtype} {shape}"
            )

    @classmethod
    def captured_now(
        cls,
        stream_id: str,
        frame_number: int,
        pts_s: float | None,
        image: Any,
        pixel_format: PixelFormat = PixelFormat.RGB,
    ) -> Frame:
        """A frame whose capture and decode times are now (what live and file sources use)."""
        return cls(
            stream_id, frame_number, pts_s, time.time(), time.monotonic(), image, pixel_format
        )

    @property
    def on_gpu(self) -> bool:
        """Whether the pixels are in GPU memory."""
        return not isinstance(self.image, np.ndarray)

    @property
    def width(self) -> int:
        """Source width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Source height in pixels."""
        rows = int(self.image.shape[0])
        return rows * 2 // 3 if self.pixel_format is PixelFormat.NV12 else rows
