"""The one place that chooses the CPU path or the GPU path, and builds its parts.

=========================  ==============================  ==================================
part                       CPU path                        GPU path
=========================  ==============================  ==================================
tensors to Triton          system shared memory ring        CUDA shared memory ring
preprocessing              OpenCV, into the ring slot       torch on the GPU, into the slot
file decoding              PyAV (FFmpeg) on the CPU         NVDEC (PyNvVideoCodec), on the GPU
=========================  ==============================  ==================================

:func:`choose_acceleration` reads :class:`~vigil.config.GpuSettings` and what the host has;
the pipeline then asks the returned :class:`Acceleration` for a ring and a preprocessor, and
the stream manager for sources. No other module knows which path is in use.

Nothing here imports torch, cuda-python or PyNvVideoCodec at import time: CPU hosts do not
have them.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Literal

from vigil.config import GpuSettings, SourceSettings
from vigil.infer.shm import SlotRing, SystemShmRing
from vigil.infer.tensors import InputFormat, TensorSpec
from vigil.preprocess.base import Preprocessor
from vigil.sources.base import Source
from vigil.specs import NETWORK_SCHEMES, StreamSpec

log = logging.getLogger(__name__)


class AccelerationError(ValueError):
    """The settings ask for a GPU path this host cannot give (the message says why)."""


@dataclass(frozen=True)
class GpuProbe:
    """What this host can do on its GPU; each field is None when usable, else the reason."""

    cuda: str | None
    nvdec: str | None


@functools.cache
def probe_gpu(device_id: int = 0) -> GpuProbe:
    """Look (once per process) for a usable CUDA device and for NVDEC."""
    cuda = _cuda_unavailable_reason(device_id)
    if cuda is not None:
        return GpuProbe(cuda, cuda)
    from vigil.sources.nvdec import nvdec_unavailable_reason

    return GpuProbe(None, nvdec_unavailable_reason())


def _cuda_unavailable_reason(device_id: int) -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    if device_id >= torch.cuda.device_count():
        return f"CUDA device {device_id} does not exist ({torch.cuda.device_count()} found)"
    try:
        import tritonclient.utils.cuda_shared_memory  # noqa: F401 (needs cuda-python)
    except (ImportError, RuntimeError) as e:
        return f"tritonclient's CUDA shared memory is unusable: {e}"
    return None


@dataclass(frozen=True)
class Acceleration:
    """The chosen path. Build one with :func:`choose_acceleration`.

    Attributes:
        shared_memory: ``system`` (CPU path) or ``cuda`` (GPU path; preprocessing on the GPU).
        decode: ``cpu`` (PyAV) or ``gpu`` (NVDEC) for file sources.
        device_id: CUDA device of the GPU path.
        triton_cuda_pool_bytes: CUDA memory pool an embedded Triton needs (0: none).
        nvdec_idle_decoders: NVDEC decoders the process keeps idle for reuse (0: none).
    """

    shared_memory: Literal["system", "cuda"] = "system"
    decode: Literal["cpu", "gpu"] = "cpu"
    device_id: int = 0
    triton_cuda_pool_bytes: int = 0
    nvdec_idle_decoders: int = 0

    @property
    def on_gpu(self) -> bool:
        """Whether tensors (and preprocessing) are on the GPU."""
        return self.shared_memory == "cuda"

    def describe(self) -> str:
        """One line for logs and benchmarks."""
        if not self.on_gpu:
            return "CPU path: system shared memory, CPU preprocessing, CPU decoding"
        decode = "NVDEC decoding" if self.decode == "gpu" else "CPU decoding"
        return f"GPU path (cuda:{self.device_id}): CUDA shared memory, GPU preprocessing, {decode}"

    def make_ring(
        self,
        prefix: str,
        slots: int,
        max_batch: int,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
    ) -> SlotRing:
        """A ring of ``slots`` slots for the model's tensors, where this path keeps them."""
        if self.on_gpu:
            from vigil.infer.cuda_shm import CudaShmRing

            return CudaShmRing(prefix, slots, max_batch, inputs, outputs, self.device_id)
        return SystemShmRing(prefix, slots, max_batch, inputs, outputs)

    def make_preprocessor(self, fmt: InputFormat) -> Preprocessor:
        """The preprocessor that writes into this path's ring slots."""
        if self.on_gpu:
            from vigil.preprocess.gpu import GpuPreprocessor

            return GpuPreprocessor(fmt, self.device_id)
        from vigil.preprocess.cpu import CpuPreprocessor

        return CpuPreprocessor(fmt)

    def make_source(self, spec: StreamSpec, settings: SourceSettings) -> Source:
        """A new, unopened source for ``spec`` (files and network cameras decode on NVDEC on
        the GPU path; their demuxing then runs in this process, not a decoder child)."""
        if self.decode == "gpu" and spec.scheme == "file":
            from vigil.sources.nvdec import NvdecFileSource
            from vigil.sources.nvdec_pool import DECODERS

            DECODERS.capacity = self.nvdec_idle_decoders
            pool = DECODERS if self.nvdec_idle_decoders else None
            return NvdecFileSource(spec.id, spec.url, self.device_id, pool=pool)
        if self.decode == "gpu" and spec.scheme in NETWORK_SCHEMES:
            from vigil.sources.nvdec_network import NvdecNetworkSource

            return NvdecNetworkSource(
                spec.id,
                spec.url,
                self.device_id,
                open_timeout_s=settings.open_timeout_s,
                read_timeout_s=settings.read_timeout_s,
            )
        from vigil.sources.factory import make_source

        return make_source(spec, settings)


CPU_PATH = Acceleration()


def choose_acceleration(
    settings: GpuSettings, probe: GpuProbe | None = None, *, announce: bool = True
) -> Acceleration:
    """Choose the path from the settings and what the host has.

    ``auto`` picks the GPU path when a CUDA device is usable, else the CPU path. On the GPU
    path, files decode on NVDEC when PyNvVideoCodec works; otherwise on the CPU, with one
    warning that says why.

    Args:
        settings: The ``gpu`` settings.
        probe: What the host has (default: :func:`probe_gpu`, which looks once per process).
        announce: Log the fallback warning and the chosen path (INFO).

    Raises:
        AccelerationError: the settings force a GPU part the host cannot give, or combine
            GPU decoding with system shared memory (pixels would have to leave the GPU).
    """
    probe = probe or probe_gpu(settings.device_id)
    if settings.mode == "gpu" and probe.cuda:
        raise AccelerationError(f"gpu.mode is 'gpu' but {probe.cuda}")
    if settings.shared_memory == "cuda" and probe.cuda:
        raise AccelerationError(f"gpu.shared_memory is 'cuda' but {probe.cuda}")
    if settings.shared_memory == "auto":
        gpu = settings.mode == "gpu" or (settings.mode == "auto" and probe.cuda is None)
    else:
        gpu = settings.shared_memory == "cuda"
    if not gpu:
        if settings.decode == "gpu":
            raise AccelerationError(
                "gpu.decode is 'gpu' but tensors go through system shared memory: decoded "
                "frames would have to leave the GPU; use gpu.shared_memory 'cuda' (or 'auto')"
            )
        return CPU_PATH
    decode: Literal["cpu", "gpu"] = "cpu"
    if settings.decode != "cpu":
        if probe.nvdec is None:
            decode = "gpu"
        elif announce:
            log.warning("NVDEC is unavailable (%s): decoding video on the CPU", probe.nvdec)
    chosen = Acceleration(
        shared_memory="cuda",
        decode=decode,
        device_id=settings.device_id,
        triton_cuda_pool_bytes=settings.triton_cuda_pool_mb << 20,
        nvdec_idle_decoders=settings.nvdec_idle_decoders,
    )
    if announce:
        log.info("%s", chosen.describe())
    return chosen
