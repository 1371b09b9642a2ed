"""Triton Python-backend model that runs an ONNX file with onnxruntime.

The repository materializer copies this file as ``model.py`` into each version of an ONNX
model when Vigil runs the PyPI Triton build, which has no ONNX Runtime backend. Production
Triton serves the same ``model.onnx`` with its native onnxruntime backend instead.

Requests that Triton's dynamic batcher hands over together are concatenated into one
onnxruntime call and split again, so batching works as with the native backend.
"""

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _param(config: dict[str, Any], key: str, default: str) -> str:
    entry = config.get("parameters", {}).get(key)
    return entry["string_value"] if entry else default


class TritonPythonModel:
    """Triton's Python-backend entry point."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the ONNX file next to this model.py into an onnxruntime session."""
        config = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        filename = _param(config, "vigil.onnx_filename", "model.onnx")
        options = ort.SessionOptions()
        threads = int(_param(config, "vigil.intra_op_threads", "0"))
        if threads:
            options.intra_op_num_threads = threads
        # onnxruntime's pool threads spin between runs by default. Where the pipeline's own
        # threads (decode, preprocess, tracking) share the cores with the model, the spinning
        # takes their CPU time; "0" makes idle pool threads sleep instead.
        spinning = _param(config, "vigil.intra_op_spinning", "0")
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        self.session = ort.InferenceSession(
            os.path.join(version_dir, filename), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i["name"] for i in config["input"]]
        self.outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        """Run all requests of this call as one batch."""
        per_request = [
            [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names]
            for r in requests
        ]
        sizes = [tensors[0].shape[0] for tensors in per_request]
        feeds = {
            name: np.concatenate([tensors[i] for tensors in per_request])
            if len(per_request) > 1
            else per_request[0][i]
            for i, name in enumerate(self.input_names)
        }
        results = self.session.run([name for name, _ in self.outputs], feeds)
        responses = []
        start = 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(value[start : start + size], dtype))
                for (name, dtype), value in zip(self.outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
