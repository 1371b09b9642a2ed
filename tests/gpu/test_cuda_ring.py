"""CUDA shared-memory ring on a real GPU: views, device → host copies, freeing."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.infer import cuda_shm
from vigil.infer.cuda_shm import CudaSharedMemoryError, CudaShmRing, allocated_regions
from vigil.infer.tensors import TensorSpec
from vigil.shm_segments import new_prefix

pytestmark = pytest.mark.gpu

IMAGE = TensorSpec("image", np.dtype(np.float16), (3, 544, 960))
COVERAGE = TensorSpec("coverage", np.dtype(np.float32), (3, 34, 60))


def free_bytes(torch) -> int:
    torch.cuda.synchronize()
    return int(torch.cuda.mem_get_info()[0])


async def test_cuda_ring_slots_are_device_views_at_the_offsets_triton_is_told(cuda):
    torch = cuda
    ring = CudaShmRing(new_prefix("test"), 2, 4, [IMAGE], [COVERAGE])
    try:
        slot = await ring.acquire()
        image, coverage = slot.inputs["image"], slot.outputs["coverage"]
        assert image.is_cuda
        assert image.dtype == torch.float16
        assert image.shape == (4, 3, 544, 960)
        base = int(slot.region._handle._base_addr)
        assert image.data_ptr() == base + slot.ref("image", 4).offset
        assert coverage.data_ptr() == base + slot.ref("coverage", 4).offset
        assert slot.region.kind == "cuda"
        assert len(slot.region.raw_handle) > 0
        coverage.copy_(torch.arange(coverage.numel(), dtype=torch.float32).view(coverage.shape))
        before = cuda_shm.TRANSFERS.bytes
        host = slot.host_outputs(2)["coverage"]
        assert isinstance(host, np.ndarray)
        assert host.shape == (2, 3, 34, 60)
        np.testing.assert_array_equal(host.reshape(-1)[:5], [0, 1, 2, 3, 4])
        assert cuda_shm.TRANSFERS.bytes - before == 2 * COVERAGE.item_bytes
    finally:
        ring.close()


async def test_cuda_ring_copies_partial_batches_into_one_pinned_buffer(cuda):
    """Batches of changing sizes (paced cameras) reuse one pinned buffer per output: the
    largest batch's, its first rows."""
    torch = cuda
    ring = CudaShmRing(new_prefix("test"), 1, 4, [IMAGE], [COVERAGE])
    try:
        slot = await ring.acquire()
        coverage = slot.outputs["coverage"]
        coverage.copy_(torch.arange(coverage.numel(), dtype=torch.float32).view(coverage.shape))
        rows = int(np.prod(COVERAGE.shape))
        pointers = set()
        for batch in (4, 2, 3, 1, 4):
            host = slot.host_outputs(batch)["coverage"]
            assert host.shape == (batch, *COVERAGE.shape)
            np.testing.assert_array_equal(host.reshape(batch, -1)[:, 0], np.arange(batch) * rows)
            pointers.add(host.__array_interface__["data"][0])
        assert len(pointers) == 1
    finally:
        ring.close()


def test_cuda_ring_close_frees_the_device_memory(cuda):
    baseline = free_bytes(cuda)
    ring = CudaShmRing(new_prefix("test"), 4, 16, [IMAGE], [COVERAGE])
    used = baseline - free_bytes(cuda)
    assert used >= 4 * 16 * IMAGE.item_bytes
    assert allocated_regions() == 4
    ring.close()
    ring.close()  # idempotent
    assert allocated_regions() == 0
    assert baseline - free_bytes(cuda) < 8 << 20


def test_cuda_ring_that_fails_half_way_frees_what_it_made(cuda, monkeypatch):
    baseline = free_bytes(cuda)
    made = []
    real = cuda_shm.CudaSharedMemoryRegion

    def flaky(name, size, device_id, counter):
        if len(made) == 2:
            raise CudaSharedMemoryError("out of memory (simulated)")
        made.append(real(name, size, device_id, counter))
        return made[-1]

    monkeypatch.setattr(cuda_shm, "CudaSharedMemoryRegion", flaky)
    with pytest.raises(CudaSharedMemoryError, match="simulated"):
        CudaShmRing(new_prefix("test"), 4, 16, [IMAGE], [COVERAGE])
    assert all(region.closed for region in made)
    assert allocated_regions() == 0
    assert baseline - free_bytes(cuda) < 8 << 20
