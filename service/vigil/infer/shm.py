"""Shared-memory slot rings that carry tensors to Triton, and their system-memory regions.

Tensors never travel as bytes in an inference request: each request points Triton at a
*slot*, one POSIX shared-memory region holding the batch's input tensors and room for its
output tensors. A ring of slots (one per request in flight) is created and registered with
Triton once; preprocessing writes straight into a free slot, and parsing reads the outputs
from it before the slot goes back to the ring.

Every region is named ``vigil_<pid>_<token>_...`` (:mod:`vigil.shm_segments`). The process that
creates a region removes it (:meth:`SharedMemoryRegion.close`); regions whose creating process
has died (killed with SIGKILL, say) are removed by
:func:`~vigil.shm_segments.remove_stale_segments` at the next start.

The ring logic (:class:`SlotRing`, :class:`Slot`) does not care where a region lives:
:class:`SystemShmRing` makes POSIX regions here, :class:`~vigil.infer.cuda_shm.CudaShmRing`
makes CUDA regions (GPU hosts). Both hand out slots whose ``inputs`` and ``outputs`` are views
of the region (numpy arrays or CUDA tensors) and whose :meth:`Slot.host_outputs` gives the
parser numpy arrays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vigil.infer.tensors import TensorSpec
from vigil.shm_segments import SHM_DIR

log = logging.getLogger(__name__)

_ALIGN = 64


class Region(Protocol):
    """What a slot needs of the memory region behind it (system or CUDA)."""

    #: ``"system"`` or ``"cuda"``: how Triton maps the region.
    kind: str
    name: str
    byte_size: int

    def view(self, dtype: np.dtype, shape: tuple[int, ...], offset: int) -> Any:
        """A view of part of the region: a numpy array, or a CUDA tensor."""
        ...

    def to_host(self, view: Any) -> np.ndarray:
        """``view``'s contents as a host numpy array (the view itself for host memory)."""
        ...

    def close(self) -> None:
        """Free the region; idempotent."""
        ...


class SharedMemoryRegion:
    """A POSIX shared-memory region created (and later removed) by this process.

    Args:
        name: Segment name without the leading slash (it appears in ``/dev/shm``).
        byte_size: Size in bytes.
    """

    def __init__(self, name: str, byte_size: int) -> None:
        if "/" in name:
            raise ValueError(f"shared-memory name must not contain '/': {name!r}")
        self.name = name
        self.byte_size = byte_size
        fd = os.open(SHM_DIR / name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, byte_size)
            self._mmap: mmap.mmap | None = mmap.mmap(fd, byte_size)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                (SHM_DIR / name).unlink()
            raise
        os.close(fd)

    kind = "system"

    @property
    def key(self) -> str:
        """The ``shm_open`` key Triton needs to map this region."""
        return "/" + self.name

    def ndarray(self, dtype: np.dtype, shape: tuple[int, ...], offset: int) -> np.ndarray:
        """A numpy view of part of the region."""
        if self._mmap is None:
            raise ValueError(f"shared-memory region {self.name} is closed")
        count = int(np.prod(shape))
        return np.frombuffer(self._mmap, dtype=dtype, count=count, offset=offset).reshape(shape)

    view = ndarray

    def to_host(self, view: np.ndarray) -> np.ndarray:
        """The view itself: it already is host memory."""
        return view

    def close(self) -> None:
        """Unmap and unlink the region; idempotent.

        The unlink always happens. If numpy views are still alive the mapping itself stays
        until they are gone (the memory is freed when the last mapping goes).
        """
        if self._mmap is not None:
            mm, self._mmap = self._mmap, None
            try:
                mm.close()
            except BufferError:
                log.debug("views of %s still alive; unmapped when they are collected", self.name)
        with contextlib.suppress(FileNotFoundError):
            (SHM_DIR / self.name).unlink()


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor of a request lives: region, byte offset and byte size."""

    region: str
    offset: int
    byte_size: int


class Slot:
    """One shared-memory region holding a batch's inputs and outputs.

    Attributes:
        index: Position in the ring.
        region: The region (registered with Triton under ``region.name``).
        inputs: Name → view of shape ``(max_batch, *shape)``; preprocessing writes here
            (numpy arrays in system memory, CUDA tensors in CUDA memory).
        outputs: Name → view of shape ``(max_batch, *shape)``; Triton writes here.
    """

    def __init__(
        self,
        index: int,
        region: Region,
        max_batch: int,
        inputs: Iterable[TensorSpec],
        outputs: Iterable[TensorSpec],
    ) -> None:
        self.index = index
        self.region = region
        self.max_batch = max_batch
        self._offsets: dict[str, tuple[int, TensorSpec]] = {}
        self.inputs: dict[str, np.ndarray] = {}
        self.outputs: dict[str, np.ndarray] = {}
        offset = 0
        for specs, views in ((inputs, self.inputs), (outputs, self.outputs)):
            for spec in specs:
                views[spec.name] = region.view(spec.dtype, (max_batch, *spec.shape), offset)
                self._offsets[spec.name] = (offset, spec)
                offset += _aligned(spec.item_bytes * max_batch)

    def ref(self, name: str, batch: int) -> TensorRef:
        """Where tensor ``name`` of a batch of ``batch`` items lives in this slot."""
        if not 0 < batch <= self.max_batch:
            raise ValueError(f"batch of {batch} does not fit a slot of {self.max_batch}")
        offset, spec = self._offsets[name]
        return TensorRef(self.region.name, offset, spec.item_bytes * batch)

    def host_outputs(self, batch: int) -> dict[str, np.ndarray]:
        """The first ``batch`` items of every output as host arrays, for the parser.

        System memory: views, no copy. CUDA memory: one device-to-host copy per output (the
        detector's small output tensors; pixels never come back).
        """
        return {name: self.region.to_host(view[:batch]) for name, view in self.outputs.items()}

    def release_views(self) -> None:
        """Drop the numpy views so the region can be unmapped."""
        self.inputs.clear()
        self.outputs.clear()


def slot_bytes(max_batch: int, specs: Iterable[TensorSpec]) -> int:
    """Bytes of a slot holding ``specs`` for ``max_batch`` items."""
    return sum(_aligned(s.item_bytes * max_batch) for s in specs)


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class SlotRing:
    """A fixed ring of slots, handed out one request at a time.

    :meth:`acquire` waits (asynchronously) for a free slot: that wait is the pipeline's
    back-pressure when inference is the bottleneck. Subclasses say where the regions live.

    Args:
        make_region: Creates region ``i`` (name and size are the subclass's business).
        slots: Number of slots (= requests that can be in flight).
        max_batch: Batch items per slot.
        inputs: Input tensors of one item.
        outputs: Output tensors of one item.
    """

    #: ``"system"`` or ``"cuda"``.
    kind = ""

    def __init__(
        self,
        make_region: Callable[[int, int], Region],
        slots: int,
        max_batch: int,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
    ) -> None:
        if slots < 1:
            raise ValueError("a ring needs at least one slot")
        size = slot_bytes(max_batch, [*inputs, *outputs])
        self.slots: list[Slot] = []
        self._free: asyncio.Queue[Slot] = asyncio.Queue()
        try:
            for i in range(slots):
                region = make_region(i, size)
                try:
                    slot = Slot(i, region, max_batch, inputs, outputs)
                except BaseException:
                    region.close()
                    raise
                self.slots.append(slot)
                self._free.put_nowait(slot)
        except BaseException:
            self.close()
            raise

    @property
    def free_slots(self) -> int:
        """How many slots are free now."""
        return self._free.qsize()

    async def acquire(self) -> Slot:
        """Wait for a free slot."""
        return await self._free.get()

    def release(self, slot: Slot) -> None:
        """Give a slot back to the ring."""
        self._free.put_nowait(slot)

    def close(self) -> None:
        """Free every slot's region; idempotent."""
        slots, self.slots = self.slots, []
        for slot in slots:
            slot.release_views()
            slot.region.close()


class SystemShmRing(SlotRing):
    """A ring of slots in system (POSIX) shared memory.

    Args:
        prefix: Name prefix from :func:`~vigil.shm_segments.new_prefix`; slot ``i`` is
            ``<prefix>_<i>``.
        slots: Number of slots (= requests that can be in flight).
        max_batch: Batch items per slot.
        inputs: Input tensors of one item.
        outputs: Output tensors of one item.
    """

    kind = "system"

    def __init__(
        self,
        prefix: str,
        slots: int,
        max_batch: int,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
    ) -> None:
        super().__init__(
            lambda i, size: SharedMemoryRegion(f"{prefix}_{i}", size),
            slots,
            max_batch,
            inputs,
            outputs,
        )
