"""The benchmark's PeopleNet-class model: Triton repository writer and a minimal parser.

:func:`write_repository` puts a Python-backend model (``model.py`` from
``peoplenet_model.py``, the network from ``peoplenet_net.py``, and weights made by the caller)
into a repository directory; nothing is committed, nothing is downloaded.

:class:`BenchDetectNetV2Parser` is a *minimal* DetectNet_v2 parser (threshold the coverage
map, decode the grid boxes, per-class NMS), registered under ``detectnet_v2`` only when Vigil
has no parser of that name: the real one (``vigil/parsers/detectnet_v2.py``, from the parsers
work) replaces it without any change here.
"""

from __future__ import annotations

import site
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from vigil.detections import Detections
from vigil.infer.model import ModelInfo
from vigil.parsers import PARSERS
from vigil.parsers.base import Parser, clip_boxes

HERE = Path(__file__).resolve().parent
MODEL_NAME = "peoplenet_rn34"
INPUT_NAME = "input_1"
COVERAGE = "output_cov"
BBOX = "output_bbox"
LABELS = ("person", "bag", "face")
GRID = (34, 60)


def config_text(max_batch: int, instances: int, device_id: int = 0) -> str:
    """``config.pbtxt`` of the model: fp16 CHW input, fp32 outputs, GPU instances."""
    classes = len(LABELS)
    return f"""name: "{MODEL_NAME}"
backend: "python"
max_batch_size: {max_batch}
input [{{ name: "{INPUT_NAME}" data_type: TYPE_FP16 dims: [3, 544, 960] }}]
output [
  {{ name: "{COVERAGE}" data_type: TYPE_FP32 dims: [{classes}, {GRID[0]}, {GRID[1]}] }},
  {{ name: "{BBOX}" data_type: TYPE_FP32 dims: [{4 * classes}, {GRID[0]}, {GRID[1]}] }}
]
instance_group [{{ kind: KIND_GPU count: {instances} gpus: [{device_id}] }}]
parameters {{ key: "FORCE_CPU_ONLY_INPUT_TENSORS" value {{ string_value: "no" }} }}
parameters {{ key: "vigil.parser" value {{ string_value: "detectnet_v2" }} }}
parameters {{ key: "vigil.labels" value {{ string_value: "labels.txt" }} }}
"""


def python_paths() -> list[str]:
    """``sys.path`` entries the backend stub needs to find torch (it ignores PYTHONPATH)."""
    paths = [p for p in sys.path if p and Path(p).is_dir() and "site-packages" in p]
    paths += [p for p in site.getsitepackages() if p not in paths]
    return paths


def write_repository(
    repository: Path,
    weights: Path,
    *,
    max_batch: int,
    instances: int,
    device_id: int = 0,
) -> Path:
    """Write the model into ``repository`` (created if needed); returns the model directory.

    Args:
        repository: Triton model repository directory.
        weights: A ``state_dict`` of :class:`peoplenet_net.PeopleNetRN34` saved with
            ``torch.save`` (linked, not copied).
        max_batch: ``max_batch_size`` of the model.
        instances: Model instances on the GPU (Python processes running the network).
        device_id: The GPU.
    """
    model_dir = repository / MODEL_NAME
    version = model_dir / "1"
    version.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(config_text(max_batch, instances, device_id))
    (model_dir / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (model_dir / "peoplenet_net.py").write_text((HERE / "peoplenet_net.py").read_text())
    header = f"import sys\nsys.path[:0] = {python_paths()!r}\n"
    (version / "model.py").write_text(header + (HERE / "peoplenet_model.py").read_text())
    link = version / "weights.pt"
    link.unlink(missing_ok=True)
    link.symlink_to(weights.resolve())
    return model_dir


class BenchDetectNetV2Parser(Parser):
    """Minimal DetectNet_v2 parser: coverage threshold, grid-box decoding, per-class NMS.

    Box decoding follows DeepStream's DetectNet_v2 parser: for grid cell (gx, gy) with
    center ``c = (g * stride + 0.5)``, ``x1 = cx - o1 * 35``, ``y1 = cy - o2 * 35``,
    ``x2 = cx + o3 * 35``, ``y2 = cy + o4 * 35`` in model-input pixels, then scaled to the
    source frame (the preprocessing stretched the whole frame).
    """

    name = "detectnet_v2"
    bbox_norm = 35.0
    nms_iou = 0.5

    def __init__(self, model: ModelInfo, confidence_threshold: float) -> None:
        super().__init__(model, confidence_threshold)
        self._require_outputs(COVERAGE, BBOX)
        _, self.input_height, self.input_width = model.inputs[0].shape
        grid_h, grid_w = model.output(COVERAGE).shape[1:]
        self.stride_x = self.input_width / grid_w
        self.stride_y = self.input_height / grid_h

    def parse(
        self, outputs: Mapping[str, np.ndarray], sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Parse a batch of coverage/bbox maps into detections in source pixels."""
        n = len(sizes)
        coverage = outputs[COVERAGE][:n]
        bbox = outputs[BBOX][:n]
        frame, cls, gy, gx = np.nonzero(coverage >= self.confidence_threshold)
        scores = coverage[frame, cls, gy, gx]
        cx = gx * self.stride_x + 0.5
        cy = gy * self.stride_y + 0.5
        o = bbox[frame[:, None], cls[:, None] * 4 + np.arange(4), gy[:, None], gx[:, None]]
        boxes = np.stack(
            [
                cx - o[:, 0] * self.bbox_norm,
                cy - o[:, 1] * self.bbox_norm,
                cx + o[:, 2] * self.bbox_norm,
                cy + o[:, 3] * self.bbox_norm,
            ],
            axis=1,
        ).astype(np.float32)
        result = []
        for i, (width, height) in enumerate(sizes):
            mine = np.flatnonzero(frame == i)
            keep = self._nms(boxes[mine], scores[mine], cls[mine])
            xyxy = boxes[mine][keep]
            xyxy[:, 0::2] *= width / self.input_width
            xyxy[:, 1::2] *= height / self.input_height
            result.append(
                Detections(
                    xyxy=clip_boxes(xyxy, width, height),
                    confidence=scores[mine][keep].astype(np.float32),
                    class_id=cls[mine][keep].astype(np.int32),
                )
            )
        return result

    def _nms(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
        if len(boxes) <= 1:
            return np.arange(len(boxes))
        xywh = boxes.copy()
        xywh[:, 2:] -= xywh[:, :2]
        keep = cv2.dnn.NMSBoxesBatched(
            xywh.tolist(), scores.tolist(), classes.tolist(), 0.0, self.nms_iou
        )
        return np.sort(np.asarray(keep, dtype=np.int64).reshape(-1))


def register_parser() -> type[Parser]:
    """Make ``detectnet_v2`` known to Vigil (the real parser wins if it exists)."""
    return PARSERS.setdefault(BenchDetectNetV2Parser.name, BenchDetectNetV2Parser)
