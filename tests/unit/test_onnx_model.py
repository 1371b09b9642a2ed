"""The Python-backend wrapper that serves ONNX models on the PyPI Triton build.

Triton's ``triton_python_backend_utils`` exists only inside a backend stub, so a stand-in
module takes its place; the onnxruntime session is real.
"""

from __future__ import annotations

import importlib
import json
import sys
import types

import numpy as np
import pytest

from tests.support.tiny_models import TinyModel, write_model


@pytest.fixture
def onnx_model(monkeypatch):
    pb_utils = types.ModuleType("pb_utils")
    pb_utils.triton_string_to_numpy = lambda name: np.float32  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb_utils)
    monkeypatch.delitem(sys.modules, "vigil.triton.onnx_model", raising=False)
    yield importlib.import_module("vigil.triton.onnx_model")
    sys.modules.pop("vigil.triton.onnx_model", None)  # bound to the stand-in: not for others


def _initialize(onnx_model, tmp_path, parameters: dict[str, str]):
    tiny = TinyModel(
        "tiny",
        (8, 8, 3),
        {"scores": (np.zeros(2, np.float32), np.ones(2, np.float32))},
        parameters,
    )
    directory = write_model(tmp_path, tiny)
    config = {
        "input": [{"name": "images"}],
        "output": [{"name": "scores", "data_type": "TYPE_FP32"}],
        "parameters": {k: {"string_value": v} for k, v in parameters.items()},
    }
    model = onnx_model.TritonPythonModel()
    model.initialize(
        {
            "model_config": json.dumps(config),
            "model_repository": str(directory),
            "model_version": "1",
        }
    )
    return model.session.get_session_options()


def test_idle_pool_threads_sleep_by_default(onnx_model, tmp_path):
    # Spinning threads take the CPU that decode and tracking need where they share cores.
    options = _initialize(onnx_model, tmp_path, {})
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_model_config_can_turn_spinning_and_threads_back_on(onnx_model, tmp_path):
    options = _initialize(
        onnx_model, tmp_path, {"vigil.intra_op_spinning": "1", "vigil.intra_op_threads": "1"}
    )
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.intra_op_num_threads == 1
