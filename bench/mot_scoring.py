"""CLEAR MOT and IDF1 scores, written for NumPy 2 (motmetrics 1.4.0 calls ``np.asfarray``).

It follows motmetrics' definitions, and :func:`check_against_motmetrics` reproduces the
figures motmetrics' own test expects for its TUD-Stadtmitte pair:

* per frame, a ground-truth object keeps its hypothesis from its last match while their IoU
  stays ≥ 0.5; the rest are paired by the Hungarian algorithm on ``1 − IoU`` among pairs with
  IoU ≥ 0.5; a pairing that differs from the object's last one is an id switch;
* MOTA = 1 − (misses + false positives + switches) / ground-truth boxes; MOTP = mean
  ``1 − IoU`` of the pairs;
* IDF1 = 2·IDTP / (ground-truth boxes + hypothesis boxes), where IDTP comes from the one-to-
  one pairing of whole trajectories that maximizes the frames on which they overlap
  (IoU ≥ 0.5).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

# frame → list of (id, x, y, w, h)
Boxes = dict[int, list[tuple[int, float, float, float, float]]]

# motmetrics 1.4.0, motmetrics/tests/test_metrics.py::test_motchallenge_files, TUD-Stadtmitte
MOTMETRICS_TUD_STADTMITTE = {
    "idf1": 0.644619, "recall": 0.608997, "precision": 0.939920, "num_false_positives": 45,
    "num_misses": 452, "num_switches": 7, "mota": 0.564014, "motp": 0.345904,
}  # fmt: skip


@dataclass(frozen=True)
class Scores:
    """MOTChallenge figures of one sequence."""

    idf1: float
    mota: float
    motp: float
    recall: float
    precision: float
    num_switches: int
    num_false_positives: int
    num_misses: int
    num_objects: int

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def read_mot(path: str) -> Boxes:
    """A MOTChallenge text file (frame, id, x, y, w, h, ...) as boxes per frame."""
    boxes: Boxes = defaultdict(list)
    for line in open(path):  # noqa: SIM115 (a small data file)
        parts = line.strip().split(",")
        if len(parts) < 6:
            continue
        frame, oid = int(float(parts[0])), int(float(parts[1]))
        boxes[frame].append((oid, *(float(v) for v in parts[2:6])))
    return boxes


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every ``(x, y, w, h)`` box in ``a`` with every one in ``b``."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.clip(
        np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    h = np.clip(
        np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None
    )
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def score(gt: Boxes, hyp: Boxes, min_iou: float = 0.5) -> Scores:
    """Score hypotheses against ground truth."""
    last: dict[int, int] = {}
    matches = switches = fps = misses = 0
    distance = 0.0
    n_gt = n_hyp = 0
    overlap: dict[tuple[int, int], int] = defaultdict(int)
    gt_len: dict[int, int] = defaultdict(int)
    hyp_len: dict[int, int] = defaultdict(int)
    for frame in sorted(set(gt) | set(hyp)):
        g, h = gt.get(frame, []), hyp.get(frame, [])
        n_gt += len(g)
        n_hyp += len(h)
        gids, hids = [x[0] for x in g], [x[0] for x in h]
        for o in gids:
            gt_len[o] += 1
        for k in hids:
            hyp_len[k] += 1
        if not g or not h:
            misses += len(g)
            fps += len(h)
            continue
        iou = iou_xywh(np.array([x[1:] for x in g]), np.array([x[1:] for x in h]))
        valid = iou >= min_iou
        for i, j in zip(*np.nonzero(valid), strict=True):
            overlap[(gids[i], hids[j])] += 1
        pairs: dict[int, int] = {}
        # 1. keep last frame's pairings that still hold
        for i, o in enumerate(gids):
            if o in last and last[o] in hids:
                j = hids.index(last[o])
                if valid[i, j] and j not in pairs.values():
                    pairs[i] = j
        # 2. Hungarian on what is left
        rest_g = [i for i in range(len(gids)) if i not in pairs]
        rest_h = [j for j in range(len(hids)) if j not in pairs.values()]
        if rest_g and rest_h:
            cost = 1.0 - iou[np.ix_(rest_g, rest_h)]
            cost[~valid[np.ix_(rest_g, rest_h)]] = 1e6
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if cost[r, c] < 1e6:
                    i, j = rest_g[r], rest_h[c]
                    if gids[i] in last and last[gids[i]] != hids[j]:
                        switches += 1
                    pairs[i] = j
        for i, j in pairs.items():
            last[gids[i]] = hids[j]
            distance += 1.0 - iou[i, j]
        matches += len(pairs)
        misses += len(gids) - len(pairs)
        fps += len(hids) - len(pairs)
    # IDF1: one-to-one trajectory pairing maximizing the frames they overlap
    go, ho = sorted(gt_len), sorted(hyp_len)
    table = np.zeros((len(go), len(ho)))
    gi, hi = {o: i for i, o in enumerate(go)}, {k: j for j, k in enumerate(ho)}
    for (o, k), n in overlap.items():
        table[gi[o], hi[k]] = n
    rows, cols = linear_sum_assignment(-table) if table.size else ([], [])
    idtp = float(table[rows, cols].sum()) if table.size else 0.0
    return Scores(
        idf1=2 * idtp / (n_gt + n_hyp) if n_gt + n_hyp else 0.0,
        mota=1.0 - (misses + fps + switches) / n_gt if n_gt else 0.0,
        motp=distance / matches if matches else 0.0,
        recall=matches / n_gt if n_gt else 0.0,
        precision=matches / n_hyp if n_hyp else 0.0,
        num_switches=switches,
        num_false_positives=fps,
        num_misses=misses,
        num_objects=len(go),
    )


def check_against_motmetrics(gt_path: str, test_path: str) -> Scores:
    """Score motmetrics' TUD-Stadtmitte pair; raises if any figure differs from the one
    motmetrics' own test expects (to 1e-3)."""
    scores = score(read_mot(gt_path), read_mot(test_path))
    got = scores.as_dict()
    for key, expected in MOTMETRICS_TUD_STADTMITTE.items():
        if abs(got[key] - expected) > 1e-3:
            raise AssertionError(
                f"scorer disagrees with motmetrics on {key}: {got[key]} vs {expected}"
            )
    return scores
