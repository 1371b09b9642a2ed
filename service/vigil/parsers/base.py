"""The parser interface: raw output tensors of a batch → one Detections per frame."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from vigil.detections import Detections
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo


class Parser(ABC):
    """Turns a model's output tensors into detections in source-frame pixels.

    Args:
        model: The model whose outputs are parsed; implementations check in ``__init__``
            that its outputs are the ones they understand.
        confidence_threshold: Detections scoring below are dropped.
    """

    #: Name used in the model config's ``vigil.parser`` parameter.
    name: str = ""

    def __init__(self, model: ModelInfo, confidence_threshold: float) -> None:
        self.model = model
        self.confidence_threshold = confidence_threshold

    @abstractmethod
    def parse(
        self, outputs: Mapping[str, np.ndarray], sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Parse a batch.

        Args:
            outputs: Output name → array whose first dimension is the batch (at least
                ``len(sizes)`` rows; only those are read).
            sizes: ``(width, height)`` of each frame's source image.
        """

    def _require_outputs(self, *names: str) -> None:
        have = {o.name for o in self.model.outputs}
        missing = [n for n in names if n not in have]
        if missing:
            raise UnsupportedModelError(
                f"parser {self.name!r} needs outputs {list(names)}; model {self.model.name!r} "
                f"lacks {missing} (it has {sorted(have)})"
            )


def clip_boxes(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the frame, in place; returns ``xyxy``."""
    np.clip(xyxy[:, 0::2], 0, width - 1, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, height - 1, out=xyxy[:, 1::2])
    return xyxy
