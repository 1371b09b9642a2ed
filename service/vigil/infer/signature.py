"""A model version's I/O signature, read from its file, and how two signatures differ.

A hot swap is only safe without re-planning when the new version takes the same input and
gives the same outputs as the serving one (DeepStream's rule: same input size, layout and
classes). The signature is read from the model file itself, not from ``config.pbtxt``: all
versions of a Triton model share one config, so a new file that does not match it must be
caught before Triton is asked to load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.infer.tensors import TensorSpec

#: A dimension the file leaves open (dynamic); matches any size.
DYNAMIC = -1

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class SignatureError(ValueError):
    """A model file cannot be read, or its tensors are of a kind Vigil cannot describe."""


@dataclass(frozen=True)
class Signature:
    """Inputs and outputs of one model version, without the batch dimension.

    Attributes:
        inputs: Input tensors of one batch item (dynamic dimensions are ``-1``).
        outputs: Output tensors of one batch item.
        labels: Class names (empty if the version has none).
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form (for the REST API and the version's metadata file)."""
        return {
            "inputs": [_tensor_json(t) for t in self.inputs],
            "outputs": [_tensor_json(t) for t in self.outputs],
            "classes": len(self.labels),
        }

    def differences(self, other: Signature) -> list[str]:
        """What would break if ``other`` replaced this one; empty when compatible.

        Each entry names the tensor (or the labels) and both values, e.g.
        ``"input image_tensor: shape [300, 300, 3] → [320, 320, 3]"``.
        """
        found = _compare("input", self.inputs, other.inputs)
        found += _compare("output", self.outputs, other.outputs)
        if self.labels and other.labels and self.labels != other.labels:
            if len(self.labels) != len(other.labels):
                found.append(f"classes: {len(self.labels)} → {len(other.labels)} labels")
            else:
                changed = [
                    f"{i}: {a!r} → {b!r}"
                    for i, (a, b) in enumerate(zip(self.labels, other.labels, strict=True))
                    if a != b
                ]
                found.append("labels differ at " + ", ".join(changed[:5]))
        return found

    def conflicts_with_config(self, declared: Signature) -> list[str]:
        """Where this file's tensors contradict the model config's declaration.

        Dynamic dimensions on either side match anything; only names, types and fixed sizes
        are compared.
        """
        return _compare("input", declared.inputs, self.inputs, loose=True) + _compare(
            "output", declared.outputs, self.outputs, loose=True
        )


def read_onnx_signature(path: Path, batched: bool) -> Signature:
    """Read an ONNX file's inputs and outputs (with onnxruntime; nothing is run).

    Args:
        path: The ``.onnx`` file.
        batched: Whether the first dimension is the batch (Triton ``max_batch_size > 0``);
            it is then left out of the shapes.

    Raises:
        SignatureError: the file is not a valid ONNX model (with onnxruntime's reason).
    """
    import onnxruntime as ort  # heavy import, only needed when a version is inspected

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors for bad files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SignatureError(f"{path.name} is not a valid ONNX model: {reason}") from e
    return Signature(
        inputs=tuple(_ort_tensor(t, batched) for t in session.get_inputs()),
        outputs=tuple(_ort_tensor(t, batched) for t in session.get_outputs()),
    )


def _ort_tensor(arg: Any, batched: bool) -> TensorSpec:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise SignatureError(f"tensor {arg.name!r} has type {arg.type}, which Vigil cannot use")
    dims = [d if isinstance(d, int) and d >= 0 else DYNAMIC for d in arg.shape]
    if batched:
        dims = dims[1:]
    return TensorSpec(arg.name, np.dtype(dtype), tuple(dims))


def _tensor_json(t: TensorSpec) -> dict[str, Any]:
    return {"name": t.name, "dtype": np.dtype(t.dtype).name, "shape": list(t.shape)}


def _compare(
    kind: str, old: Sequence[TensorSpec], new: Sequence[TensorSpec], loose: bool = False
) -> list[str]:
    found = []
    old_by_name = {t.name: t for t in old}
    new_by_name = {t.name: t for t in new}
    for name in old_by_name.keys() - new_by_name.keys():
        found.append(f"{kind} {name}: missing in the new version")
    for name in new_by_name.keys() - old_by_name.keys():
        found.append(f"{kind} {name}: not in the serving version")
    for name in sorted(old_by_name.keys() & new_by_name.keys()):
        a, b = old_by_name[name], new_by_name[name]
        if np.dtype(a.dtype) != np.dtype(b.dtype):
            old_type, new_type = np.dtype(a.dtype).name, np.dtype(b.dtype).name
            found.append(f"{kind} {name}: dtype {old_type} → {new_type}")
        if not _shapes_match(a.shape, b.shape, loose):
            found.append(f"{kind} {name}: shape {list(a.shape)} → {list(b.shape)}")
    return sorted(found)


def _shapes_match(a: tuple[int, ...], b: tuple[int, ...], loose: bool) -> bool:
    if not loose:
        return a == b
    # Triton lets a config declare [1] with a reshape to [] (a scalar per batch item)
    if a in ((1,), ()) and b in ((1,), ()):
        return True
    return len(a) == len(b) and all(x == y or DYNAMIC in (x, y) for x, y in zip(a, b, strict=True))
