"""CUDA shared-memory regions and the slot ring that keeps tensors on the GPU.

On GPU hosts each ring slot is one CUDA allocation made with
``tritonclient.utils.cuda_shared_memory`` (``cudaMalloc`` + a CUDA IPC handle) and registered
with Triton, which maps it into its own process: GPU preprocessing writes a batch straight into
the slot, the model reads it there, and Triton writes the outputs back into the same slot.
Nothing crosses host memory except the detector's small outputs, copied for the parser by
:meth:`CudaSharedMemoryRegion.to_host` (and counted in :attr:`CudaShmRing.bytes_to_host`).

The views are torch tensors made from the raw device pointer (``__cuda_array_interface__``);
the allocation belongs to the region, which frees it in :meth:`CudaSharedMemoryRegion.close`
(after the pipeline has unregistered it from Triton). A process that dies loses its CUDA
allocations with its context, so unlike system shared memory nothing can be left behind.

torch, cuda-python and tritonclient's CUDA module are imported when a region is made, never at
import time: CPU hosts do not need them.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from vigil.infer.shm import SlotRing
from vigil.infer.tensors import TensorSpec


class CudaSharedMemoryError(RuntimeError):
    """A CUDA shared-memory region could not be created or freed."""


class _DevicePointer:
    """Exposes ``byte_size`` bytes at a device address through ``__cuda_array_interface__``."""

    def __init__(self, address: int, byte_size: int) -> None:
        self.__cuda_array_interface__ = {
            "shape": (byte_size,),
            "typestr": "|u1",
            "data": (address, False),
            "version": 3,
            "strides": None,
        }


class TransferCounter:
    """Bytes copied device → host, for the "no pixel round-trip" check (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.copies = 0

    def add(self, byte_count: int) -> None:
        """Count one copy of ``byte_count`` bytes."""
        with self._lock:
            self.bytes += byte_count
            self.copies += 1


#: Every device → host copy made by Vigil's CUDA regions in this process.
TRANSFERS = TransferCounter()


class CudaSharedMemoryRegion:
    """One CUDA allocation, shareable with Triton through a CUDA IPC handle.

    Args:
        name: Name the region is registered under with Triton.
        byte_size: Size in bytes.
        device_id: CUDA device.
        counter: Where device → host copies are counted (default: :data:`TRANSFERS`).

    Raises:
        CudaSharedMemoryError: the allocation failed (out of memory, no device).
    """

    kind = "cuda"

    def __init__(
        self, name: str, byte_size: int, device_id: int, counter: TransferCounter | None = None
    ) -> None:
        import torch
        import tritonclient.utils.cuda_shared_memory as cudashm

        self.name = name
        self.byte_size = byte_size
        self.device_id = device_id
        self.counter = counter or TRANSFERS
        self._cudashm = cudashm
        try:
            self._handle: Any = cudashm.create_shared_memory_region(name, byte_size, device_id)
        except Exception as e:  # tritonclient raises its own exception type, or a bare one
            raise CudaSharedMemoryError(
                f"cannot allocate {byte_size} bytes of CUDA shared memory on device "
                f"{device_id}: {e}"
            ) from e
        self.raw_handle: bytes = cudashm.get_raw_handle(self._handle)
        address = int(self._handle._base_addr)
        self._bytes: torch.Tensor | None = torch.as_tensor(
            _DevicePointer(address, byte_size), device=f"cuda:{device_id}"
        )
        self._host: dict[tuple[Any, ...], torch.Tensor] = {}
        # Copies for the parser run on a stream of their own: on the legacy default stream
        # they would queue behind every other library's default-stream work (the video
        # decoders'), and the event loop would wait for that too.
        with torch.cuda.device(device_id):
            self._copy_stream = torch.cuda.Stream(torch.device("cuda", device_id))

    @property
    def closed(self) -> bool:
        """Whether the allocation has been freed."""
        return self._handle is None

    def view(self, dtype: np.dtype, shape: tuple[int, ...], offset: int) -> Any:
        """A CUDA tensor viewing part of the region."""
        import torch

        if self._bytes is None:
            raise ValueError(f"CUDA shared-memory region {self.name} is closed")
        torch_dtype = torch.from_numpy(np.empty(0, dtype)).dtype
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self._bytes[offset : offset + count].view(torch_dtype).view(shape)

    def to_host(self, view: Any) -> np.ndarray:
        """Copy ``view`` (a tensor of this region) into pinned host memory; counted.

        The result is valid until the next ``to_host`` of a view of the same dtype and the
        same shape after its first dimension: the parser reads it before the slot goes back
        to the ring.
        """
        import torch

        # One pinned buffer per output, kept at the largest batch seen, its first rows used:
        # with one buffer per batch size, every new size of a partial batch (cameras paced
        # in real time send them) paid a pinned allocation in the stage thread.
        key = (tuple(view.shape[1:]), view.dtype)
        host = self._host.get(key)
        if host is None or host.shape[0] < view.shape[0]:
            host = torch.empty(view.shape, dtype=view.dtype, pin_memory=True)
            self._host[key] = host
        host = host[: view.shape[0]]
        # Triton has finished writing the outputs when the request returns
        with torch.cuda.stream(self._copy_stream):
            host.copy_(view, non_blocking=True)
        self._copy_stream.synchronize()
        self.counter.add(view.numel() * view.element_size())
        return host.numpy()

    def close(self) -> None:
        """Free the allocation; idempotent. Unregister it from Triton first."""
        self._bytes = None
        self._host.clear()
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                self._cudashm.destroy_shared_memory_region(handle)
            except Exception as e:
                raise CudaSharedMemoryError(f"cannot free CUDA region {self.name}: {e}") from e
            # destroy() only forgets the handle; cudaFree runs when the last reference goes.
            del handle


class CudaShmRing(SlotRing):
    """A ring of slots in CUDA memory shared with Triton (GPU hosts).

    Args:
        prefix: Name prefix from :func:`~vigil.shm_segments.new_prefix`; slot ``i`` is
            ``<prefix>_<i>``.
        slots: Number of slots (= requests that can be in flight).
        max_batch: Batch items per slot.
        inputs: Input tensors of one item.
        outputs: Output tensors of one item.
        device_id: CUDA device the slots live on.

    Attributes:
        transfers: Device → host copies made for the parser (bytes and count; shared by all
            rings of the process: :data:`TRANSFERS`).
    """

    kind = "cuda"

    def __init__(
        self,
        prefix: str,
        slots: int,
        max_batch: int,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        device_id: int = 0,
    ) -> None:
        self.device_id = device_id
        self.transfers = TRANSFERS
        super().__init__(
            lambda i, size: CudaSharedMemoryRegion(
                f"{prefix}_{i}", size, device_id, self.transfers
            ),
            slots,
            max_batch,
            inputs,
            outputs,
        )


def allocated_regions() -> int:
    """CUDA shared-memory regions tritonclient still holds in this process (0 when clean)."""
    import tritonclient.utils.cuda_shared_memory as cudashm

    return len(cudashm.allocated_shared_memory_regions())
