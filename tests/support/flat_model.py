"""The reference SSD detector with its outputs re-laid out as one tensor, for parser plugins.

The example plugin package's ``flat_detections`` parser reads one output ``detections`` of
shape ``[100, 6]`` per image: ``x1, y1, x2, y2`` normalized, score, class id. This wraps the
real SSD graph (its boxes come as ``y1, x1, y2, x2``) with a few ONNX nodes, so the plugin
runs on real detections of a real video through the real Triton.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import REFERENCE_MODEL, REPOSITORY

NAME = "ssd_flat"


def write_flat_ssd(repository: Path, name: str = NAME) -> Path:
    """Write model ``name`` (version 1) into ``repository``; returns its directory."""
    source = REPOSITORY / REFERENCE_MODEL
    model = onnx.load(str(source / "1" / "model.onnx"))
    graph = model.graph
    del graph.output[:]
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([1, 0, 3, 2], np.int64), "flat_xyxy_order"),
            numpy_helper.from_array(np.array([2], np.int64), "flat_last_axis"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node(
                "Gather", ["detection_boxes", "flat_xyxy_order"], ["flat_xyxy"], axis=2
            ),
            helper.make_node("Unsqueeze", ["detection_scores", "flat_last_axis"], ["flat_scores"]),
            helper.make_node(
                "Unsqueeze", ["detection_classes", "flat_last_axis"], ["flat_classes"]
            ),
            helper.make_node(
                "Concat", ["flat_xyxy", "flat_scores", "flat_classes"], ["detections"], axis=2
            ),
        ]
    )
    graph.output.append(
        helper.make_tensor_value_info("detections", TensorProto.FLOAT, [None, 100, 6])
    )
    directory = repository / name
    (directory / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / "1" / "model.onnx"))
    shutil.copy(source / "labels.txt", directory / "labels.txt")
    (directory / "config.pbtxt").write_text(
        f'''name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ {{ name: "image_tensor" data_type: TYPE_UINT8 dims: [ 300, 300, 3 ] }} ]
output [ {{ name: "detections" data_type: TYPE_FP32 dims: [ 100, 6 ] }} ]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
parameters: {{ key: "vigil.parser" value: {{ string_value: "flat_detections" }} }}
parameters: {{ key: "vigil.labels" value: {{ string_value: "labels.txt" }} }}
parameters: {{ key: "vigil.input_format" value: {{ string_value: "rgb_uint8_nhwc_300x300" }} }}
'''
    )
    return directory
