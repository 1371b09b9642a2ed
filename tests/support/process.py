"""One test server in a subprocess: start, stop, kill, pause, and nothing left behind.

Shared by the RTSP camera (:mod:`tests.support.rtsp`) and the Kafka broker and TLS
terminator (:mod:`tests.support.kafka`). Servers die with the process (thread) that started
them (``PR_SET_PDEATHSIG``), so a crashed test run leaves none behind, even a paused one.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    # Runs in the child before exec: SIGKILL it when the process that started it dies, so
    # a crashed test run leaves no server behind, even a stopped (SIGSTOP) one.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def all_threads_stopped(pid: int) -> bool:
    """True when every live thread of ``pid`` is in state T (stopped), per /proc."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # a thread that just exited
        if state not in ("T", "t", "Z", "X"):
            return False
    return True


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"


class ServerProcess:
    """Start/stop/kill/pause of one server subprocess whose stderr goes to a temp file."""

    name = "server"
    stop_timeout_s = 5.0
    #: How to install what is missing, for error messages.
    install_hint = "run `make test`"

    def __init__(self, start_timeout_s: float) -> None:
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when stopped."""
        return self._process.pid if self.running else None  # type: ignore[union-attr]

    @property
    def running(self) -> bool:
        """True while the server process exists (even paused)."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; idempotent, works while paused.

        Args:
            timeout_s: Grace period; None means the class's ``stop_timeout_s``.
        """
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.send_signal(signal.SIGCONT)  # a paused server handles SIGTERM only now
            try:
                process.wait(timeout=self.stop_timeout_s if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL, like a crash or a lost machine; idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._reap()

    def pause(self, timeout_s: float = 2.0) -> None:
        """SIGSTOP: open connections stay open and nothing answers.

        Returns once every thread of the server is stopped: the signal alone returns
        before a server busy on another core has stopped, and it may still answer a request.

        Raises:
            RuntimeError: not running, or not all threads stopped within ``timeout_s``.
        """
        if self._process is None or not self.running:
            raise RuntimeError(f"the {self.name} is not running")
        self._process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + timeout_s
        while not all_threads_stopped(self._process.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not stop within {timeout_s:g} s")
            time.sleep(0.005)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`; no-op when not running."""
        if self._process is not None and self.running:
            self._process.send_signal(signal.SIGCONT)

    def stderr_text(self) -> str:
        """What the server wrote to stderr since its last start (for failure messages)."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    # --- internals ------------------------------------------------------------------------

    def _spawn(
        self, command: list[str], env: dict[str, str] | None = None, *, pipes: bool = False
    ) -> None:
        """Start ``command``; stderr (and stdout unless ``pipes``) go to a temp file.

        With ``pipes``, stdin and stdout are pipes: the server can print a READY line, and
        closing stdin tells it to exit.
        """
        self._reap()
        # Kept open across calls (closed by _reap), read back for error messages.
        self._stderr = tempfile.TemporaryFile(prefix=f"{self.name}-", suffix=".log")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else self._stderr,
                stderr=self._stderr,
                env=env,
                preexec_fn=die_with_parent,
            )
        except OSError as e:
            raise RuntimeError(f"cannot run {command[0]}: {e}; {self.install_hint}") from e

    def _wait_until(self, ready: Callable[[], str | None], what: str) -> None:
        """Poll ``ready()`` (None when ready, else why not) until ``start_timeout_s``.

        Kills the process and raises RuntimeError with its log on failure.
        """
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.start_timeout_s
        try:
            while True:
                code = process.poll()
                if code is not None:
                    raise RuntimeError(
                        f"{self.name} exited with status {code} before it could {what}; "
                        f"output:\n{self._log_tail()}"
                    )
                why = ready()
                if why is None:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} did not {what} within {self.start_timeout_s:g} s "
                        f"(last: {why}); output:\n{self._log_tail()}"
                    )
                time.sleep(0.05)
        except BaseException:
            self.kill()
            raise

    def _log_tail(self) -> str:
        return tail(self.stderr_text())

    def _reap(self) -> None:
        """Forget a process that has exited and close its pipes and log."""
        process = self._process
        if process is not None and process.poll() is not None:
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None
        if self._process is None and self._stderr is not None:
            self._stderr.close()
            self._stderr = None
