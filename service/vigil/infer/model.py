"""What Vigil knows about a served model: tensors, parser, labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.utils import triton_to_np_dtype

from vigil.infer.errors import UnsupportedModelError
from vigil.infer.tensors import InputFormat, TensorSpec


@dataclass(frozen=True)
class ModelInfo:
    """A loaded model as Vigil sees it.

    Attributes:
        name: Model name in Triton.
        version: The version requests go to (the newest one Triton has loaded).
        max_batch_size: Largest batch the model accepts (0 = no batch dimension).
        inputs: Input tensors of one batch item.
        outputs: Output tensors of one batch item.
        parameters: The config's ``parameters`` (``vigil.parser``, ``vigil.labels``, ...).
        labels: Class names indexed by class id (empty if the model ships none).
    """

    name: str
    version: str
    max_batch_size: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    parameters: dict[str, str] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)

    @property
    def parser(self) -> str:
        """Name of the output parser (``vigil.parser`` parameter)."""
        return self.parameters.get("vigil.parser", "")

    def input_format(self) -> InputFormat:
        """How to feed the model's one image input: its tensor, and the config's
        ``vigil.resize`` / ``vigil.pad_value``.

        Raises:
            UnsupportedModelError: not one image input Vigil can write, or a bad parameter
                (the message names the model).
        """
        if len(self.inputs) != 1:
            raise UnsupportedModelError(
                f"model {self.name!r} must have one image input; it has {len(self.inputs)}"
            )
        try:
            return InputFormat.from_tensor(self.inputs[0], self.parameters)
        except UnsupportedModelError as e:
            raise UnsupportedModelError(f"model {self.name!r}: {e}") from e

    def label(self, class_id: int) -> str:
        """Class name of ``class_id`` (``class_<id>`` if unknown)."""
        if 0 <= class_id < len(self.labels) and self.labels[class_id] not in ("", "N/A"):
            return self.labels[class_id]
        return f"class_{class_id}"

    def output(self, name: str) -> TensorSpec:
        """The output tensor called ``name``."""
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(f"model {self.name} has no output {name!r}")

    @classmethod
    def from_config(
        cls, config: dict[str, Any], repository: Path | None, version: int | None = None
    ) -> ModelInfo:
        """Build from Triton's model config (JSON form) and the local repository's labels.

        A version directory's own labels file (same name) replaces the model's.
        """
        name = config["name"]
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        labels: list[str] = []
        label_file = parameters.get("vigil.labels")
        if label_file and repository is not None:
            candidates = [repository / name / label_file]
            if version is not None:
                candidates.insert(0, repository / name / str(version) / label_file)
            path = next((p for p in candidates if p.is_file()), None)
            if path is not None:
                labels = [line.strip() for line in path.read_text().splitlines()]
        return cls(
            name=name,
            version="",
            max_batch_size=int(config.get("max_batch_size", 0)),
            inputs=[_spec(t) for t in config.get("input", [])],
            outputs=[_spec(t) for t in config.get("output", [])],
            parameters=parameters,
            labels=labels,
        )


def _spec(tensor: dict[str, Any]) -> TensorSpec:
    dtype = np.dtype(triton_to_np_dtype(tensor["data_type"].removeprefix("TYPE_")))
    dims = tuple(int(d) for d in tensor.get("dims", []))
    return TensorSpec(tensor["name"], dtype, dims)
