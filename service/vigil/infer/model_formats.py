"""Model file formats Triton serves, as a ``config.pbtxt`` declares them.

Which format a model is (its ``platform`` or ``backend``), which file Triton looks for in a
version directory, the tensors the config declares, and what can be checked of a model file
without the format's runtime.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import triton_to_np_dtype

from vigil.infer.errors import RegistryError
from vigil.infer.signature import Signature
from vigil.infer.tensors import TensorSpec
from vigil.triton.errors import RepositoryError


class ModelFormat(StrEnum):
    """Model file formats Triton serves."""

    ONNX = "onnx"
    TENSORRT = "tensorrt"
    SAVEDMODEL = "savedmodel"
    GRAPHDEF = "graphdef"
    PYTHON = "python"


@dataclass(frozen=True)
class FormatRule:
    """How Triton recognizes a format: config platforms and backend, file in a version."""

    platforms: tuple[str, ...]
    backend: str
    filename: str  # Triton's default file (or directory) name in a version directory
    directory: bool = False


FORMAT_RULES: dict[ModelFormat, FormatRule] = {
    ModelFormat.ONNX: FormatRule(("onnxruntime_onnx",), "onnxruntime", "model.onnx"),
    ModelFormat.TENSORRT: FormatRule(("tensorrt_plan",), "tensorrt", "model.plan"),
    ModelFormat.SAVEDMODEL: FormatRule(
        ("tensorflow_savedmodel",), "tensorflow", "model.savedmodel", directory=True
    ),
    ModelFormat.GRAPHDEF: FormatRule(("tensorflow_graphdef",), "tensorflow", "model.graphdef"),
    ModelFormat.PYTHON: FormatRule((), "python", "model.py"),
}
"""How Triton recognizes each format."""


def format_of(config: model_config_pb2.ModelConfig) -> ModelFormat:
    """The file format a model config declares (``platform`` or ``backend``).

    Raises:
        RepositoryError: a platform/backend Vigil does not know.
    """
    for fmt, rule in FORMAT_RULES.items():
        if config.platform and config.platform in rule.platforms:
            return fmt
    # A backend alone ("tensorflow") means Triton's default for it: SavedModel.
    for fmt, rule in FORMAT_RULES.items():
        if config.backend and config.backend == rule.backend:
            return fmt
    raise RepositoryError(
        f"model {config.name!r}: unknown platform/backend {config.platform or config.backend!r}"
    )


def model_filename(config: model_config_pb2.ModelConfig) -> str:
    """The file (or directory) name Triton looks for in a version directory."""
    return config.default_model_filename or FORMAT_RULES[format_of(config)].filename


def declared_signature(config: model_config_pb2.ModelConfig) -> Signature:
    """The inputs and outputs a ``config.pbtxt`` declares (per batch item)."""
    as_json = json_format.MessageToDict(config, preserving_proto_field_name=True)

    def spec(t: dict[str, Any]) -> TensorSpec:
        dtype = np.dtype(triton_to_np_dtype(t["data_type"].removeprefix("TYPE_")))
        return TensorSpec(t["name"], dtype, tuple(int(d) for d in t.get("dims", [])))

    return Signature(
        inputs=tuple(spec(t) for t in as_json.get("input", [])),
        outputs=tuple(spec(t) for t in as_json.get("output", [])),
    )


def check_format(fmt: ModelFormat, path: Path) -> None:
    """Check a model file (or directory) as far as possible without the format's runtime.

    ONNX is checked by reading its signature (:mod:`vigil.infer.signature`), not here.

    Raises:
        RegistryError: (422) the file is not what its format needs.
    """
    if fmt is ModelFormat.SAVEDMODEL:
        if not path.is_dir() or not any(
            (path / f).is_file() for f in ("saved_model.pb", "saved_model.pbtxt")
        ):
            raise RegistryError(
                f"{path.name} must be a SavedModel directory with saved_model.pb", 422
            )
    elif fmt is ModelFormat.PYTHON:
        try:
            tree = ast.parse(path.read_text(), filename=path.name)
        except (SyntaxError, UnicodeDecodeError) as e:
            raise RegistryError(f"model.py is not valid Python: {e}", 422) from e
        classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        if "TritonPythonModel" not in classes:
            raise RegistryError("model.py must define class TritonPythonModel", 422)
    elif path.is_dir() or path.stat().st_size == 0:
        raise RegistryError(f"{path.name} must be a non-empty file", 422)
