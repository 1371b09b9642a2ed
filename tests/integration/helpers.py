"""Helpers for tests that run `vigil` as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import SAMPLE_VIDEO
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


def start_run_no_recover(video: Path, events: Path, run_dir: Path) -> subprocess.Popen[str]:
    """``vigil run`` on one file with the exit-code contract of ``--no-recover`` (Triton's
    death stops the run with code 2), events to ``events``, no progress bars."""
    args = ["run", "--source", str(video), "--out", str(events), "--no-progress", "--no-recover"]
    return start_vigil(args, run_dir)


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


class ServiceProcess:
    """``vigil serve`` as a subprocess on a free port, with a config file under ``run_dir``.

    Use as a context manager: it starts the service, waits until ``/api/v1/ready`` answers
    200, and on exit stops it with SIGTERM (SIGKILL if it hangs) and checks it cleaned up.
    """

    def __init__(self, run_dir: Path, config: dict | None = None, **env: str) -> None:
        import socket

        self.run_dir = run_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = dict(config or {})
        # Clients may add the sample video and clips the tests make (all under the temp dir);
        # test_file_roots.py narrows this to check the confinement itself.
        sources = {"file_roots": [str(SAMPLE_VIDEO.parent), tempfile.gettempdir()]}
        self.config = {
            "api": {"port": self.port},
            "events": {"jsonl_path": str(run_dir / "events.jsonl")},
            **config,
            "sources": {**sources, **config.get("sources", {})},
        }
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_timeout_s: float = 120) -> ServiceProcess:
        import httpx
        import yaml

        path = self.run_dir / "vigil.yaml"
        path.write_text(yaml.safe_dump(self.config))
        log = (self.run_dir / "service.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "serve", "--config", str(path)],
            cwd=ROOT,
            env=vigil_env(self.run_dir, **self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def ready() -> bool:
            if self.proc.poll() is not None:
                return True
            try:
                return httpx.get(f"{self.url}/api/v1/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        ok = wait_for(ready, ready_timeout_s, 0.25)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"vigil serve did not become ready:\n{self.log()}")
        return self

    def log(self) -> str:
        path = self.run_dir / "service.log"
        return path.read_text() if path.exists() else ""

    def stop(self, sig: int = 15, timeout_s: float = 60) -> int:
        """Stop the service; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output = self.log()
        return self.proc.returncode

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
