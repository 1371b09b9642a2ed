"""The GPU path end to end against a real Triton (PeopleNet-class model), and its exit paths:
CUDA shared-memory regions are unregistered from Triton and freed however Vigil stops."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from tests.gpu.support import child_run, frames_in, is_allocated, registered, wait_registered
from vigil.accel import choose_acceleration
from vigil.infer import cuda_shm
from vigil.infer.cuda_shm import allocated_regions
from vigil.jobs import file_spec, run_streams
from vigil.runtime import open_runtime
from vigil.triton_connection import connect

pytestmark = pytest.mark.gpu

OUTPUT_BYTES_PER_FRAME = (3 + 12) * 34 * 60 * 4


async def test_gpu_path_runs_streams_to_events_copying_only_outputs_to_host(
    settings, triton, gpu_clip
):
    assert choose_acceleration(settings.gpu).on_gpu
    await registered(triton)
    before = cuda_shm.TRANSFERS.bytes
    specs = [file_spec("a", str(gpu_clip)), file_spec("b", str(gpu_clip))]
    addresses: list[int] = []

    def on_start(runtime) -> None:
        ring = runtime.pipeline.route.ring
        addresses.extend(int(slot.region._handle._base_addr) for slot in ring.slots)

    result = await run_streams(settings, specs, on_start=on_start)
    frames = sum(s.stats.frames_processed for s in result.streams.values())
    assert not result.failed, [s.reason for s in result.failed]
    assert frames == 2 * frames_in(gpu_clip)
    assert result.events_written > 0, "the model's outputs came back empty"
    # device → host: the detector's outputs and nothing else (no pixels)
    assert cuda_shm.TRANSFERS.bytes - before == frames * OUTPUT_BYTES_PER_FRAME
    assert await registered(triton) == []
    assert allocated_regions() == 0
    assert addresses
    assert not [hex(a) for a in addresses if is_allocated(a)], "CUDA memory not freed"


async def test_gpu_path_exception_exit_unregisters_and_frees(settings, triton, gpu_clip):
    seen: list[str] = []
    addresses: list[int] = []

    async def fail_mid_run() -> None:
        async with open_runtime(settings) as runtime:
            await runtime.streams.add(file_spec("a", str(gpu_clip)), trusted=True)
            await asyncio.sleep(1.0)
            seen.extend(await registered(triton))
            ring = runtime.pipeline.route.ring
            assert ring is not None
            addresses.extend(int(s.region._handle._base_addr) for s in ring.slots)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_mid_run()
    assert any(n.startswith(f"vigil_{os.getpid()}_") for n in seen)
    assert addresses
    assert await registered(triton) == []
    assert allocated_regions() == 0
    assert not [hex(a) for a in addresses if is_allocated(a)], "CUDA memory not freed"


async def test_sigterm_mid_run_unregisters_the_cuda_regions(settings, triton, gpu_clip, tmp_path):
    with child_run(settings, gpu_clip, tmp_path) as child:
        await wait_registered(triton, child.pid)
        await asyncio.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM, out
    assert [n for n in await registered(triton) if f"_{child.pid}_" in n] == [], out


async def test_regions_of_a_killed_vigil_are_unregistered_at_the_next_start(
    settings, triton, gpu_clip, tmp_path
):
    with child_run(settings, gpu_clip, tmp_path) as child:
        await wait_registered(triton, child.pid)
        child.kill()  # SIGKILL: no chance to unregister
        child.wait(30)
    assert [n for n in await registered(triton) if f"_{child.pid}_" in n]
    async with connect(settings):  # what every Vigil start does with an external Triton
        pass
    assert [n for n in await registered(triton) if f"_{child.pid}_" in n] == []


def test_output_bytes_constant_matches_the_model():
    assert (
        sum(int(np.prod(shape)) * 4 for shape in ((3, 34, 60), (12, 34, 60)))
        == OUTPUT_BYTES_PER_FRAME
    )
