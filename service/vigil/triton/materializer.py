"""Turn Vigil's model repository into one the embedded Triton can serve.

Vigil's repository (``model_repository/``) is written for production Triton: ONNX models
declare ``platform: "onnxruntime_onnx"``. The PyPI Triton build that embedded mode runs has
only the Python backend, so the materializer writes a runtime repository in which

* each ONNX model becomes a Python-backend model running the same ``model.onnx`` through
  onnxruntime (:mod:`vigil.triton.onnx_model`), with the same name, inputs, outputs,
  batching and ``parameters``;
* Python-backend models are linked unchanged;
* models no embedded backend can run (TensorRT, TensorFlow) are left out, with a warning.

Weights are linked, not copied. The rest of Vigil never knows which mode it is in.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from vigil.triton.errors import RepositoryError

log = logging.getLogger(__name__)

_ONNX_PLATFORMS = {"onnxruntime_onnx"}
_ONNX_BACKENDS = {"onnxruntime"}
_TEMPLATE = Path(__file__).with_name("onnx_model.py")


def read_model_config(path: Path) -> model_config_pb2.ModelConfig:
    """Parse a ``config.pbtxt``.

    Raises:
        RepositoryError: the file is missing or not a valid Triton model config.
    """
    try:
        text = path.read_text()
    except OSError as e:
        raise RepositoryError(f"cannot read {path}: {e.strerror}") from e
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as e:
        raise RepositoryError(f"{path} is not a valid Triton model config: {e}") from e


def repository_models(repository: Path) -> list[str]:
    """Names of the model directories (those with a config.pbtxt) in a repository."""
    if not repository.is_dir():
        raise RepositoryError(f"model repository {repository} does not exist")
    return sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))


def materialize(source: Path, dest: Path, python_paths: list[str]) -> list[str]:
    """Write the embedded-mode repository for ``source`` into ``dest``.

    Args:
        source: Vigil's model repository.
        dest: Directory to (re)create.
        python_paths: ``sys.path`` entries the generated models prepend (the backend stub
            ignores ``PYTHONPATH``): where numpy and onnxruntime for the backend live.

    Returns:
        The names of the models that the embedded server can serve.
    """
    source = source.resolve()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    servable = []
    for name in repository_models(source):
        model_dir = source / name
        config = read_model_config(model_dir / "config.pbtxt")
        if config.platform in _ONNX_PLATFORMS or config.backend in _ONNX_BACKENDS:
            if _materialize_onnx(model_dir, dest / name, config, python_paths):
                servable.append(name)
        elif config.backend == "python":
            (dest / name).symlink_to(model_dir, target_is_directory=True)
            servable.append(name)
        else:
            log.warning(
                "model %s (%s) cannot run on the embedded Triton; it needs production Triton",
                name,
                config.platform or config.backend,
            )
    return servable


def _materialize_onnx(
    model_dir: Path, out: Path, config: model_config_pb2.ModelConfig, python_paths: list[str]
) -> bool:
    filename = config.default_model_filename or "model.onnx"
    versions = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    versions = [v for v in versions if (v / filename).is_file()]
    if not versions:
        log.warning("model %s has no version with %s; run `make models`", model_dir.name, filename)
        return False
    config.platform = ""
    config.backend = "python"
    config.default_model_filename = ""
    config.optimization.Clear()
    config.parameters["vigil.onnx_filename"].string_value = filename
    for group in config.instance_group:
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
        del group.gpus[:]
    out.mkdir()
    (out / "config.pbtxt").write_text(text_format.MessageToString(config))
    header = f"import sys\nsys.path[:0] = {python_paths!r}\n"
    model_py = header + _TEMPLATE.read_text()
    for version in versions:
        (out / version.name).mkdir()
        (out / version.name / "model.py").write_text(model_py)
        (out / version.name / filename).symlink_to(version / filename)
    for extra in model_dir.iterdir():
        if extra.is_file() and extra.name != "config.pbtxt":
            (out / extra.name).symlink_to(extra)
    return True
