"""Live network streams (RTSP, RTSPS, HTTP, HTTPS) decoded with PyAV (FFmpeg) on the CPU."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av

from vigil.frame import Frame
from vigil.sources.base import Source, VideoInfo, frame_from_av
from vigil.sources.errors import DecodeErrors, PacketDecodeError, SourceError
from vigil.sources.packets import CodecParams, packet_from_av
from vigil.sources.urls import redact_url
from vigil.specs import NETWORK_SCHEMES

SCHEMES = NETWORK_SCHEMES

# Demuxer options for RTSP, chosen by measurement against GStreamer's RTSP server
# (H.264/H.265/MJPEG, 10 fps, key frame every second):
# - TCP interleaving: no packet loss, and it passes NAT and firewalls.
# - No stream probing (analyzeduration 0, probesize 32): with FFmpeg's defaults, open()
#   reads about 2.7 s of video to guess the frame rate and then hands those frames out in
#   one burst, stale by up to 2.7 s. Without probing, open() takes 0.05 s and no frame is
#   stale; sizes still come from the SDP, or from the first decoded frame (see open()).
# - Left out: fflags=nobuffer only discards the packets read while opening, so the first
#   frame came up to one key-frame interval later (+1 s for H.265) and nothing was gained
#   after that; flags=low_delay made no difference (streams without B-frames).
RTSP_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32"}
# HTTP needs format detection (at least 2 KiB), so only the analysis is shortened.
HTTP_OPTIONS = {"analyzeduration": "500000"}


class NetworkSource(Source):
    """Frames of a live network camera or stream, as they arrive.

    The source is live: frames are read at the camera's pace, and any end of the stream is a
    failure. A camera that goes away (killed, network cut, stream closed by the server) ends
    FFmpeg's reading like an end of file; ``frames()`` turns that into
    ``SourceError(..., "stream ended (disconnected)")``. A camera that stops sending while the
    connection stays open makes ``frames()`` raise after ``read_timeout_s``. Reconnecting is
    the caller's job: close this source and open a new one.

    The URL may carry credentials (``rtsp://user:pass@host/...``); they are used to connect
    and never appear in errors (see :func:`~vigil.sources.urls.redact_url`).

    Threading: like every source, this one is driven from one thread. ``close()`` must not be
    called from another thread while ``frames()`` is blocked in a read: FFmpeg would free the
    connection under the reader (a crash, not an exception). To stop a blocked reader, stop
    iterating and let the read end by itself; it returns within ``read_timeout_s``.

    Args:
        stream_id: Id of the stream.
        url: ``rtsp://``, ``rtsps://``, ``http://`` or ``https://`` URL.
        open_timeout_s: Longest time ``open()`` may take to connect and decode a first frame.
        read_timeout_s: Longest wait for data once streaming, before ``frames()`` gives up.

    Raises:
        SourceError: the URL's scheme is not one of the above.
        ValueError: a timeout is not positive.
    """

    is_live = True

    def __init__(
        self,
        stream_id: str,
        url: str,
        *,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(stream_id, url)
        self.safe_url = redact_url(url)
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme not in SCHEMES:
            raise SourceError(
                self.safe_url, f"unsupported scheme {scheme or '(none)'!r}; use one of {SCHEMES}"
            )
        if open_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError(
                f"timeouts must be positive; got open_timeout_s={open_timeout_s}, "
                f"read_timeout_s={read_timeout_s}"
            )
        self.scheme = scheme
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._container: av.container.InputContainer | None = None
        self._packets: Iterator[av.Packet] | None = None
        self._pending: list[Any] = []
        self._params: CodecParams | None = None
        self._early: list[tuple[av.Packet, float]] = []
        self._errors = DecodeErrors()

    @property
    def decode_errors(self) -> int:
        """Packets that failed to decode and were skipped."""
        return self._errors.total

    def open(self) -> VideoInfo:
        """Connect, find the video stream and decode its first frame.

        The first frame is kept and is the first one ``frames()`` yields. Decoding it here
        proves the stream works and gives the true picture size even when the server does not
        announce it. That may wait for the next key frame.

        Returns:
            The picture size and, when the stream announces it, the frame rate.
            ``frame_count`` is always None.

        Raises:
            SourceError: the server refused or could not be reached ("cannot connect: ..."),
                nothing came within ``open_timeout_s`` ("timed out after N s"), or the stream
                has no video or no decodable frame. A server that answers and then stalls
                before the first frame fails after up to ``read_timeout_s`` more.
        """
        self.close()
        started = time.monotonic()
        options = RTSP_OPTIONS if self.scheme.startswith("rtsp") else HTTP_OPTIONS
        try:
            self._container = av.open(
                self.url, timeout=(self.open_timeout_s, self.read_timeout_s), options=options
            )
        except (av.FFmpegError, OSError) as e:
            # PyAV interrupts FFmpeg when open_timeout_s is up; FFmpeg's RTSP demuxer then
            # reports "Invalid data found" rather than an interruption, hence the clock.
            if isinstance(e, av.ExitError) or time.monotonic() - started >= self.open_timeout_s:
                reason = f"timed out after {self.open_timeout_s:g} s"
            else:
                reason = f"cannot connect: {self._describe(e)}"
            raise self._error(reason) from self._cause(e)
        try:
            if not self._container.streams.video:
                raise self._error("no video stream")
            stream = self._container.streams.video[0]
            # Frame threading ("AUTO", as for files) held 2 frames back on 2 cores (200 ms at
            # 10 fps); slice threading holds none.
            stream.thread_type = "SLICE"
            self._start_decoding(stream)
            self._packets = self._container.demux(stream)
            first = self._first_frame(started + self.open_timeout_s)
            width, height = self._size(first)
            if self.packets is not None:
                # Without probing, the sizes are known once a frame is decoded: the packets
                # read until then wait for them.
                params = CodecParams.of_stream(stream)
                self._params = dataclasses.replace(params, width=width, height=height)
                early, self._early = self._early, []
                for packet, arrival_s in early:
                    self.packets(packet_from_av(packet, self._params, arrival_s))
        except BaseException:
            self.close()
            raise
        rate = stream.average_rate
        return VideoInfo(
            width=width,
            height=height,
            fps=float(rate) if isinstance(rate, Fraction) and rate else None,
            frame_count=None,
        )

    def frames(self) -> Iterator[Frame]:
        """Decode frames as they arrive, until the stream fails.

        Raises:
            SourceError: the stream ended ("stream ended (disconnected)"), no data came for
                ``read_timeout_s``, reading failed, or too many packets in a row failed to
                decode.
        """
        if self._container is None:
            raise SourceError(self.safe_url, "source is not open")
        number = 0
        while True:
            for picture in self._decoded():
                yield self._frame(number, picture)
                number += 1

    def close(self) -> None:
        """Disconnect; idempotent. Must run on the thread that iterates ``frames()``."""
        self._packets = None
        self._pending = []
        self._params = None
        self._early = []
        if self._container is not None:
            container, self._container = self._container, None
            container.close()

    # --- decoding (the NVDEC subclass decodes on the GPU) ------------------------------------

    def _start_decoding(self, stream: av.video.stream.VideoStream) -> None:
        """Set up decoding of ``stream`` (PyAV decodes through the packets themselves)."""

    def _decode(self, packet: av.Packet) -> list[Any]:
        """The pictures one packet decodes to (none while the decoder fills).

        Raises:
            av.FFmpegError, PacketDecodeError: the packet does not decode (skipped, counted).
        """
        return list(packet.decode())

    def _drain(self, packet: av.Packet) -> list[Any]:
        """The pictures the decoder still holds when the stream ends (``packet`` is the
        demuxer's flush packet); none when draining fails, since the stream ends anyway."""
        try:
            return list(packet.decode())
        except av.FFmpegError:
            return []

    def _frame(self, number: int, picture: Any) -> Frame:
        return frame_from_av(self.stream_id, number, picture)

    def _size(self, picture: Any) -> tuple[int, int]:
        """A decoded picture's width and height."""
        return picture.width, picture.height

    # --- internals ------------------------------------------------------------------------

    def _first_frame(self, deadline: float) -> Any:
        while not self._pending:
            if time.monotonic() > deadline:
                raise self._error(
                    f"timed out after {self.open_timeout_s:g} s: connected, but no frame decoded"
                )
            self._pending = self._decode_next_packet()
        return self._pending[0]

    def _decoded(self) -> list[Any]:
        """The frames decoded so far but not handed out, or those of the next packet(s)."""
        if self._pending:
            frames, self._pending = self._pending, []
            return frames
        return self._decode_next_packet()

    def _decode_next_packet(self) -> list[Any]:
        """Read packets until one decodes to frames (possibly none, while a decoder fills)."""
        if self._packets is None:
            raise SourceError(self.safe_url, "source is not open")
        while True:
            started = time.monotonic()
            try:
                packet = next(self._packets)
            except StopIteration:
                raise self._error("stream ended (disconnected)") from None
            except av.FFmpegError as e:
                if isinstance(e, av.ExitError) or self._waited_too_long(started):
                    raise self._timed_out() from self._cause(e)
                raise self._error(f"read failed: {self._describe(e)}") from self._cause(e)
            if self._waited_too_long(started):
                # PyAV interrupted a read that waited read_timeout_s, but FFmpeg's RTSP
                # demuxer answers the first interruption with the frame it was still
                # assembling; only the next read fails. Without this check a frozen camera
                # is noticed after twice read_timeout_s.
                raise self._timed_out()
            if packet.size == 0:
                # The flush packet demux() adds at the end: the pictures the decoder still
                # holds (reordered or delayed ones), then the next read ends the stream.
                frames = self._drain(packet)
                if frames:
                    return frames
                continue
            if self.packets is not None:
                if self._params is None:
                    self._early.append((packet, time.time()))
                else:
                    self.packets(packet_from_av(packet, self._params, time.time()))
            try:
                frames = self._decode(packet)
            except (av.FFmpegError, PacketDecodeError) as e:
                if self._errors.failed():
                    raise self._error(self._errors.reason(self._describe(e))) from self._cause(e)
                continue
            self._errors.decoded()
            return frames

    def _waited_too_long(self, started: float) -> bool:
        return time.monotonic() - started >= self.read_timeout_s

    def _timed_out(self) -> SourceError:
        return self._error(f"timed out: no data for {self.read_timeout_s:g} s")

    def _error(self, reason: str) -> SourceError:
        return SourceError(self.safe_url, reason)

    def _cause(self, error: BaseException) -> BaseException | None:
        """``error`` to chain, or None when its message quotes a URL with credentials.

        FFmpeg's exceptions quote the URL they failed on; chained, they would print the
        credentials in every traceback. The reason already carries their message.
        """
        return error if self.safe_url == self.url else None

    def _describe(self, error: BaseException) -> str:
        """FFmpeg's message without the URL it quotes (which may hold credentials)."""
        text = getattr(error, "strerror", None) or str(error)
        return text.replace(self.url, self.safe_url)
