"""Parser for models with one output of rows: x1, y1, x2, y2 (normalized), score, class."""

import numpy as np

from vigil.ext import Detections, Parser, clip_boxes


class FlatDetectionsParser(Parser):
    """Reads the output ``detections`` of shape [rows, 6]; rows scoring 0 are padding."""

    name = "flat_detections"

    def __init__(self, model, confidence_threshold):
        super().__init__(model, confidence_threshold)
        self.require_outputs("detections")

    def parse(self, outputs, sizes):
        result = []
        for rows, (width, height) in zip(outputs["detections"], sizes, strict=False):
            rows = rows[rows[:, 4] >= self.confidence_threshold]
            xyxy = (rows[:, :4] * (width, height, width, height)).astype(np.float32)
            score = rows[:, 4].astype(np.float32)
            class_id = rows[:, 5].astype(np.int32)
            keep = self.select(xyxy, score, class_id)
            boxes = clip_boxes(xyxy[keep], width, height)
            result.append(Detections(boxes, score[keep], class_id[keep]))
        return result
