"""Start, watch and stop an embedded Triton Inference Server process.

Embedded mode runs the real Triton 2.51 binary (extracted from PyPI ``nvidia-pytriton`` by
``make triton``) as a child process on free ports, in explicit model-control mode. The
process is ours to clean up on every exit path:

* normal stop and exceptions: :meth:`EmbeddedTriton.stop` (SIGTERM, then SIGKILL);
* Vigil killed with SIGKILL: the child gets SIGKILL too (``PR_SET_PDEATHSIG``);
* Triton dying under us: :meth:`EmbeddedTriton.check_alive` raises with the log tail, and
  its Python-backend shared-memory regions (named with a per-process prefix) are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from vigil.children import death_signal_prefix
from vigil.shm_segments import NAME_PREFIX, pid_alive, remove_segments_with_prefix
from vigil.triton.errors import (
    TritonDiedError,
    TritonNotInstalledError,
    TritonStartError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TritonPorts:
    """The three ports a Triton server listens on."""

    http: int
    grpc: int
    metrics: int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist).

    When Triton refused its command line it prints its long usage text after the one line
    that says why; that line is put first, or the tail would be usage text only.
    """
    try:
        with path.open("r", errors="replace") as f:
            last = list(deque(f, maxlen=lines))
    except FileNotFoundError:
        return ""
    if any(line.startswith(("Usage:", "  --")) for line in last):
        with path.open("r", errors="replace") as f:
            before_usage: deque[str] = deque(maxlen=2)
            for line in f:
                if line.startswith("Usage:"):
                    last = [*before_usage, "[...usage text...]\n", *last[-5:]]
                    break
                before_usage.append(line)
    return "".join(last).rstrip()


class EmbeddedTriton:
    """A Triton server child process.

    Args:
        server_dir: Directory laid out by ``scripts/install_triton.py``.
        model_repository: The repository Triton serves (already materialized).
        log_path: Triton's log file.
        ports: Fixed ports, or None to pick free ones.
        shm_prefix: Prefix of this server's Python-backend shared-memory regions; they are
            removed when the server stops or dies.
        cuda_memory_pool_bytes: CUDA memory pool for GPU tensors going to and from
            Python-backend models (0: Triton's default, for CPU-only use).
        device_id: The GPU the pool is on.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        server_dir: Path,
        model_repository: Path,
        log_path: Path,
        *,
        ports: TritonPorts | None = None,
        shm_prefix: str,
        startup_timeout_s: float = 120.0,
        cuda_memory_pool_bytes: int = 0,
        device_id: int = 0,
    ) -> None:
        self.server_dir = server_dir
        self.model_repository = model_repository
        self.log_path = log_path
        self.ports = ports or TritonPorts(free_port(), free_port(), free_port())
        self.fixed_ports = ports is not None
        self.load_at_start: list[str] = []  # models the server loads before it is ready
        self.shm_prefix = shm_prefix
        self.startup_timeout_s = startup_timeout_s
        self.cuda_memory_pool_bytes = cuda_memory_pool_bytes
        self.device_id = device_id
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = False

    @property
    def grpc_url(self) -> str:
        """``host:port`` for tritonclient.grpc."""
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the HTTP endpoint."""
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def metrics_url(self) -> str:
        """Prometheus metrics endpoint of the server."""
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The tritonserver command line."""
        gpu = (
            [f"--cuda-memory-pool-byte-size={self.device_id}:{self.cuda_memory_pool_bytes}"]
            if self.cuda_memory_pool_bytes
            else []
        )
        return [
            str(self.server_dir / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={self.server_dir / 'backends'}",
            f"--cache-directory={self.server_dir / 'caches'}",
            "--model-control-mode=explicit",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--allow-cpu-metrics=false",
            "--allow-gpu-metrics=false",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--log-verbose=0",
            "--exit-timeout-secs=5",
            *gpu,
            *(f"--load-model={name}" for name in self.load_at_start),
        ]

    def start(self) -> None:
        """Start the server and wait until it is ready.

        Raises:
            TritonNotInstalledError: ``server_dir`` has no tritonserver binary.
            TritonStartError: the server exited or did not become ready in time; the
                message carries the tail of its log.
        """
        self._spawn()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    async def restart(self, new_ports: bool = False, models: list[str] | None = None) -> None:
        """Stop what is left of the server and start a new one; ready when this returns.

        Call it from the thread that started the server (the event loop's): the new server's
        death signal is tied to that thread. Readiness is awaited without blocking the loop.

        Args:
            new_ports: Pick new free ports (the old ones may be taken by now).
            models: Models the new server loads while it starts (it is ready once they are).

        Raises:
            TritonStartError: the new server exited or was not ready in time (log tail).
        """
        self.stop(timeout_s=5.0)
        if new_ports:
            self.ports = TritonPorts(free_port(), free_port(), free_port())
        self.load_at_start = list(models or [])
        self._spawn()
        try:
            deadline = time.monotonic() + self.startup_timeout_s
            while not await asyncio.to_thread(self._ready_once):
                self._raise_if_late(deadline)
                await asyncio.sleep(0.1)
        except BaseException:
            self.stop(timeout_s=5.0)
            raise

    def _spawn(self) -> None:
        binary = self.server_dir / "bin" / "tritonserver"
        if not binary.exists():
            raise TritonNotInstalledError(
                f"Triton server not found at {binary}; run `make triton` (or set "
                "VIGIL_TRITON__SERVER_DIR), or use an external server with --triton-url"
            )
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(self.server_dir / "lib"), env.get("LD_LIBRARY_PATH", "")) if p
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting Triton (grpc %s, log %s)", self.grpc_url, self.log_path)
        self._stopping = False
        with self.log_path.open("ab") as log_file:
            # Triton gets SIGKILL if Vigil dies (PR_SET_PDEATHSIG, set by util-linux's
            # setpriv rather than a Python preexec_fn: no Python code runs between fork and
            # exec, which gRPC's fork handlers do not survive). The death signal fires when
            # the *thread* that started it exits: start from the caller's long-lived thread.
            self._proc = subprocess.Popen(
                [*death_signal_prefix(), *self.command()],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C reaches Vigil, which stops Triton in order
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._ready_once():
            self._raise_if_late(deadline)
            time.sleep(0.1)

    def _raise_if_late(self, deadline: float) -> None:
        """TritonStartError with the log's tail once the start-up ``deadline`` has passed."""
        if time.monotonic() >= deadline:
            raise TritonStartError(
                f"Triton was not ready after {self.startup_timeout_s:.0f} s",
                tail(self.log_path),
                str(self.log_path),
            )

    def _ready_once(self) -> bool:
        """Whether the server is ready now; raises if it exited."""
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise TritonStartError(
                f"Triton exited during start-up with code {code}",
                tail(self.log_path),
                str(self.log_path),
            )
        if _http_ok(f"{self.http_url}/v2/health/ready"):
            log.info("Triton ready (pid %d)", self._proc.pid)
            return True
        return False

    def check_alive(self) -> None:
        """Raise :class:`TritonDiedError` (with the log tail) if the server has exited."""
        if self._proc is None or self._stopping:
            return
        code = self._proc.poll()
        if code is not None:
            self._kill_process_group()
            self._cleanup_backend_shm()
            raise TritonDiedError(
                f"Triton (pid {self._proc.pid}) exited unexpectedly with code {code}",
                tail(self.log_path),
                str(self.log_path),
            )

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout_s``); idempotent."""
        proc = self._proc
        if proc is None:
            return
        self._stopping = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("Triton did not stop in %.0f s; killing it", timeout_s)
                proc.kill()
                proc.wait()
        self._kill_process_group()
        self._proc = None
        self._cleanup_backend_shm()
        log.info("Triton stopped")

    def _kill_process_group(self) -> None:
        """Kill what is left of Triton's process group: its Python-backend stubs.

        The stubs do not exit when the server is killed; they share its process group
        (Triton runs in a session of its own), so one ``killpg`` finds them all.
        """
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def _cleanup_backend_shm(self) -> None:
        removed = remove_segments_with_prefix(self.shm_prefix)
        if removed:
            log.info("removed %d shared-memory regions left by Triton's Python backend", removed)

    def __enter__(self) -> EmbeddedTriton:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reap_orphaned_backend_stubs() -> list[int]:
    """Kill Python-backend stubs left by an embedded Triton whose Vigil process is gone.

    When Vigil is killed with SIGKILL its Triton dies too (``PR_SET_PDEATHSIG``), but the
    backend stubs live on. Each stub's command line names its shared-memory region, which
    starts with ``vigil_<pid of the Vigil that started it>_``; stubs whose Vigil no longer
    exists are killed. Returns their pids.
    """
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) < 3 or not argv[0].endswith(b"triton_python_backend_stub"):
            continue
        owner = argv[2].decode(errors="replace").removeprefix(NAME_PREFIX).split("_", 1)[0]
        if (
            argv[2].startswith(NAME_PREFIX.encode())
            and owner.isdigit()
            and not pid_alive(int(owner))
        ):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    if killed:
        log.warning("killed %d orphaned Triton backend stubs: %s", len(killed), killed)
    return killed
