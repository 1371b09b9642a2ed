from pathlib import Path

import pytest

from vigil.triton.errors import RepositoryError
from vigil.triton.materializer import materialize, read_model_config

ONNX_CONFIG = """
name: "det"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [{ name: "x" data_type: TYPE_UINT8 dims: [ 8, 8, 3 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 2 ] }]
instance_group [{ kind: KIND_GPU count: 1 gpus: [0] }]
dynamic_batching { max_queue_delay_microseconds: 100 }
parameters { key: "vigil.parser" value { string_value: "ssd" } }
"""


def make_model(repo: Path, name: str, config: str, weights: bool = True) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(config)
    (repo / name / "labels.txt").write_text("a\nb\n")
    if weights:
        (repo / name / "1" / "model.onnx").write_bytes(b"onnx")


def test_materialize_turns_onnx_model_into_python_backend_model(tmp_path):
    src = tmp_path / "src"
    make_model(src, "det", ONNX_CONFIG)
    served = materialize(src, tmp_path / "out", ["/some/site-packages"])
    assert served == ["det"]
    out = tmp_path / "out" / "det"
    config = read_model_config(out / "config.pbtxt")
    assert config.backend == "python"
    assert config.platform == ""
    assert config.max_batch_size == 4
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    assert config.parameters["vigil.parser"].string_value == "ssd"
    assert (out / "1" / "model.onnx").resolve() == (src / "det" / "1" / "model.onnx").resolve()
    model_py = (out / "1" / "model.py").read_text()
    assert model_py.startswith("import sys\nsys.path[:0] = ['/some/site-packages']")
    assert "class TritonPythonModel" in model_py
    assert (out / "labels.txt").read_text() == "a\nb\n"


def test_materialize_skips_models_without_weights_and_other_platforms(tmp_path):
    src = tmp_path / "src"
    make_model(src, "noweights", ONNX_CONFIG.replace('"det"', '"noweights"'), weights=False)
    make_model(src, "trt", 'name: "trt"\nplatform: "tensorrt_plan"\n')
    assert materialize(src, tmp_path / "out", []) == []


def test_materialize_when_config_is_malformed_names_the_file(tmp_path):
    src = tmp_path / "src"
    make_model(src, "bad", "name: 'bad'\nthis is not pbtxt {{{")
    with pytest.raises(RepositoryError, match=r"bad/config\.pbtxt is not a valid Triton model"):
        materialize(src, tmp_path / "out", [])
