"""Parser for TensorFlow Object Detection API SSD outputs (boxes, classes, scores, count)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vigil.detections import Detections
from vigil.infer.model import ModelInfo
from vigil.parsers.base import Cluster, Parser, clip_boxes


class SsdParser(Parser):
    """Parses ``detection_boxes`` (normalized y1, x1, y2, x2), ``detection_classes``,
    ``detection_scores`` and ``num_detections``.

    Boxes are normalized to the model input, which the preprocessing stretched from the
    whole source frame, so source pixels are a plain scale by the frame size.
    """

    name = "ssd"
    # the graph already ran NMS; ``vigil.cluster: nms`` can add a per-class pass on top
    default_cluster = Cluster.NONE

    def __init__(self, model: ModelInfo, confidence_threshold: float) -> None:
        super().__init__(model, confidence_threshold)
        self.require_outputs(
            "detection_boxes", "detection_classes", "detection_scores", "num_detections"
        )

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
            xyxy = np.empty((len(yxyx), 4), np.float32)
            xyxy[:, 0] = yxyx[:, 1] * width
            xyxy[:, 1] = yxyx[:, 0] * height
            xyxy[:, 2] = yxyx[:, 3] * width
            xyxy[:, 3] = yxyx[:, 2] * height
            score = score[keep].astype(np.float32)
            class_id = classes[i, :n][keep].astype(np.int32)
            chosen = self.select(xyxy, score, class_id)
            result.append(
                Detections(
                    xyxy=clip_boxes(xyxy[chosen], width, height),
                    confidence=score[chosen],
                    class_id=class_id[chosen],
                )
            )
        return result
