"""Real RTSP cameras for tests: GStreamer's RTSP server in a subprocess.

The server (``tests/support/rtsp_server.py``) runs under Debian's ``/usr/bin/python3``,
which has the GObject bindings; the venv running pytest does not. ``make rtsp-deps``
installs the Debian packages.

Example::

    reason = rtsp_server_available()
    if reason:
        pytest.fail(reason)
    with RtspCamera() as camera:
        source = NetworkSource("cam", camera.url)
        ...
        camera.kill()      # a crash
        camera.restart()   # same port, same URL
"""

from __future__ import annotations

import functools
import os
import selectors
import subprocess
import time
from pathlib import Path

from tests.support.process import HOST, ServerProcess

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
MOUNT = "/cam"
# GStreamer elements the server uses; a missing one means a missing Debian package.
REQUIRED_ELEMENTS = (
    "videotestsrc",
    "x264enc",
    "x265enc",
    "jpegenc",
    "rtph264pay",
    "rtph265pay",
    "rtpjpegpay",
    "decodebin",
    "intervideosink",
    "intervideosrc",
)
_PROBE = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in {elements!r} if Gst.ElementFactory.find(e) is None]
print(" ".join(missing))
"""


@functools.cache
def rtsp_server_available() -> str | None:
    """Why the RTSP test server cannot run here, or None if it can.

    Checks that ``/usr/bin/python3`` imports ``gi`` with GStreamer and GstRtspServer, and
    that the encoders and payloaders the server uses are installed.
    """
    hint = "install the Debian packages with `make rtsp-deps`"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing; {hint}"
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", _PROBE.format(elements=REQUIRED_ELEMENTS)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{SYSTEM_PYTHON} took over 30 s to import GStreamer"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"{SYSTEM_PYTHON} cannot import gi + GstRtspServer ({last}); {hint}"
    missing = probe.stdout.strip()
    if missing:
        return f"GStreamer elements missing: {missing}; {hint}"
    return None


class RtspCamera(ServerProcess):
    """One RTSP camera served on ``rtsp://127.0.0.1:PORT/cam``.

    The first :meth:`start` takes a free port (unless ``port`` is given); later starts reuse
    it, so :attr:`url` stays valid across :meth:`kill` and :meth:`restart`.

    The server also dies with the process (thread) that started it, and when its stdin is
    closed, so a test run that crashes leaves nothing behind.

    Args:
        port: TCP port; None picks a free one on first start.
        source: ``"testsrc"`` (a moving ball) or the path of a video file, played in a loop.
        fps: Frames per second served.
        width: Picture width.
        height: Picture height.
        codec: ``"h264"``, ``"h265"`` or ``"mjpeg"``.
        start_timeout_s: Longest wait for the server to say READY.
    """

    name = "RTSP server"
    install_hint = "install the Debian packages with `make rtsp-deps`"

    def __init__(
        self,
        port: int | None = None,
        source: str | Path = "testsrc",
        fps: int = 10,
        width: int = 640,
        height: int = 360,
        *,
        codec: str = "h264",
        start_timeout_s: float = 20.0,
    ) -> None:
        self.port = port
        self.source = str(source)
        self.fps = fps
        self.width = width
        self.height = height
        self.codec = codec
        super().__init__(start_timeout_s)

    @property
    def url(self) -> str:
        """``rtsp://127.0.0.1:PORT/cam``; known once the camera has started."""
        if self.port is None:
            raise RuntimeError("the camera has no port before its first start()")
        return f"rtsp://{HOST}:{self.port}{MOUNT}"

    def start(self) -> None:
        """Start the server and wait until it listens; no-op if it runs.

        Raises:
            RuntimeError: it exited or did not say READY within ``start_timeout_s``; the
                message holds its stderr.
        """
        if self.running:
            return
        command = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            "--port",
            str(self.port or 0),
            "--mount",
            MOUNT,
            "--source",
            self.source,
            "--codec",
            self.codec,
            "--width",
            str(self.width),
            "--height",
            str(self.height),
            "--fps",
            str(self.fps),
            "--exit-on-stdin-eof",
        ]
        self._spawn(command, pipes=True)
        assert self._process is not None
        try:
            self.port = self._wait_ready(self._process)
        except BaseException:
            self.kill()
            raise

    def restart(self) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the connection stays open and nothing more is sent."""
        self.pause()

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`; no-op when not running."""
        self.resume()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RtspCamera(port={self.port}, source={self.source!r}, {state})"

    # --- internals ------------------------------------------------------------------------

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> int:
        """The port from the server's ``READY <port>`` line."""
        stdout = process.stdout
        assert stdout is not None
        deadline = time.monotonic() + self.start_timeout_s
        buffered = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while True:
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    raise RuntimeError(
                        f"RTSP server did not say READY within {self.start_timeout_s:g} s; "
                        f"stderr:\n{self.stderr_text()}"
                    )
                if not selector.select(timeout=left_s):
                    continue
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    code = process.wait()
                    raise RuntimeError(
                        f"RTSP server exited with status {code} before READY; "
                        f"stderr:\n{self.stderr_text()}"
                    )
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    if line.startswith(b"READY "):
                        return int(line.split()[1])
