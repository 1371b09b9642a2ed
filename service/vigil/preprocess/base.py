"""The call interface every preprocessor has (the input format it writes is
:class:`~vigil.infer.tensors.InputFormat`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from vigil.frame import Frame
from vigil.infer.tensors import InputFormat


class Preprocessor(Protocol):
    """Writes a batch of frames into a slot's input tensor.

    :class:`~vigil.preprocess.cpu.CpuPreprocessor` writes numpy arrays in system shared
    memory; :class:`~vigil.preprocess.gpu.GpuPreprocessor` writes CUDA tensors in CUDA shared
    memory. The pipeline calls either the same way, from a worker thread.
    """

    format: InputFormat

    def __call__(self, frames: Sequence[Frame], out: Any) -> None:
        """Write ``frames`` into ``out[:len(frames)]``; done (readable by Triton) on return."""
        ...
