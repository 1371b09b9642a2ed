"""Instance masks: one object's pixels, stored cropped to its box.

Segmentation parsers put an object array of :class:`InstanceMask` in
``Detections.data["masks"]`` (:data:`MASKS`), one per row. Storing each mask cropped to the
object's box keeps a frame of many small objects small (a 1080p frame with 50 people holds
their boxes' pixels, not 50 full frames), and events carry the outline as polygons
(:meth:`InstanceMask.polygons`, the full schema's ``object.maskoutline``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

MASKS: Final[str] = "masks"
"""Key of the mask column in ``Detections.data`` (object array of :class:`InstanceMask`)."""


@dataclass(frozen=True, eq=False)
class InstanceMask:
    """The pixels of one object in source-frame coordinates.

    Attributes:
        left: Source x of ``mask[:, 0]``.
        top: Source y of ``mask[0, :]``.
        mask: ``bool (h, w)``: True where the object is; covers the object's box.
    """

    left: int
    top: int
    mask: np.ndarray

    def __post_init__(self) -> None:
        if self.mask.dtype != np.bool_ or self.mask.ndim != 2:
            raise ValueError(
                f"InstanceMask.mask must be a 2-D bool array, got {self.mask.dtype} "
                f"{self.mask.shape}"
            )

    @property
    def area(self) -> int:
        """Pixels covered."""
        return int(np.count_nonzero(self.mask))

    def full(self, width: int, height: int) -> np.ndarray:
        """The mask pasted into an all-False ``bool (height, width)`` frame."""
        out = np.zeros((height, width), np.bool_)
        h, w = self.mask.shape
        x0, y0 = max(self.left, 0), max(self.top, 0)
        x1, y1 = min(self.left + w, width), min(self.top + h, height)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = self.mask[
                y0 - self.top : y1 - self.top, x0 - self.left : x1 - self.left
            ]
        return out

    def polygons(self, epsilon_px: float = 1.0) -> list[list[int]]:
        """Outer outlines of the mask's parts as flat ``[x1, y1, x2, y2, ...]`` lists in
        source pixels (vertices on boundary pixels), simplified to within ``epsilon_px``.

        Parts smaller than a triangle (fewer than 3 vertices) are left out; holes are not
        described (an outline is what an overlay or a zone test needs).
        """
        contours, _ = cv2.findContours(
            self.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        result = []
        for contour in contours:
            if epsilon_px > 0:
                contour = cv2.approxPolyDP(contour, epsilon_px, closed=True)
            points = contour.reshape(-1, 2) + np.array([self.left, self.top])
            if len(points) >= 3:
                result.append([int(v) for v in points.reshape(-1)])
        return result
