"""Parser for Ultralytics YOLO detection exports (YOLOv5, YOLOv8 / YOLO11).

Layouts of the one output tensor, per image (N candidate boxes, nc classes):

* **v5**: ``[N, 5 + nc]`` rows of ``cx, cy, w, h, objectness, class scores...``;
  a candidate's score is ``objectness × class score``.
* **v8** (also YOLO11): ``[4 + nc, N]`` columns of ``cx, cy, w, h, class scores...``;
  no objectness.

Boxes are in model-input pixels; they map back to source pixels by undoing the stretch (a
per-axis scale) or the letterbox (``vigil.resize``: remove the padding, then one scale).

Model config parameters (besides the shared ones in :mod:`vigil.parsers.base`):

* ``vigil.yolo_layout``: ``v5``, ``v8`` or ``auto`` (default). ``auto`` reads the output
  shape: fewer rows than columns is v8 (``[84, 8400]``), otherwise v5 (``[25200, 85]``).
* ``vigil.output``: name of the output tensor (default: the model's only output).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

import numpy as np

from vigil.detections import Detections
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import TensorSpec
from vigil.parsers.base import Parser, cxcywh_to_xyxy, model_param


class YoloLayout(StrEnum):
    """How candidates are laid out in a YOLO output (``vigil.yolo_layout``)."""

    AUTO = "auto"
    V5 = "v5"
    V8 = "v8"


def detect_layout(shape: tuple[int, ...]) -> YoloLayout:
    """Guess the layout of a ``(rows, cols)`` output: v8 has fewer rows than columns."""
    rows, cols = shape
    return YoloLayout.V8 if rows < cols else YoloLayout.V5


def decode_candidates(
    raw: np.ndarray, layout: YoloLayout, num_classes: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of one image scoring at least ``threshold``.

    Args:
        raw: The image's output, ``[N, 5 + nc (+ extra)]`` (v5) or ``[4 + nc (+ extra), N]``
            (v8); extra columns (mask coefficients) follow the class scores.
        layout: v5 or v8.
        num_classes: nc.
        threshold: Minimum score.

    Returns:
        ``(cxcywh, score, class_id, index)``: boxes in input pixels, best class score, class,
        and each candidate's position among the N (to find its extra columns).
    """
    rows = raw.T if layout is YoloLayout.V8 else raw
    first = 5 if layout is YoloLayout.V5 else 4
    cls_scores = rows[:, first : first + num_classes]
    class_id = cls_scores.argmax(axis=1)
    score = np.take_along_axis(cls_scores, class_id[:, None], axis=1)[:, 0]
    if layout is YoloLayout.V5:
        score = score * rows[:, 4]
    index = np.flatnonzero(score >= threshold)
    return (
        rows[index, :4].astype(np.float32),
        score[index].astype(np.float32),
        class_id[index].astype(np.int32),
        index,
    )


class YoloParser(Parser):
    """Parses YOLOv5 / YOLOv8 / YOLO11 detection outputs, with per-class NMS."""

    name = "yolo"

    def __init__(self, model: ModelInfo, confidence_threshold: float) -> None:
        super().__init__(model, confidence_threshold)
        self.input_width, self.input_height = self.input_size()
        self.input_dims = (self.input_width, self.input_height)
        spec = self._detection_output()
        self.output = spec.name
        self.layout = self._layout(spec)
        self.num_classes = self._num_classes(spec, extra=self._extra_columns())

    def _extra_columns(self) -> int:
        """Values per candidate after the class scores (mask coefficients in subclasses)."""
        return 0

    def _detection_output(self) -> TensorSpec:
        spec = self.output_of_rank(2, "vigil.output", "output of rank 2 per image")
        if len(spec.shape) != 2 or min(spec.shape) <= 0:
            raise UnsupportedModelError(
                f"parser {self.name!r}: output {spec.name!r} of model {self.model.name!r} has "
                f"shape {list(spec.shape)}; expected a fixed [N, 5+nc] or [4+nc, N]"
            )
        return spec

    def _layout(self, spec: TensorSpec) -> YoloLayout:
        layout = model_param(
            self.model, "vigil.yolo_layout", YoloLayout, YoloLayout.AUTO,
            lambda v: True, "one of ['auto', 'v5', 'v8']",
        )  # fmt: skip
        return detect_layout(spec.shape) if layout is YoloLayout.AUTO else layout

    def _num_classes(self, spec: TensorSpec, extra: int) -> int:
        rows, cols = spec.shape
        width = cols if self.layout is YoloLayout.V5 else rows
        nc = width - (5 if self.layout is YoloLayout.V5 else 4) - extra
        if nc < 1:
            raise UnsupportedModelError(
                f"parser {self.name!r}: output {spec.name!r} {list(spec.shape)} leaves no class "
                f"scores in layout {self.layout.value}"
            )
        return nc

    def parse(
        self, outputs: Mapping[str, np.ndarray], sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Parse a batch of YOLO outputs into detections in source pixels."""
        raw = outputs[self.output]
        result = []
        for i, (width, height) in enumerate(sizes):
            boxes, score, class_id, _ = decode_candidates(
                raw[i], self.layout, self.num_classes, self.confidence_threshold
            )
            # NMS in input pixels, as Ultralytics does (the stretch changes IoUs slightly)
            keep = self.select(cxcywh_to_xyxy(boxes, 1.0, 1.0), score, class_id)
            xyxy = cxcywh_to_xyxy(boxes[keep], 1.0, 1.0)
            result.append(
                Detections(
                    xyxy=self.to_source(xyxy, width, height, self.input_dims),
                    confidence=score[keep],
                    class_id=class_id[keep],
                )
            )
        return result
