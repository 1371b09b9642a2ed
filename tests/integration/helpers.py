"""Helpers for tests that run `vigil` as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from vigil.infer.shm import SHM_DIR

ROOT = Path(__file__).resolve().parents[2]


def vigil_env(run_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a `vigil` subprocess whose Triton files live under ``run_dir``."""
    env = dict(os.environ)
    env.update({"VIGIL_RUN_DIR": str(run_dir), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    env.update(extra)
    return env


def start_vigil(args: list[str], run_dir: Path, **env: str) -> subprocess.Popen[str]:
    """Start ``vigil ARGS`` in the background (stdout+stderr captured as text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", *args],
        cwd=ROOT,
        env=vigil_env(run_dir, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_vigil(args: list[str], run_dir: Path, timeout_s: float = 300, **env: str):
    """Run ``vigil ARGS`` to completion; returns (exit code, output, pid)."""
    proc = start_vigil(args, run_dir, **env)
    out, _ = proc.communicate(timeout=timeout_s)
    return proc.returncode, out, proc.pid


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (e.g. a run directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def shm_segments_of(pid: int) -> list[str]:
    """Vigil shared-memory segments created by process ``pid`` (ring and Triton backend)."""
    return sorted(p.name for p in SHM_DIR.glob(f"vigil_{pid}_*"))


def wait_for(predicate, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate`` until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def assert_clean(run_dir: Path, pid: int) -> None:
    """No Triton (or backend stub) process of the run and no shm segment of ``pid`` remain."""
    assert wait_for(lambda: not processes_mentioning(str(run_dir)), 10), processes_mentioning(
        str(run_dir)
    )
    assert shm_segments_of(pid) == []
