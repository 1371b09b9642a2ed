"""Helpers for tests that run `vigil` as a separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import SAMPLE_VIDEO
from tests.support.process import free_port
from vigil.shm_segments import SHM_DIR

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


def descendants(pid: int) -> dict[int, str]:
    """Live descendants of ``pid`` (children, their children, ...): pid → start time.

    The start time (``/proc/PID/stat`` field 22) tells a process from a later one that was
    given the same pid.
    """
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = started[child]
                todo.append(child)
    return found


def still_alive(processes: dict[int, str]) -> list[str]:
    """Those of ``processes`` (pid → start time, from :func:`descendants`) still running."""
    alive = []
    for pid, start in processes.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[19] == start and fields[0] != "Z":
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            alive.append(f"{pid}: {cmdline.decode(errors='replace')[:200]}")
    return alive


def assert_clean(run_dir: Path, pid: int) -> None:
    """No Triton (or backend stub) process of the run and no shm segment of ``pid`` remain."""
    assert wait_for(lambda: not processes_mentioning(str(run_dir)), 10), processes_mentioning(
        str(run_dir)
    )
    assert shm_segments_of(pid) == []


class ServiceProcess:
    """``vigil serve`` as a subprocess on a free port, with a config file under ``run_dir``.

    Use as a context manager: it starts the service, waits until ``/api/v1/ready`` answers
    200, and on exit stops it with SIGTERM (SIGKILL if it hangs) and checks it cleaned up
    (:meth:`assert_clean_exit`): the SIGTERM exit status, no child process (Triton, its
    backend stubs) left, no shared-memory segment of the service or its children left.
    The check is skipped when the block raised (the test already failed) or when the test
    stopped the service itself (e.g. ``stop(signal.SIGKILL)``, which cannot clean up).
    """

    def __init__(self, run_dir: Path, config: dict | None = None, **env: str) -> None:
        self.run_dir = run_dir
        self.port = free_port()
        config = dict(config or {})
        # Clients may add the sample video and clips the tests make (all under the temp dir);
        # test_file_roots.py narrows this to check the confinement itself.
        sources = {"file_roots": [str(SAMPLE_VIDEO.parent), tempfile.gettempdir()]}
        self.config = {
            "api": {"port": self.port},
            "events": {"jsonl_path": str(run_dir / "events.jsonl")},
            # State (outbox, model state, recordings) stays with the test, not in the home
            # directory where every run would see the last one's.
            "data_dir": str(run_dir / "data"),
            **config,
            "sources": {**sources, **config.get("sources", {})},
        }
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""
        #: The service's descendants (pid → start time) just before the last stop().
        self.children: dict[int, str] = {}
        #: How the last stop() ended the service: "sigterm" (or the signal's name) when it
        #: exited after that signal, "sigkill-after-timeout" when it hung, "already-exited".
        self.stopped_how = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_timeout_s: float = 120) -> ServiceProcess:
        """Launch the service and wait until it is ready."""
        self.launch()
        ok = wait_for(
            lambda: self.proc.poll() is not None or self.is_ready(), ready_timeout_s, 0.25
        )
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"vigil serve did not become ready:\n{self.log()}")
        return self

    def launch(self) -> ServiceProcess:
        """Start the service process and return at once (it is not ready yet)."""
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
        return self

    def is_ready(self) -> bool:
        """True once ``/api/v1/ready`` answers 200."""
        import httpx

        try:
            return httpx.get(f"{self.url}/api/v1/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        path = self.run_dir / "service.log"
        return path.read_text() if path.exists() else ""

    def stop(self, sig: int = 15, timeout_s: float = 60) -> int:
        """Stop the service; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.children = descendants(self.proc.pid)
            self.proc.send_signal(sig)
            self.stopped_how = signal.Signals(sig).name.lower()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.stopped_how = "sigkill-after-timeout"
        elif not self.stopped_how:
            self.stopped_how = "already-exited"
        self.output = self.log()
        return self.proc.returncode

    def assert_clean_exit(self) -> None:
        """After a SIGTERM :meth:`stop`: exit status 128 + SIGTERM, and neither a child
        process nor a shared-memory segment of the service or of its children left."""
        assert self.proc is not None
        assert self.stopped_how == "sigterm", (
            f"the service was not stopped by SIGTERM ({self.stopped_how}):\n{self.output[-3000:]}"
        )
        assert self.proc.returncode == 128 + signal.SIGTERM, (
            f"exit status {self.proc.returncode} after SIGTERM:\n{self.output[-3000:]}"
        )
        assert wait_for(lambda: not still_alive(self.children), 10), still_alive(self.children)
        assert_clean(self.run_dir, self.pid)
        for child in self.children:
            assert shm_segments_of(child) == [], f"child {child} left {shm_segments_of(child)}"

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        stopped_by_test = self.stopped_how != ""
        self.stop()
        if exc_type is None and not stopped_by_test:
            self.assert_clean_exit()
