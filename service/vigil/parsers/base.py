"""The parser interface: raw output tensors of a batch → one Detections per frame.

Post-processing options are per model, read from the Triton config's ``parameters`` (so a
model's config carries everything needed to interpret its outputs):

* ``vigil.confidence``: drop detections scoring below (overrides the
  ``model.confidence_threshold`` setting for this model);
* ``vigil.cluster``: ``nms`` or ``none`` (DetectNet_v2 also ``dbscan``); default per parser;
* ``vigil.nms_iou``: NMS drops a box overlapping a better box of its class by more (0.45);
* ``vigil.max_detections``: objects kept per frame, best first (100);
* ``vigil.dbscan_eps``: DBSCAN neighbour distance, as ``1 - IoU`` (0.3);
* ``vigil.dbscan_min_boxes``: DBSCAN boxes in a neighbourhood that form a cluster (1).

A bad value raises :class:`~vigil.infer.errors.UnsupportedModelError` naming the parameter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, TypeVar

import numpy as np

from vigil.detections import Detections
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import InputFormat, Placement, Resize, TensorSpec
from vigil.parsers.nms import nms

T = TypeVar("T")


class Cluster(StrEnum):
    """How overlapping candidate boxes become objects (``vigil.cluster``)."""

    NMS = "nms"
    DBSCAN = "dbscan"
    NONE = "none"


@dataclass(frozen=True)
class PostprocessOptions:
    """Per-model post-processing, from the model config's parameters.

    Attributes:
        confidence: Candidates scoring below are dropped.
        cluster: Clustering method.
        nms_iou: NMS overlap threshold.
        max_detections: Objects kept per frame at most.
        dbscan_eps: DBSCAN neighbour distance (``1 - IoU``).
        dbscan_min_boxes: DBSCAN core-box neighbourhood size.
    """

    confidence: float
    cluster: Cluster = Cluster.NMS
    nms_iou: float = 0.45
    max_detections: int = 100
    dbscan_eps: float = 0.3
    dbscan_min_boxes: int = 1

    @classmethod
    def from_model(
        cls,
        model: ModelInfo,
        default_confidence: float,
        default_cluster: Cluster,
        clusters: frozenset[Cluster],
    ) -> PostprocessOptions:
        """Read the options of ``model``.

        Raises:
            UnsupportedModelError: a value is malformed or out of range (names the parameter).
        """
        allowed = sorted(c.value for c in clusters)
        return cls(
            confidence=model_param(
                model, "vigil.confidence", float, default_confidence,
                lambda v: 0 <= v <= 1, "a number in [0, 1]",
            ),
            cluster=model_param(
                model, "vigil.cluster", Cluster, default_cluster,
                lambda v: v in clusters, f"one of {allowed}",
            ),
            nms_iou=model_param(
                model, "vigil.nms_iou", float, 0.45, lambda v: 0 < v <= 1, "a number in (0, 1]"
            ),
            max_detections=model_param(
                model, "vigil.max_detections", int, 100, lambda v: v >= 1, "an integer >= 1"
            ),
            dbscan_eps=model_param(
                model, "vigil.dbscan_eps", float, 0.3, lambda v: 0 < v < 1, "a number in (0, 1)"
            ),
            dbscan_min_boxes=model_param(
                model, "vigil.dbscan_min_boxes", int, 1, lambda v: v >= 1, "an integer >= 1"
            ),
        )  # fmt: skip


def model_param(
    model: ModelInfo,
    key: str,
    convert: Callable[[str], T],
    default: T,
    check: Callable[[T], bool],
    expected: str,
) -> T:
    """A typed value of the model config parameter ``key`` (``default`` when absent or empty).

    Raises:
        UnsupportedModelError: the value does not convert or fails ``check``.
    """
    raw = model.parameters.get(key, "").strip()
    if not raw:
        return default
    try:
        value = convert(raw)
    except ValueError:
        value = None
    if value is None or not check(value):
        raise UnsupportedModelError(
            f"model {model.name!r}: config parameter {key!r} = {raw!r} is invalid; "
            f"expected {expected}"
        )
    return value


class Parser(ABC):
    """Turns a model's output tensors into detections in source-frame pixels.

    Args:
        model: The model whose outputs are parsed; implementations check in ``__init__``
            that its outputs are the ones they understand.
        confidence_threshold: Detections scoring below are dropped, unless the model's
            ``vigil.confidence`` parameter overrides it.

    Raises:
        UnsupportedModelError: the outputs or parameters do not fit the parser.
    """

    #: Name used in the model config's ``vigil.parser`` parameter.
    name: ClassVar[str] = ""
    #: Clustering used when ``vigil.cluster`` is not set.
    default_cluster: ClassVar[Cluster] = Cluster.NMS
    #: Clustering methods the parser supports.
    clusters: ClassVar[frozenset[Cluster]] = frozenset({Cluster.NMS, Cluster.NONE})

    def __init__(self, model: ModelInfo, confidence_threshold: float) -> None:
        self.model = model
        self.options = PostprocessOptions.from_model(
            model, confidence_threshold, self.default_cluster, self.clusters
        )
        self.confidence_threshold = self.options.confidence
        #: The model's input format when frames are letterboxed into it (``vigil.resize``),
        #: else None: stretched frames map back by a per-axis scale, whatever the input.
        self.letterbox: InputFormat | None = None
        if model.parameters.get("vigil.resize", "").strip() not in ("", Resize.STRETCH):
            fmt = self.input_format()
            self.letterbox = fmt if fmt.resize is Resize.LETTERBOX else None

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

    def require_outputs(self, *names: str) -> None:
        """Check that the model has outputs ``names`` (call it in ``__init__``).

        Raises:
            UnsupportedModelError: some are missing (names them, and the ones it has).
        """
        have = {o.name for o in self.model.outputs}
        missing = [n for n in names if n not in have]
        if missing:
            raise UnsupportedModelError(
                f"parser {self.name!r} needs outputs {list(names)}; model {self.model.name!r} "
                f"lacks {missing} (it has {sorted(have)})"
            )

    def output_of_rank(self, rank: int, param: str, what: str) -> TensorSpec:
        """The output a ``param`` config parameter names, else the only output of ``rank``.

        Raises:
            UnsupportedModelError: the named output is missing, or there is not exactly one
                output of that rank.
        """
        name = model_param(self.model, param, str, "", lambda v: True, "a name")
        if name:
            self.require_outputs(name)
            return self.model.output(name)
        candidates = [o for o in self.model.outputs if len(o.shape) == rank]
        if len(candidates) != 1:
            raise UnsupportedModelError(
                f"parser {self.name!r}: model {self.model.name!r} needs one {what} "
                f"(or {param!r} naming it); it has "
                f"{[(o.name, list(o.shape)) for o in self.model.outputs]}"
            )
        return candidates[0]

    def input_format(self) -> InputFormat:
        """The model's input format (size, and how frames are fitted into it).

        Raises:
            UnsupportedModelError: the model has not one image input Vigil can feed, or a bad
                ``vigil.resize`` / ``vigil.pad_value``.
        """
        try:
            return self.model.input_format()
        except UnsupportedModelError as e:
            raise UnsupportedModelError(f"parser {self.name!r}: {e}") from e

    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the model's image input."""
        fmt = self.input_format()
        return fmt.width, fmt.height

    def placement(self, width: int, height: int, input_size: tuple[int, int]) -> Placement:
        """Where a ``width`` × ``height`` source frame landed in the model input of
        ``input_size`` (the whole input when stretched, the letterbox's content rectangle
        otherwise)."""
        if self.letterbox is None:
            return Placement(0, 0, *input_size)
        return self.letterbox.placement(width, height)

    def to_source(
        self, xyxy: np.ndarray, width: int, height: int, input_size: tuple[int, int]
    ) -> np.ndarray:
        """Boxes ``(N, 4)`` in model-input pixels → ``float32`` boxes in the pixels of a
        ``width`` × ``height`` source frame, clipped to it (undoes the stretch or the
        letterbox)."""
        if self.letterbox is None:  # the common case, per frame: one scale, no Placement
            sx, sy = width / input_size[0], height / input_size[1]
            placed = np.asarray(xyxy, np.float32) * np.array([sx, sy, sx, sy], np.float32)
        else:
            placed = self.letterbox.placement(width, height).to_source(xyxy, width, height)
        return clip_boxes(placed, width, height)

    def select(self, xyxy: np.ndarray, scores: np.ndarray, class_id: np.ndarray) -> np.ndarray:
        """Indices of the candidates to keep (NMS or none), best first, at most
        ``max_detections``."""
        opts = self.options
        if opts.cluster is Cluster.NMS:
            return nms(xyxy, scores, class_id, opts.nms_iou, opts.max_detections)
        return np.argsort(-scores, kind="stable")[: opts.max_detections]


def clip_boxes(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the frame, in place; returns ``xyxy``."""
    # np.clip's values from two ufuncs: np.clip costs ~10 µs more per call on small arrays
    for columns, limit in ((xyxy[:, 0::2], width - 1), (xyxy[:, 1::2], height - 1)):
        np.maximum(columns, 0, out=columns)
        np.minimum(columns, limit, out=columns)
    return xyxy


def cxcywh_to_xyxy(boxes: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """Centre/size boxes ``(N, 4)`` → ``float32`` corners, scaled per axis."""
    out = np.empty((len(boxes), 4), np.float32)
    half_w, half_h = boxes[:, 2] / 2, boxes[:, 3] / 2
    out[:, 0] = (boxes[:, 0] - half_w) * scale_x
    out[:, 1] = (boxes[:, 1] - half_h) * scale_y
    out[:, 2] = (boxes[:, 0] + half_w) * scale_x
    out[:, 3] = (boxes[:, 1] + half_h) * scale_y
    return out
