"""Decoders in child processes: a crash or hang in FFmpeg stops one stream, not the service.

A malformed file or a misbehaving camera can make FFmpeg crash (a segfault or an abort takes
the whole process down) or spin forever. With ``sources.decoder: process`` every file and
network stream decodes in a child process of its own (:mod:`vigil.sources.decoder_process`),
which hands frames over a pipe. When the child dies, or sends nothing for the source's read
timeout, :class:`IsolatedSource` kills it and raises :class:`SourceError` with the reason: the
stream then reconnects (live) or ends ``error`` (file), like any other source failure; the
other streams never notice.

The pipe costs one copy of each frame each way through the kernel (measured in
``docs/reliability.md``); the child also decodes beside the service's interpreter, off its GIL.

Protocol (child to parent): messages of a 4-byte little-endian header length, a JSON header,
and for frames the RGB pixels (``bytes`` long) right after it. With a packet tap set, the child
also sends each encoded packet (``packet``, its bytes after the header) before decoding it, and
the stream's codec parameters (``codec``) before the first packet of each opening.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import numpy as np

from vigil.children import death_signal_prefix
from vigil.config import SourceSettings
from vigil.frame import Frame
from vigil.sources.base import Source, VideoInfo
from vigil.sources.decoder_process import HEADER
from vigil.sources.errors import SourceError
from vigil.sources.packets import CodecParams, EncodedPacket
from vigil.sources.urls import file_path, redact_url
from vigil.specs import NETWORK_SCHEMES, StreamSpec

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in Python 3.10+ on Linux only
PIPE_BYTES = 1 << 20  # the default /proc/sys/fs/pipe-max-size
#: Schemes whose decoders run in a child process (FFmpeg); test patterns are plain NumPy.
ISOLATED_SCHEMES = ("file", *NETWORK_SCHEMES)


class IsolatedSource(Source):
    """Another source's decoder, run in a child process.

    Args:
        spec: The stream (the child builds the real source from it).
        settings: Source timeouts (the child gets them too).
        is_live: Whether the wrapped source is live.
    """

    def __init__(self, spec: StreamSpec, settings: SourceSettings, is_live: bool) -> None:
        super().__init__(spec.id, spec.url)
        self.spec = spec
        self.settings = settings
        self.is_live = is_live
        self._proc: subprocess.Popen[bytes] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._decode_errors = 0
        self._params: CodecParams | None = None
        # Errors name the URL as the in-process sources do: a file's path, a camera's
        # URL without its credentials.
        self._shown = str(file_path(spec.url)) if spec.scheme == "file" else redact_url(spec.url)

    @property
    def decode_errors(self) -> int:
        """Packets the child's decoder skipped."""
        return self._decode_errors

    def open(self) -> VideoInfo:
        """Start the child and wait for it to open the source (``open_timeout_s`` + start-up).

        Raises:
            SourceError: the source could not be opened, or the child died or hung.
        """
        request = {
            "stream_id": self.stream_id,
            "url": self.url,
            "open_timeout_s": self.settings.open_timeout_s,
            "read_timeout_s": self.settings.read_timeout_s,
            "packets": self.packets is not None,
        }
        # The child dies with this decoder thread (and so with Vigil, even on SIGKILL).
        self._proc = subprocess.Popen(
            [
                *death_signal_prefix(),
                sys.executable,
                "-m",
                "vigil.sources.decoder_process",
                json.dumps(request),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches Vigil, which stops the children
        )
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        # A frame is megabytes; Linux pipes hold 64 KiB unless asked: fewer wake-ups per frame.
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        # Starting the interpreter and importing PyAV is part of opening.
        header = self._receive_video(self.settings.open_timeout_s + 20.0)[0]
        if header["type"] != "open":
            self._fail(f"decoder process sent {header['type']} before opening")
        return VideoInfo(header["width"], header["height"], header["fps"], header["frame_count"])

    def frames(self) -> Iterator[Frame]:
        """Frames from the child until the source ends.

        Raises:
            SourceError: the source failed, or the child died or sent nothing for
                ``read_timeout_s``.
        """
        while True:
            header, pixels = self._receive_video(self.settings.read_timeout_s)
            kind = header["type"]
            if kind == "end":
                self._decode_errors = header.get("decode_errors", self._decode_errors)
                return
            if kind != "frame":
                self._fail(f"decoder process sent {kind!r} after opening")
            self._decode_errors = header.get("decode_errors", self._decode_errors)
            image = np.frombuffer(pixels, np.uint8).reshape(header["shape"])
            yield Frame(
                self.stream_id,
                header["number"],
                header["pts_s"],
                header["capture_s"],
                header["decoded_s"],
                image,
            )

    def close(self) -> None:
        """Stop the child (it is killed: it holds nothing that needs an orderly end)."""
        proc, self._proc = self._proc, None
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    # --- the pipe ----------------------------------------------------------------------------

    def _receive_video(self, timeout_s: float) -> tuple[dict[str, Any], bytes]:
        """The next message that is not a packet; packets go to the tap on the way."""
        while True:
            header, payload = self._receive(timeout_s)
            kind = header["type"]
            if kind == "codec":
                self._params = CodecParams.from_dict(header)
            elif kind == "packet":
                if self.packets is not None and self._params is not None:
                    self.packets(
                        EncodedPacket(
                            payload,
                            header["pts"],
                            header["dts"],
                            header["duration"],
                            header["keyframe"],
                            header["arrival_s"],
                            self._params,
                        )
                    )
            else:
                return header, payload

    def _receive(self, timeout_s: float) -> tuple[dict[str, Any], bytes]:
        """One message: the header, and the payload of a frame (empty otherwise)."""
        size = HEADER.unpack(self._read(HEADER.size, timeout_s))[0]
        header = json.loads(self._read(size, timeout_s))
        if header["type"] == "error":
            raise SourceError(header.get("url", self._shown), header["reason"])
        payload = self._read(header["bytes"], timeout_s) if header.get("bytes") else b""
        return header, payload

    def _read(self, size: int, timeout_s: float) -> bytes:
        """Exactly ``size`` bytes; no progress for ``timeout_s`` means the decoder hung."""
        if self._proc is None or self._proc.stdout is None or self._selector is None:
            raise SourceError(self._shown, "source is closed")
        fd = self._proc.stdout.fileno()
        chunks, need = [], size
        deadline = time.monotonic() + timeout_s
        while need:
            if not self._selector.select(max(0.0, deadline - time.monotonic())):
                self._fail(f"decoder hung: nothing decoded for {timeout_s:g} s")
            try:
                chunk = os.read(fd, min(need, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                self._fail(self._death())
            chunks.append(chunk)
            need -= len(chunk)
            deadline = time.monotonic() + timeout_s
        return b"".join(chunks)

    def _death(self) -> str:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "decoder process closed its output"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"decoder process crashed ({signal.Signals(-code).name})"
        return f"decoder process exited with code {code}"

    def _fail(self, reason: str) -> NoReturn:
        self.close()
        raise SourceError(self._shown, reason)
