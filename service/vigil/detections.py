"""Detections: N objects of one frame as parallel numpy arrays."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

ATTRIBUTES: Final[str] = "attributes"
"""``Detections.data`` key of per-object attributes from secondary models: an object array
of ``dict[str, str]`` (e.g. ``{"color": "red"}``), which events put in the object's class
sub-object."""


@dataclass(frozen=True)
class Detections:
    """N detected objects, one row per object, validated on construction.

    Attributes:
        xyxy: ``float32 (N, 4)`` boxes as left, top, right, bottom in source pixels.
        confidence: ``float32 (N,)`` scores in [0, 1].
        class_id: ``int32 (N,)`` class ids in the model's label numbering.
        tracker_id: ``int64 (N,)`` track ids, or None until a tracker assigns them.
        data: extra per-row columns (each an array of length N). Known keys:
            ``"masks"`` (:data:`vigil.masks.MASKS`, object array of
            :class:`~vigil.masks.InstanceMask`) and ``"attributes"`` (:data:`ATTRIBUTES`).

    An empty ``Detections`` (N = 0) is a valid value: see :meth:`empty`.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        _check(self.xyxy, "xyxy", (n, 4))
        _check(self.confidence, "confidence", (n,))
        _check(self.class_id, "class_id", (n,))
        if self.tracker_id is not None:
            _check(self.tracker_id, "tracker_id", (n,))
        for key, column in self.data.items():
            if len(column) != n:
                raise ValueError(f"Detections.data[{key!r}] has {len(column)} rows, expected {n}")

    @classmethod
    def empty(cls) -> Detections:
        """A Detections with no rows."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int32),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select rows by boolean mask, index array or slice; returns a new Detections."""
        if isinstance(index, int):
            index = [index]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            data={k: v[index] for k, v in self.data.items()},
        )

    def __iter__(self) -> Iterator[tuple[np.ndarray, float, int, int | None]]:
        """Yield ``(xyxy, confidence, class_id, tracker_id)`` per row."""
        for i in range(len(self)):
            tid = None if self.tracker_id is None else int(self.tracker_id[i])
            yield self.xyxy[i], float(self.confidence[i]), int(self.class_id[i]), tid


def _check(array: np.ndarray, name: str, shape: tuple[int, ...]) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"Detections.{name} must be a numpy array, got {type(array).__name__}")
    if array.shape != shape:
        raise ValueError(f"Detections.{name} must have shape {shape}, got {array.shape}")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
