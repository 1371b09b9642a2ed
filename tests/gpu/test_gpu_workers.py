"""``vigil run --workers`` on the GPU path against a real Triton: each worker process
registers its own CUDA shared-memory ring (CUDA IPC handles that Triton opens), and none of
them stays registered however the job ends — at its end, when a worker is killed, on SIGTERM,
and after SIGKILL once the next Vigil start has swept. Unregistering a region is what makes
Triton close its IPC handle, and the memory goes with the process that allocated it."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.gpu.support import (
    child_run,
    cuda_regions,
    frames_in,
    owners,
    registered,
    until_regions,
)
from tests.integration.helpers import shm_segments_of
from vigil.config import Settings
from vigil.job_workers import WorkerJob
from vigil.jobs import file_spec
from vigil.pipeline.stream_state import StreamState
from vigil.shm_segments import pid_alive
from vigil.specs import StreamSpec
from vigil.triton_connection import connect

pytestmark = pytest.mark.gpu


def segments_of(pids: set[int]) -> list[str]:
    return [name for pid in pids for name in shm_segments_of(pid)]


async def workers_registered(triton, job: WorkerJob) -> set[int]:
    """Wait until every worker of ``job`` has CUDA regions registered; returns their pids."""
    names = await until_regions(
        triton, lambda names: bool(job.pids) and set(job.pids) <= owners(names)
    )
    assert set(job.pids) <= owners(cuda_regions(triton)), "the workers' rings are not CUDA"
    return owners(names) & set(job.pids)


async def test_workers_give_every_frame_and_leave_no_region(settings, triton, gpu_clip):
    before = set(await registered(triton))
    specs = [file_spec("a", str(gpu_clip)), file_spec("b", str(gpu_clip))]
    job = WorkerJob(settings, specs, workers=2, report_s=0.1)
    run = asyncio.create_task(job.run())
    seen = await workers_registered(triton, job)
    result = await asyncio.wait_for(run, 300)

    assert not result.failed, [s.reason for s in result.failed]
    assert sum(s.stats.frames_processed for s in result.streams.values()) == 2 * frames_in(gpu_clip)
    assert result.events_written > 0
    assert len(seen) == 2
    assert set(await registered(triton)) <= before
    assert not [p for p in job.pids if pid_alive(p)]
    assert not segments_of(set(job.pids))


async def test_a_killed_worker_fails_its_streams_and_its_regions_are_swept(
    settings: Settings, triton, gpu_clip
):
    before = set(await registered(triton))
    specs = [StreamSpec(id=f"cam-{i}", url=gpu_clip.as_uri(), max_fps=15.0) for i in range(1, 5)]
    job = WorkerJob(settings, specs, workers=2, report_s=0.1)
    run = asyncio.create_task(job.run())
    try:
        await workers_registered(triton, job)
        for _ in range(1200):  # every stream past its first batch (the regions come first)
            if len(job.statuses) == 4 and all(
                s.stats.frames_processed for s in job.statuses.values()
            ):
                break
            await asyncio.sleep(0.05)
        seen = {sid: s.stats.frames_processed for sid, s in job.statuses.items()}
        assert all(seen.values()), seen
        victim = job.pids[1]
        os.kill(victim, signal.SIGKILL)  # no chance to unregister its ring
        for _ in range(600):
            if all(job.statuses[s].state is StreamState.ERROR for s in ("cam-2", "cam-4")):
                break
            await asyncio.sleep(0.05)
        job.stop()
        result = await asyncio.wait_for(run, 120)
    finally:
        if not run.done():
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)

    for sid in ("cam-2", "cam-4"):  # worker 2's
        status = result.streams[sid]
        assert status.state is StreamState.ERROR, status.reason
        assert "worker 2" in status.reason, status.reason
        assert "code -9" in status.reason, status.reason
    for sid in ("cam-1", "cam-3"):
        status = result.streams[sid]
        assert status.state is StreamState.STOPPED, status.reason
        assert status.stats.frames_processed >= seen[sid] > 0
    assert set(await registered(triton)) <= before, "a worker's CUDA regions stayed registered"
    assert not [p for p in job.pids if pid_alive(p)]
    assert not segments_of(set(job.pids))


async def new_worker_pids(triton, before: set[str], parent: int) -> set[int]:
    """The pids, other than ``parent``, that registered regions not in ``before`` (two)."""
    names = await until_regions(
        triton, lambda names: len(owners(set(names) - before) - {parent}) >= 2
    )
    return owners(set(names) - before) - {parent}


async def test_sigterm_to_a_job_with_workers_unregisters_every_worker(
    settings, triton, gpu_clip, tmp_path
):
    before = set(await registered(triton))
    with child_run(settings, gpu_clip, tmp_path, "--workers", "2") as child:
        workers = await new_worker_pids(triton, before, child.pid)
        await asyncio.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=90)
    assert child.returncode == 128 + signal.SIGTERM, out
    assert set(await registered(triton)) <= before, out
    assert not [p for p in workers if pid_alive(p)]
    assert not segments_of(workers | {child.pid})


async def test_sigkill_to_a_job_with_workers_is_swept_at_the_next_start(
    settings, triton, gpu_clip, tmp_path
):
    before = set(await registered(triton))
    with child_run(settings, gpu_clip, tmp_path, "--workers", "2") as child:
        workers = await new_worker_pids(triton, before, child.pid)
        child.kill()  # SIGKILL: the workers die with it (PR_SET_PDEATHSIG), unregistering nothing
        child.wait(30)
    for _ in range(200):
        if not [p for p in workers if pid_alive(p)]:
            break
        await asyncio.sleep(0.05)
    assert not [p for p in workers if pid_alive(p)], "a worker outlived its killed parent"
    assert owners(set(await registered(triton)) - before) & workers
    async with connect(settings):  # what every Vigil start does with an external Triton
        pass
    assert set(await registered(triton)) <= before
    assert not segments_of(workers | {child.pid})
