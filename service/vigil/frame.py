"""The frame envelope that travels through the pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded video frame and where it came from.

    Attributes:
        stream_id: Id of the stream (sensor) the frame belongs to.
        frame_number: 0-based index of the frame within its stream.
        pts_s: Presentation time in seconds, from the container (None if unknown).
        capture_time_s: Wall-clock time (UNIX epoch seconds) when the frame was captured;
            for files, when it was decoded.
        decoded_monotonic_s: ``time.monotonic()`` when decoding finished; latency figures
            are measured from here.
        image: RGB image, ``uint8`` array of shape ``(height, width, 3)``.
    """

    stream_id: str
    frame_number: int
    pts_s: float | None
    capture_time_s: float
    decoded_monotonic_s: float
    image: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"Frame.image must be uint8 (H, W, 3); got {self.image.dtype} {self.image.shape}"
            )

    @classmethod
    def captured_now(
        cls, stream_id: str, frame_number: int, pts_s: float | None, image: np.ndarray
    ) -> Frame:
        """A frame whose capture and decode times are now (what live and file sources use)."""
        return cls(stream_id, frame_number, pts_s, time.time(), time.monotonic(), image)

    @property
    def width(self) -> int:
        """Source width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Source height in pixels."""
        return int(self.image.shape[0])
