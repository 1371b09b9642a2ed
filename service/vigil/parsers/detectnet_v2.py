"""Parser for NVIDIA TAO DetectNet_v2 grid detectors (PeopleNet, TrafficCamNet, DashCamNet).

Per image the model predicts, on a grid of ``gh × gw`` cells (one per ``stride`` input
pixels, e.g. 34 × 60 for a 544 × 960 input):

* coverage ``[nc, gh, gw]`` (``output_cov/Sigmoid``): how likely cell (y, x) lies on an
  object of class c; a cell at or above the confidence threshold is a candidate;
* boxes ``[4 × nc, gh, gw]`` (``output_bbox/BiasAdd``): for class c, channels ``4c .. 4c+3``
  hold the distances from the cell centre to the left, top, right and bottom edges, divided
  by ``bbox_norm``.

The cell centre is ``(x · stride + offset, y · stride + offset)`` in input pixels, so a
candidate box is ``left = cx − d0 · bbox_norm``, ``top = cy − d1 · bbox_norm``,
``right = cx + d2 · bbox_norm``, ``bottom = cy + d3 · bbox_norm`` (the decoding in TAO's and
DeepStream's DetectNet_v2 post-processing). Neighbouring cells see the same object, so the
candidates are clustered: NMS by default, DBSCAN (``vigil.cluster: dbscan``, as DeepStream's
``cluster-mode=1``), or none.

Model config parameters (besides the shared ones in :mod:`vigil.parsers.base`):

* ``vigil.cov_output`` / ``vigil.bbox_output``: output names (defaults
  ``output_cov/Sigmoid`` and ``output_bbox/BiasAdd``);
* ``vigil.stride``: input pixels per grid cell (default: input width / grid width, 16 for the
  NGC models);
* ``vigil.bbox_norm``: box scale (default 35.0);
* ``vigil.offset``: cell-centre offset in pixels (default 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from vigil.detections import Detections
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.parsers.base import Cluster, Parser, model_param
from vigil.parsers.nms import dbscan_merge


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


class DetectNetV2Parser(Parser):
    """Parses DetectNet_v2 coverage + bbox grids into detections in source pixels."""

    name = "detectnet_v2"
    clusters = frozenset({Cluster.NMS, Cluster.DBSCAN, Cluster.NONE})

    def __init__(self, model: ModelInfo, confidence_threshold: float) -> None:
        super().__init__(model, confidence_threshold)
        self.input_width, self.input_height = self.input_size()
        self.input_dims = (self.input_width, self.input_height)
        text = lambda v: bool(v)  # noqa: E731
        self.cov_output = model_param(
            model, "vigil.cov_output", str, "output_cov/Sigmoid", text, "an output name"
        )
        self.bbox_output = model_param(
            model, "vigil.bbox_output", str, "output_bbox/BiasAdd", text, "an output name"
        )
        self.require_outputs(self.cov_output, self.bbox_output)
        cov, bbox = model.output(self.cov_output).shape, model.output(self.bbox_output).shape
        if len(cov) != 3 or len(bbox) != 3 or bbox != (4 * cov[0], cov[1], cov[2]):
            raise UnsupportedModelError(
                f"parser {self.name!r}: model {model.name!r} coverage {list(cov)} and bbox "
                f"{list(bbox)} must be [nc, gh, gw] and [4*nc, gh, gw]"
            )
        self.num_classes, self.grid_height, self.grid_width = cov
        self.stride = model_param(
            model, "vigil.stride", float, self.input_width / self.grid_width,
            _positive, "a positive number",
        )  # fmt: skip
        self.bbox_norm = model_param(
            model, "vigil.bbox_norm", float, 35.0, _positive, "a positive number"
        )
        self.offset = model_param(
            model, "vigil.offset", float, 0.5, math.isfinite, "a finite number"
        )

    def parse(
        self, outputs: Mapping[str, np.ndarray], sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Parse a batch of DetectNet_v2 grids into detections in source pixels.

        The candidates of the whole batch are found and decoded in one pass (per frame, the
        fixed cost of a dozen NumPy calls was most of the parse); clustering is per frame.
        """
        frame, xyxy, score, class_id = self._candidates(
            outputs[self.cov_output][: len(sizes)], outputs[self.bbox_output][: len(sizes)]
        )
        # nonzero() is row-major: the candidates come frame by frame, in each frame's order
        bounds = np.searchsorted(frame, np.arange(len(sizes) + 1)).tolist()
        result = []
        for i, (width, height) in enumerate(sizes):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                result.append(Detections.empty())
                continue
            boxes, scores, classes = xyxy[lo:hi], score[lo:hi], class_id[lo:hi]
            if self.options.cluster is Cluster.DBSCAN:
                opts = self.options
                boxes, scores, classes = dbscan_merge(
                    boxes, scores, classes, opts.dbscan_eps, opts.dbscan_min_boxes
                )
                keep = np.arange(min(len(boxes), opts.max_detections))
            else:
                keep = self.select(boxes, scores, classes)
            result.append(
                Detections(
                    xyxy=self.to_source(boxes[keep], width, height, self.input_dims),
                    confidence=scores[keep],
                    class_id=classes[keep],
                )
            )
        return result

    def _candidates(
        self, cov: np.ndarray, bbox: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Frame index, boxes (input pixels), scores and classes of the cells at or above the
        threshold, for a batch of coverage ``[B, nc, gh, gw]`` and bbox grids."""
        b, c, y, x = np.nonzero(cov >= self.confidence_threshold)
        dist = bbox.reshape(len(bbox), self.num_classes, 4, self.grid_height, self.grid_width)
        d = dist[b, c, :, y, x] * self.bbox_norm  # (N, 4): left, top, right, bottom distances
        cx = x * self.stride + self.offset
        cy = y * self.stride + self.offset
        xyxy = np.empty((len(b), 4))
        np.subtract(cx, d[:, 0], out=xyxy[:, 0])
        np.subtract(cy, d[:, 1], out=xyxy[:, 1])
        np.add(cx, d[:, 2], out=xyxy[:, 2])
        np.add(cy, d[:, 3], out=xyxy[:, 3])
        valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return (
            b[valid],
            xyxy[valid].astype(np.float32),
            cov[b, c, y, x][valid].astype(np.float32),
            c[valid].astype(np.int32),
        )
