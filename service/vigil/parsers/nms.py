"""Box clustering shared by the parsers: IoU, per-class NMS, DBSCAN-style merging.

All functions take boxes as ``float (N, 4)`` left, top, right, bottom and return index
arrays (or merged boxes) ordered by descending score, so callers can cut at
``max_detections`` with a slice.
"""

from __future__ import annotations

import numpy as np

from vigil.detections import iou_matrix


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_id: np.ndarray | None,
    iou_threshold: float,
    max_detections: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression, per class when ``class_id`` is given.

    Boxes of different classes never suppress each other: each class is shifted to its own
    region of the plane (the usual offset trick), so one pass handles all classes.

    Args:
        xyxy: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        class_id: ``(N,)`` classes, or None for class-agnostic NMS.
        iou_threshold: A box overlapping a kept, better-scoring box by more than this goes.
        max_detections: Stop after keeping this many (None: no limit).

    Returns:
        Indices of the kept boxes, best score first.
    """
    if len(xyxy) == 0:
        return np.zeros((0,), np.intp)
    if len(xyxy) <= _SMALL and np.isfinite(xyxy).all() and np.isfinite(scores).all():
        return _nms_small(xyxy, scores, class_id, iou_threshold, max_detections)
    boxes = xyxy.astype(np.float64)
    if class_id is not None:
        span = float(boxes.max() - min(boxes.min(), 0.0)) + 1.0
        boxes = boxes + (class_id.astype(np.float64) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    limit = len(order) if max_detections is None else max_detections
    # Coordinates in score order, compacted as boxes go: each step is a few 1-D passes over
    # the remaining boxes (no (1, N, 2) temporaries), which matters with 8400 YOLO candidates.
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k]) for k in range(4))
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        keep.append(int(order[0]))
        if order.size == 1:
            break
        w = np.minimum(x2[0], x2[1:]) - np.maximum(x1[0], x1[1:])
        h = np.minimum(y2[0], y2[1:]) - np.maximum(y1[0], y1[1:])
        inter = np.maximum(w, 0) * np.maximum(h, 0)
        union = area[0] + area[1:] - inter
        # iou <= t  <=>  inter <= t · union (no division; union 0 means inter 0: kept)
        stay = np.flatnonzero(inter <= iou_threshold * union) + 1
        order, x1, y1, x2, y2, area = (a[stay] for a in (order, x1, y1, x2, y2, area))
    return np.asarray(keep, np.intp)


# Up to this many candidates (a frame of a sparse scene), NMS runs on Python floats: NumPy's
# fixed cost per call (~1 µs, a dozen calls per kept box) was most of a parse.
_SMALL = 12


def _nms_small(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_id: np.ndarray | None,
    iou_threshold: float,
    max_detections: int | None,
) -> np.ndarray:
    """:func:`nms` of a few finite boxes, the same operations on the same float64 values (so
    the same boxes are kept, in the same order), in plain Python."""
    rows = xyxy.astype(np.float64).tolist()
    if class_id is not None:
        flat = [v for row in rows for v in row]
        span = (max(flat) - min(min(flat), 0.0)) + 1.0
        rows = [[v + c * span for v in row] for row, c in zip(rows, class_id.tolist(), strict=True)]
    negated = (-scores).tolist()
    order = sorted(range(len(rows)), key=negated.__getitem__)  # stable, as argsort's
    area = [max(r[2] - r[0], 0.0) * max(r[3] - r[1], 0.0) for r in rows]
    limit = len(order) if max_detections is None else max_detections
    keep: list[int] = []
    while order and len(keep) < limit:
        best, *rest = order
        keep.append(best)
        x1, y1, x2, y2 = rows[best]
        order = []
        for i in rest:
            r = rows[i]
            w = max(min(x2, r[2]) - max(x1, r[0]), 0.0)
            inter = w * max(min(y2, r[3]) - max(y1, r[1]), 0.0)
            if inter <= iou_threshold * (area[best] + area[i] - inter):
                order.append(i)
    return np.asarray(keep, np.intp)


def dbscan_merge(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_id: np.ndarray,
    eps: float,
    min_boxes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster boxes per class with DBSCAN on the distance ``1 - IoU`` and merge each cluster.

    This is the clustering DeepStream offers for DetectNet_v2-style grid detectors, whose
    neighbouring grid cells all predict the same object. A box with at least ``min_boxes``
    boxes (itself included) within distance ``eps`` is a core box; clusters grow through core
    boxes; boxes in no cluster are dropped. A cluster becomes one box: the score-weighted mean
    of its members, scored with the best member's score.

    Returns:
        ``(xyxy, scores, class_id)`` of the merged boxes, best score first.
    """
    merged_boxes: list[np.ndarray] = []
    merged_scores: list[float] = []
    merged_classes: list[int] = []
    for cls in np.unique(class_id):
        idx = np.flatnonzero(class_id == cls)
        boxes, conf = xyxy[idx].astype(np.float64), scores[idx].astype(np.float64)
        neighbours = (1.0 - iou_matrix(boxes, boxes)) <= eps
        core = neighbours.sum(axis=1) >= min_boxes
        label = np.full(len(idx), -1)
        cluster = 0
        for seed in np.flatnonzero(core):
            if label[seed] >= 0:
                continue
            label[seed] = cluster
            frontier = [seed]
            while frontier:
                point = frontier.pop()
                if not core[point]:
                    continue  # border box: joins the cluster, does not extend it
                for nb in np.flatnonzero(neighbours[point] & (label < 0)):
                    label[nb] = cluster
                    frontier.append(nb)
            cluster += 1
        for c in range(cluster):
            members = label == c
            weights = conf[members]
            merged_boxes.append((boxes[members] * weights[:, None]).sum(0) / weights.sum())
            merged_scores.append(float(weights.max()))
            merged_classes.append(int(cls))
    if not merged_boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32)
    order = np.argsort(-np.asarray(merged_scores), kind="stable")
    return (
        np.asarray(merged_boxes, np.float32)[order],
        np.asarray(merged_scores, np.float32)[order],
        np.asarray(merged_classes, np.int32)[order],
    )
