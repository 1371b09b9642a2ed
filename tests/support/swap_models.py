"""Tiny ONNX detectors with known outputs, and model repositories holding them.

Each "version" answers every frame with exactly one detection whose box, class and score
are its own, so a test can tell from any event which version produced it. The outputs
follow the SSD layout Vigil's ``ssd`` parser reads; the batch dimension is real (outputs
are computed from the input), so batching through Triton is exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

TINY_SIZE = 64
LABELS = ["background", "alpha", "beta", "gamma"]


@dataclass(frozen=True)
class TinyDetection:
    """What a tiny version detects in every frame (box normalized y1, x1, y2, x2)."""

    box: tuple[float, float, float, float]
    class_id: int
    score: float


VERSION_1 = TinyDetection((0.1, 0.1, 0.5, 0.5), 1, 0.9)
VERSION_2 = TinyDetection((0.5, 0.5, 0.9, 0.9), 2, 0.8)


def tiny_detector(path: Path, detection: TinyDetection, size: int = TINY_SIZE) -> Path:
    """Write an ONNX model: uint8 ``[N, size, size, 3]`` → one fixed SSD detection per item."""
    const = helper.make_tensor
    nodes = [
        helper.make_node("Cast", ["image_tensor"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["z"]),  # [N] zeros: carries the batch
        helper.make_node("Reshape", ["z", "shape_n11"], ["z3"]),
        helper.make_node("Reshape", ["z", "shape_n1"], ["z2"]),
        helper.make_node("Add", ["z3", "box"], ["detection_boxes"]),
        helper.make_node("Add", ["z2", "cls"], ["detection_classes"]),
        helper.make_node("Add", ["z2", "score"], ["detection_scores"]),
        helper.make_node("Add", ["z2", "one"], ["num_detections"]),
    ]
    initializers = [
        const("zero", TensorProto.FLOAT, [], [0.0]),
        const("one", TensorProto.FLOAT, [1, 1], [1.0]),
        const("shape_n11", TensorProto.INT64, [3], [-1, 1, 1]),
        const("shape_n1", TensorProto.INT64, [2], [-1, 1]),
        const("box", TensorProto.FLOAT, [1, 1, 4], list(detection.box)),
        const("cls", TensorProto.FLOAT, [1, 1], [float(detection.class_id)]),
        const("score", TensorProto.FLOAT, [1, 1], [detection.score]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_detector",
        [helper.make_tensor_value_info("image_tensor", TensorProto.UINT8, ["N", size, size, 3])],
        [
            helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, ["N", 1, 4]),
            helper.make_tensor_value_info("detection_classes", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("num_detections", TensorProto.FLOAT, ["N", 1]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime Vigil supports
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_config(name: str, size: int = TINY_SIZE) -> str:
    """``config.pbtxt`` of a tiny detector model."""
    return f"""
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ {{ name: "image_tensor" data_type: TYPE_UINT8 dims: [ {size}, {size}, 3 ] }} ]
output [
  {{ name: "detection_boxes" data_type: TYPE_FP32 dims: [ 1, 4 ] }},
  {{ name: "detection_classes" data_type: TYPE_FP32 dims: [ 1 ] }},
  {{ name: "detection_scores" data_type: TYPE_FP32 dims: [ 1 ] }},
  {{ name: "num_detections" data_type: TYPE_FP32 dims: [ 1 ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
parameters: {{ key: "vigil.parser" value: {{ string_value: "ssd" }} }}
parameters: {{ key: "vigil.labels" value: {{ string_value: "labels.txt" }} }}
"""


def tiny_repository(root: Path, name: str = "tiny", versions: int = 2) -> Path:
    """A model repository with ``name`` at versions 1..``versions`` (alternating
    :data:`VERSION_1` / :data:`VERSION_2` outputs)."""
    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(tiny_config(name))
    (model_dir / "labels.txt").write_text("\n".join(LABELS) + "\n")
    for v in range(1, versions + 1):
        tiny_detector(model_dir / str(v) / "model.onnx", VERSION_1 if v % 2 else VERSION_2)
    return root


def expected_class(version: int) -> str:
    """The label every event of a tiny ``version`` carries."""
    detection = VERSION_1 if version % 2 else VERSION_2
    return LABELS[detection.class_id]


def p99(values: list[float]) -> float:
    """99th percentile."""
    return float(np.percentile(np.asarray(values), 99))
