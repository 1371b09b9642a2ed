"""An exact test detector for :mod:`tests.support.scenes`, as an ONNX model in SSD's layout.

For each palette colour the graph marks the pixels within ``TOLERANCE`` of it (every
channel), and if at least ``MIN_PIXELS`` match it reports their bounding box with score 1
and the colour's class; otherwise score 0. Outputs are what Vigil's ``ssd`` parser reads
(boxes normalized y1, x1, y2, x2; classes; scores; num_detections), so the real parser,
the real Triton and the real pipeline run unchanged. The input is uint8 NHWC at the scene's
own size, so preprocessing does not resample the frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.support.scenes import LABELS, PALETTE, class_of
from tests.support.tiny_models import TinyModel, write_model

TOLERANCE = 70.0
MIN_PIXELS = 12
NAME = "synthetic_detector"


def detector(width: int, height: int, name: str = NAME, max_batch: int = 8) -> TinyModel:
    """The detector for frames of ``width`` × ``height``."""
    k = len(PALETTE)
    colors = np.array(PALETTE, np.float32).reshape(1, k, 1, 1, 3)
    classes = np.array([class_of(c) for c in range(k)], np.float32).reshape(1, k)
    nodes = [
        helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["x", "axis1"], ["x5"]),  # N,1,H,W,3
        helper.make_node("Sub", ["x5", "colors"], ["diff"]),  # N,K,H,W,3
        helper.make_node("Abs", ["diff"], ["absdiff"]),
        helper.make_node("ReduceMax", ["absdiff"], ["worst"], axes=[4], keepdims=0),  # N,K,H,W
        helper.make_node("Less", ["worst", "tolerance"], ["match"]),
        helper.make_node("Cast", ["match"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["mask"], ["rows"], axes=[3], keepdims=0),  # N,K,H
        helper.make_node("ReduceMax", ["mask"], ["cols"], axes=[2], keepdims=0),  # N,K,W
        helper.make_node("ReduceSum", ["mask", "axes23"], ["count"], keepdims=0),  # N,K
        helper.make_node("ArgMax", ["rows"], ["y1i"], axis=2, keepdims=0),
        helper.make_node("ArgMax", ["rows"], ["y2i"], axis=2, keepdims=0, select_last_index=1),
        helper.make_node("ArgMax", ["cols"], ["x1i"], axis=2, keepdims=0),
        helper.make_node("ArgMax", ["cols"], ["x2i"], axis=2, keepdims=0, select_last_index=1),
    ]
    for src, dst, plus_one in (
        ("y1i", "y1", False),
        ("x1i", "x1", False),
        ("y2i", "y2", True),
        ("x2i", "x2", True),
    ):
        nodes.append(helper.make_node("Cast", [src], [dst + "f"], to=TensorProto.FLOAT))
        if plus_one:  # exclusive end
            nodes.append(helper.make_node("Add", [dst + "f", "one"], [dst + "e"]))
            src_f = dst + "e"
        else:
            src_f = dst + "f"
        nodes.append(helper.make_node("Div", [src_f, f"size_{dst[0]}"], [dst + "n"]))
        nodes.append(helper.make_node("Unsqueeze", [dst + "n", "axis2"], [dst + "u"]))
    nodes += [
        helper.make_node("Concat", ["y1u", "x1u", "y2u", "x2u"], ["detection_boxes"], axis=2),
        helper.make_node("GreaterOrEqual", ["count", "min_pixels"], ["present"]),
        helper.make_node("Cast", ["present"], ["detection_scores"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["detection_scores", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "classes"], ["detection_classes"]),
        helper.make_node("ReduceSum", ["zeros", "axis1"], ["zero_n"], keepdims=1),  # N,1
        helper.make_node("Add", ["zero_n", "k"], ["num_detections"]),
    ]
    init = {
        "colors": colors,
        "classes": classes,
        "tolerance": np.array(TOLERANCE, np.float32),
        "min_pixels": np.array(MIN_PIXELS, np.float32),
        "one": np.array(1.0, np.float32),
        "zero": np.array(0.0, np.float32),
        "k": np.array(float(k), np.float32),
        "size_y": np.array(float(height), np.float32),
        "size_x": np.array(float(width), np.float32),
        "axis1": np.array([1], np.int64),
        "axis2": np.array([2], np.int64),
        "axes23": np.array([2, 3], np.int64),
    }
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", height, width, 3])],
        [
            helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, ["batch", k, 4]),
            helper.make_tensor_value_info("detection_classes", TensorProto.FLOAT, ["batch", k]),
            helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, ["batch", k]),
            helper.make_tensor_value_info("num_detections", TensorProto.FLOAT, ["batch", 1]),
        ],
        initializer=[numpy_helper.from_array(v, n) for n, v in init.items()],
    )
    return TinyModel(
        name,
        (height, width, 3),
        parameters={"vigil.parser": "ssd"},
        labels=list(LABELS),
        max_batch_size=max_batch,
        graph=graph,
    )


def write_detector(repository: Path, width: int, height: int, name: str = NAME) -> Path:
    """Write the detector for ``width`` × ``height`` frames into ``repository``."""
    repository.mkdir(parents=True, exist_ok=True)
    return write_model(repository, detector(width, height, name))
