"""Parser for TensorFlow Object Detection API SSD outputs (boxes, classes, scores, count)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vigil.detections import Detections
from vigil.infer.model import ModelInfo
from vigil.parsers.base import Cluster, Parser


class SsdParser(Parser):
    """Parses ``detection_boxes`` (normalized y1, x1, y2, x2), ``detection_classes``,
    ``detection_scores`` and ``num_detections``.

    Boxes are normalized to the model input. A stretched frame filled the whole input, so
    source pixels are a plain scale by the frame size; a letterboxed one (``vigil.resize``)
    maps back through the input's size and the padding.
    """

    name = "ssd"
    # the graph already ran NMS; ``vigil.cluster: nms`` can add a per-class pass on top
    default_cluster = Cluster.NONE

    def __init__(self, model: ModelInfo, confidence_threshold: float) -> None:
        super().__init__(model, confidence_threshold)
        self.require_outputs(
            "detection_boxes", "detection_classes", "detection_scores", "num_detections"
        )
        # boxes are normalized: "input pixels" of a 1 × 1 input when stretched (the input may
        # have any size then: the graph resizes itself)
        self.units = (1, 1) if self.letterbox is None else self.input_size()

    def parse(
        self, outputs: Mapping[str, np.ndarray], sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Parse a batch of SSD outputs into detections in source pixels."""
        boxes = outputs["detection_boxes"]
        classes = outputs["detection_classes"]
        scores = outputs["detection_scores"]
        counts = outputs["num_detections"].reshape(len(outputs["num_detections"]), -1)[:, 0]
        result = []
        for i, (width, height) in enumerate(sizes):
            n = int(counts[i])
            score = scores[i, :n]
            keep = score >= self.confidence_threshold
            yxyx = boxes[i, :n][keep]
            units = self.units
            xyxy = np.empty((len(yxyx), 4), np.float32)
            xyxy[:, 0] = yxyx[:, 1] * units[0]
            xyxy[:, 1] = yxyx[:, 0] * units[1]
            xyxy[:, 2] = yxyx[:, 3] * units[0]
            xyxy[:, 3] = yxyx[:, 2] * units[1]
            score = score[keep].astype(np.float32)
            class_id = classes[i, :n][keep].astype(np.int32)
            chosen = self.select(xyxy, score, class_id)
            result.append(
                Detections(
                    xyxy=self.to_source(xyxy[chosen], width, height, units),
                    confidence=score[chosen],
                    class_id=class_id[chosen],
                )
            )
        return result
