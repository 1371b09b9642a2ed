"""NV12 images made from RGB ones, laid out as NVDEC hands frames over, for the tests of
preprocessing and drawing NV12 frames."""

from __future__ import annotations

import cv2
import numpy as np


def to_nv12(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (``H × W × 3``, even sides) as one ``H·3/2 × W`` NV12 image: ``H`` rows of Y,
    then ``H/2`` rows of interleaved U and V."""
    height, width = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    y = i420[:height]
    u = i420[height : height + height // 4].reshape(height // 2, width // 2)
    v = i420[height + height // 4 :].reshape(height // 2, width // 2)
    return np.concatenate([y, np.stack([u, v], -1).reshape(height // 2, width)])
