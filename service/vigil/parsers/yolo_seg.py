"""Parser for Ultralytics YOLO instance segmentation exports (YOLOv8-seg, YOLO11-seg, v5-seg).

Two outputs per image:

* detections, as :mod:`vigil.parsers.yolo` (v8 layout ``[4 + nc + nm, N]``; v5 layout
  ``[N, 5 + nc + nm]``), each candidate followed by ``nm`` mask coefficients;
* prototypes ``[nm, mh, mw]`` (usually 32 × 160 × 160 for a 640 input: a quarter of the
  input resolution).

An object's mask is ``sigmoid(coefficients @ prototypes)``, cropped to its box, resized to
the source frame and thresholded. Vigil samples the prototype logits straight at the source
pixels of the box (one bilinear warp per object), so no full-frame mask is ever made, and
stores the result as an :class:`~vigil.masks.InstanceMask` in ``Detections.data["masks"]``.

Model config parameters (besides the shared ones and ``vigil.yolo_layout``):

* ``vigil.output`` / ``vigil.proto_output``: output names (defaults: the model's rank-2 and
  rank-3 outputs);
* ``vigil.mask_threshold``: mask probability threshold (default 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from vigil.detections import Detections
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import Placement
from vigil.masks import MASKS, InstanceMask
from vigil.parsers.base import cxcywh_to_xyxy, model_param
from vigil.parsers.yolo import YoloLayout, YoloParser, decode_candidates


class YoloSegParser(YoloParser):
    """Parses YOLO segmentation outputs into detections with per-object masks."""

    name = "yolo_seg"

    def __init__(self, model: ModelInfo, confidence_threshold: float) -> None:
        super().__init__(model, confidence_threshold)
        threshold = model_param(
            model, "vigil.mask_threshold", float, 0.5, lambda v: 0 < v < 1, "a number in (0, 1)"
        )
        # Threshold logits instead of probabilities: sigmoid is monotonic.
        self.mask_logit_threshold = math.log(threshold / (1 - threshold))

    def _extra_columns(self) -> int:
        proto = self.output_of_rank(3, "vigil.proto_output", "prototype output [nm, mh, mw]")
        if len(proto.shape) != 3 or min(proto.shape) <= 0:
            raise UnsupportedModelError(
                f"parser {self.name!r}: prototype output {proto.name!r} has shape "
                f"{list(proto.shape)}; expected a fixed [nm, mh, mw]"
            )
        self.proto_output = proto.name
        self.num_masks, self.proto_height, self.proto_width = proto.shape
        return self.num_masks

    def parse(
        self, outputs: Mapping[str, np.ndarray], sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Parse a batch into detections with masks (``data["masks"]``) in source pixels."""
        raw, protos = outputs[self.output], outputs[self.proto_output]
        first = 5 if self.layout is YoloLayout.V5 else 4
        coef_cols = slice(first + self.num_classes, first + self.num_classes + self.num_masks)
        result = []
        for i, (width, height) in enumerate(sizes):
            boxes, score, class_id, index = decode_candidates(
                raw[i], self.layout, self.num_classes, self.confidence_threshold
            )
            keep = self.select(cxcywh_to_xyxy(boxes, 1.0, 1.0), score, class_id)
            rows = raw[i].T if self.layout is YoloLayout.V8 else raw[i]
            coefs = rows[index[keep], coef_cols].astype(np.float32)
            xyxy = self.to_source(
                cxcywh_to_xyxy(boxes[keep], 1.0, 1.0), width, height, self.input_dims
            )
            placement = self.placement(width, height, self.input_dims)
            logits = coefs @ protos[i].reshape(self.num_masks, -1).astype(np.float32)
            logits = logits.reshape(-1, self.proto_height, self.proto_width)
            masks = np.empty(len(keep), object)
            for k in range(len(keep)):
                masks[k] = self._mask(logits[k], xyxy[k], width, height, placement)
            result.append(
                Detections(
                    xyxy=xyxy,
                    confidence=score[keep],
                    class_id=class_id[keep],
                    data={MASKS: masks},
                )
            )
        return result

    def _mask(
        self, logits: np.ndarray, box: np.ndarray, width: int, height: int, placement: Placement
    ) -> InstanceMask:
        """Sample one object's mask logits at the source pixels of its box (``placement``:
        where the frame landed in the input, so letterbox padding is skipped)."""
        left, top = math.floor(box[0]), math.floor(box[1])
        right = min(width, max(left + 1, math.ceil(box[2])))
        bottom = min(height, max(top + 1, math.ceil(box[3])))
        # input pixels per prototype pixel, per axis
        px, py = self.proto_width / self.input_width, self.proto_height / self.input_height
        sx, sy = placement.width / width * px, placement.height / height * py
        # Source pixel centre (u + 0.5) → input (u + 0.5) · w'/w + left → prototype
        # coordinate (that) · px − 0.5.
        to_proto = np.array(
            [
                [sx, 0, (left + 0.5) * sx + placement.left * px - 0.5],
                [0, sy, (top + 0.5) * sy + placement.top * py - 0.5],
            ],
            np.float64,
        )
        sampled = cv2.warpAffine(
            logits,
            to_proto,
            (right - left, bottom - top),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return InstanceMask(left, top, sampled > self.mask_logit_threshold)
