import os

import numpy as np
import pytest

from vigil.infer.shm import SharedMemoryRegion, SystemShmRing
from vigil.infer.tensors import TensorSpec
from vigil.shm_segments import (
    SHM_DIR,
    new_prefix,
    owner_pid,
    remove_segments_with_prefix,
    remove_stale_segments,
)

IMAGE = TensorSpec("image", np.dtype(np.uint8), (30, 40, 3))
BOXES = TensorSpec("boxes", np.dtype(np.float32), (10, 4))


def ours(prefix: str) -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(f"{prefix}*"))


async def test_ring_creates_one_region_per_slot_and_close_removes_them():
    prefix = new_prefix("test")
    ring = SystemShmRing(prefix, slots=3, max_batch=2, inputs=[IMAGE], outputs=[BOXES])
    assert ours(prefix) == [f"{prefix}_0", f"{prefix}_1", f"{prefix}_2"]
    ring.close()
    assert ours(prefix) == []
    ring.close()  # idempotent


async def test_ring_acquire_waits_until_a_slot_is_released():
    import asyncio

    ring = SystemShmRing(new_prefix("test"), slots=1, max_batch=1, inputs=[IMAGE], outputs=[])
    try:
        slot = await ring.acquire()
        waiter = asyncio.ensure_future(ring.acquire())
        await asyncio.sleep(0.02)
        assert not waiter.done()
        ring.release(slot)
        assert await asyncio.wait_for(waiter, 1) is slot
    finally:
        ring.close()


async def test_slot_views_share_memory_with_what_triton_maps():
    ring = SystemShmRing(new_prefix("test"), slots=1, max_batch=2, inputs=[IMAGE], outputs=[BOXES])
    try:
        slot = await ring.acquire()
        slot.inputs["image"][1] = 7
        ref = slot.ref("image", 2)
        raw = (SHM_DIR / ref.region).read_bytes()
        start = ref.offset + IMAGE.item_bytes
        assert raw[start : start + 4] == b"\x07\x07\x07\x07"
        out = slot.ref("boxes", 1)
        assert out.offset % 64 == 0
        assert out.offset >= 2 * IMAGE.item_bytes
        assert out.byte_size == 10 * 4 * 4
    finally:
        ring.close()


@pytest.mark.parametrize("batch", [0, 3])
async def test_slot_ref_when_batch_does_not_fit_raises(batch):
    ring = SystemShmRing(new_prefix("test"), slots=1, max_batch=2, inputs=[IMAGE], outputs=[])
    try:
        with pytest.raises(ValueError, match="does not fit"):
            ring.slots[0].ref("image", batch)
    finally:
        ring.close()


def test_region_close_unlinks_even_when_views_are_alive():
    region = SharedMemoryRegion(new_prefix("test") + "_view", 1024)
    view = region.ndarray(np.dtype(np.uint8), (16,), 0)
    region.close()
    assert not (SHM_DIR / region.name).exists()
    del view


def test_stale_segments_of_dead_processes_are_removed_and_live_ones_kept():
    dead_pid = 2**22 + 12345  # above pid_max defaults: never a live process
    stale = SHM_DIR / f"vigil_{dead_pid}_abcd_ring_0"
    live = SHM_DIR / f"vigil_{os.getpid()}_abcd_ring_0"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    try:
        removed = remove_stale_segments()
        assert stale.name in removed
        assert not stale.exists()
        assert live.exists()
    finally:
        remove_segments_with_prefix(f"vigil_{os.getpid()}_abcd")
        stale.unlink(missing_ok=True)


def test_owner_pid_reads_the_pid_of_vigil_names_only():
    assert owner_pid(new_prefix("ring") + "_0") == os.getpid()
    assert owner_pid("vigil_123_ab12cd34_pb_x") == 123
    assert owner_pid("vigil_abc_ring") is None
    assert owner_pid("triton_python_backend_shm_region_1") is None
