"""The sweep of orphaned Triton backend stubs: a stub whose Vigil is gone is killed within
the sweep's interval by any running Vigil; one whose Vigil lives is left alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from vigil.shm_segments import NAME_PREFIX
from vigil.triton_connection import sweep_orphaned_stubs

DEAD_PID = 99_999_999  # above any pid_max: never a live process


def fake_stub(tmp_path, owner_pid: int) -> subprocess.Popen[bytes]:
    """A process whose command line looks like a backend stub's: argv[0] ends with
    ``triton_python_backend_stub`` and argv[2] is the region named after its Vigil's pid."""
    link = tmp_path / f"{owner_pid}" / "triton_python_backend_stub"
    link.parent.mkdir()
    link.symlink_to(sys.executable)
    code = f"{NAME_PREFIX}{owner_pid}_pb_x = 1; import time; time.sleep(60)"
    return subprocess.Popen([str(link), "-c", code])


def test_a_stub_of_a_dead_vigil_is_killed_by_the_sweep_and_a_live_ones_is_not(tmp_path):
    orphan = fake_stub(tmp_path, DEAD_PID)
    owned = fake_stub(tmp_path, os.getpid())

    async def sweep_until_gone() -> float:
        started = time.monotonic()
        sweeper = asyncio.create_task(sweep_orphaned_stubs(0.1))
        try:
            # polls a child process: there is no event to wait on
            while orphan.poll() is None and time.monotonic() - started < 10:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
        return time.monotonic() - started

    try:
        took = asyncio.run(sweep_until_gone())
        assert orphan.poll() == -9, "the orphaned stub was not killed"
        assert took < 5
        assert owned.poll() is None, "a stub whose Vigil lives was killed"
    finally:
        for process in (orphan, owned):
            process.kill()
            process.wait()
