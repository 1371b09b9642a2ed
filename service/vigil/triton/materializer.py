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


def materialize_version(
    source_model: Path, dest_model: Path, version: int, python_paths: list[str]
) -> None:
    """Add one new version of an already materialized model to the embedded repository.

    Python-backend models are links to their source directory and need nothing; an ONNX
    model gets the version's ``model.py`` wrapper and a link to its weights.

    Raises:
        RepositoryError: the model is not materialized, or the version has no weights file.
    """
    if dest_model.is_symlink() or not dest_model.exists():
        if not dest_model.exists():
            raise RepositoryError(f"model {source_model.name} is not in the embedded repository")
        return  # a link to the source directory: the new version is already there
    config = read_model_config(source_model / "config.pbtxt")
    filename = config.default_model_filename or "model.onnx"
    weights = source_model / str(version) / filename
    if not weights.is_file():
        raise RepositoryError(f"version {version} of {source_model.name} has no {filename}")
    target = dest_model / str(version)
    if target.exists():
        shutil.rmtree(target)
    _materialize_onnx_version(source_model / str(version), target, filename, python_paths)


def _materialize_onnx_version(
    version_dir: Path, out: Path, filename: str, python_paths: list[str]
) -> None:
    header = f"import sys\nsys.path[:0] = {python_paths!r}\n"
    out.mkdir()
    (out / "model.py").write_text(header + _TEMPLATE.read_text())
    (out / filename).symlink_to(version_dir.resolve() / filename)


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
    for version in versions:
        _materialize_onnx_version(version, out / version.name, filename, python_paths)
    for extra in model_dir.iterdir():
        if extra.is_file() and extra.name != "config.pbtxt":
            (out / extra.name).symlink_to(extra)
    return True
