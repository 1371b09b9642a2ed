"""Video files decoded by the GPU's NVDEC engines (PyPI ``pynvvideocodec``); frames stay on
the GPU.

PyNvVideoCodec demuxes with its own FFmpeg and decodes with NVDEC into device memory. By
default its ``ThreadedDecoder`` does the demuxing and decoding in a native thread of its own
(no Python, no GIL), a few frames ahead; this source only fetches finished pictures, a few at
a time. They are copied (device to device, one copy per fetch) into a tensor of Vigil's own,
because the decoder reuses its surfaces, and handed on as NV12 (or RGB) CUDA tensors; the GPU
preprocessor converts and resizes them in the same pass that writes the model's input.

A file NVDEC cannot decode (a codec the chip lacks, a corrupt header) is decoded on the CPU
instead, with one warning naming the stream. PyNvVideoCodec and torch are imported when a
source opens, never at import time.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from vigil.frame import Frame, PixelFormat
from vigil.sources.base import Source, VideoInfo
from vigil.sources.errors import DecodeErrors, SourceError
from vigil.sources.nvdec_packets import NvdecPacketTap
from vigil.sources.nvdec_pool import DecoderPool
from vigil.sources.urls import file_path

log = logging.getLogger(__name__)


class NvdecUnavailableError(RuntimeError):
    """PyNvVideoCodec cannot be used on this host (the message says why)."""


@functools.cache
def load_pynvvideocodec() -> ModuleType:
    """Import PyNvVideoCodec once.

    Raises:
        NvdecUnavailableError: not installed, or the driver's video libraries are missing.
    """
    try:
        import PyNvVideoCodec
    except Exception as e:  # its import raises RuntimeError when driver libraries are missing
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NvdecUnavailableError(f"PyNvVideoCodec cannot be used: {reason}") from e
    return PyNvVideoCodec


def nvdec_unavailable_reason() -> str | None:
    """None when NVDEC decoding can be used here, otherwise why not."""
    try:
        load_pynvvideocodec()
    except NvdecUnavailableError as e:
        return str(e)
    return None


class NvdecFileSource(Source):
    """Frames of a local video file, decoded by NVDEC into GPU memory.

    Args:
        stream_id: Id of the stream.
        path: Path of the file (a ``file://`` URL is accepted too).
        device_id: CUDA device that decodes and holds the frames.
        threaded: Decode in PyNvVideoCodec's native thread (``ThreadedDecoder``) and fetch
            frames in small batches; False decodes packet by packet from Python (demuxer +
            decoder). None: :attr:`threaded_default`.
        pool: Where a threaded decoder comes from if one is idle there, and goes back to once
            the file has been decoded to its end (None: a new session each time).
    """

    is_live = False
    #: Frames the native decoder may run ahead of the pipeline (threaded mode).
    buffer_frames = 16
    #: Frames fetched per call (threaded mode).
    fetch_frames = 8
    #: Mode of sources made without an explicit ``threaded``. Fixed, not chosen per host:
    #: measured on an H200 (docs/benchmarks.md, 2026-12-04) the whole pipeline was faster
    #: threaded in each of 3 interleaved pairs of runs (0.44–0.47 of the model's rate against
    #: 0.34–0.36 plain), while decode-only runs tie and so cannot choose.
    threaded_default = True

    def __init__(
        self,
        stream_id: str,
        path: str | Path,
        device_id: int = 0,
        *,
        threaded: bool | None = None,
        pool: DecoderPool | None = None,
    ) -> None:
        text = str(path)
        super().__init__(stream_id, text)
        self.path = file_path(text) if text.startswith("file:") else Path(text)
        self.device_id = device_id
        self.threaded = self.threaded_default if threaded is None else threaded
        self.pool = pool
        self._reusable = False  # the threaded decoder reached the file's end without an error
        self._threaded: Any = None
        self._demuxer: Any = None
        self._decoder: Any = None
        self._stream: Any = None
        self._stream_handle = 0
        self._fps: float | None = None
        self._cpu: Source | None = None
        self._tap: NvdecPacketTap | None = None
        self._errors = DecodeErrors()

    @property
    def on_gpu(self) -> bool:
        """False once the file turned out to need CPU decoding."""
        return self._cpu is None

    @property
    def decode_errors(self) -> int:
        """Packets that failed to decode and were skipped."""
        return self._cpu.decode_errors if self._cpu else self._errors.total

    def open(self) -> VideoInfo:
        """Open the file with NVDEC (or, if NVDEC cannot decode it, on the CPU).

        Raises:
            SourceError: the file is missing or unreadable.
        """
        if not self.path.is_file():
            raise SourceError(str(self.path), "no such file")
        try:
            nvc = load_pynvvideocodec()
            import torch

            self._stream = torch.cuda.Stream(torch.device("cuda", self.device_id))
            self._stream_handle = self._stream.cuda_stream
            if self.threaded:
                width, height, fps = self._open_threaded(nvc)
            else:
                width, height, fps = self._open_plain(nvc)
            if self.packets is not None:
                self._open_tap(nvc, fps)
        except Exception as e:
            self._release()
            return self._open_on_cpu(f"{type(e).__name__}: {e}")
        self._fps = fps if fps > 0 else None
        return VideoInfo(width=width, height=height, fps=self._fps, frame_count=None)

    def frames(self) -> Iterator[Frame]:
        """Decode the file to its end.

        Raises:
            SourceError: too many consecutive packets failed to decode, or nothing decoded.
        """
        if self._cpu is not None:
            yield from self._cpu.frames()
            return
        if self._threaded is not None:
            yield from self._threaded_frames()
            return
        if self._demuxer is None:
            raise SourceError(str(self.path), "source is not open")
        number = 0
        for packet in self._demuxer:
            if self._tap is not None:
                self._tap_safely(self._tap.tap, packet)
            try:
                decoded = self._decoder.Decode(packet)
            except Exception as e:
                if self._errors.failed():
                    raise SourceError(str(self.path), self._errors.reason(str(e))) from e
                continue
            self._errors.decoded()
            for picture in decoded:
                yield self._frame(number, picture)
                number += 1
        if number == 0:
            raise SourceError(str(self.path), "no frame could be decoded")

    def close(self) -> None:
        """Release the decoder; idempotent."""
        self._release()
        if self._cpu is not None:
            self._cpu.close()

    # --- internals ------------------------------------------------------------------------

    def _open_threaded(self, nvc: ModuleType) -> tuple[int, int, float]:
        # not `or`: a ThreadedDecoder has __len__ (its frame count), so one is falsy when the
        # container does not say how many frames it holds
        self._threaded = self._reused_decoder()
        if self._threaded is None:
            self._threaded = nvc.ThreadedDecoder(
                str(self.path),
                self.buffer_frames,
                gpu_id=self.device_id,
                use_device_memory=True,
                output_color_type=nvc.OutputColorType.NATIVE,
            )
        meta = self._threaded.get_stream_metadata()
        width, height = getattr(meta, "width", 0), getattr(meta, "height", 0)
        if not (width and height):  # older metadata without sizes: ask the demuxer
            demuxer = nvc.CreateDemuxer(filename=str(self.path))
            width, height = demuxer.Width(), demuxer.Height()
        return int(width), int(height), float(getattr(meta, "average_fps", 0) or 0)

    def _reused_decoder(self) -> Any | None:
        """An idle decoder of the pool pointed at this file, or None."""
        decoder = self.pool.take(self.device_id) if self.pool is not None else None
        if decoder is None:
            return None
        try:
            decoder.reconfigure_decoder(str(self.path))
        except Exception as e:  # a decoder that cannot switch is ended, not reused
            log.debug("stream %s: idle NVDEC decoder not reusable (%s)", self.stream_id, e)
            with contextlib.suppress(Exception):
                decoder.end()
            return None
        return decoder

    def _open_plain(self, nvc: ModuleType) -> tuple[int, int, float]:
        self._demuxer = nvc.CreateDemuxer(filename=str(self.path))
        self._decoder = nvc.CreateDecoder(
            gpuid=self.device_id,
            codec=self._demuxer.GetNvCodecId(),
            cudacontext=0,
            cudastream=0,
            usedevicememory=True,
        )
        demuxer = self._demuxer
        return int(demuxer.Width()), int(demuxer.Height()), float(demuxer.FrameRate())

    def _threaded_frames(self) -> Iterator[Frame]:
        import torch

        number = 0
        while True:
            try:
                pictures = self._threaded.get_batch_frames(self.fetch_frames)
            except Exception as e:
                raise SourceError(str(self.path), f"decoding failed: {e}") from e
            if not pictures:  # the end; a decoder that decoded nothing is not trusted again
                self._reusable = number > 0
                break
            if self._tap is not None:  # the recorder gets each frame's packet before it
                self._tap_safely(self._tap.catch_up, number + len(pictures))
            with torch.cuda.stream(self._stream):
                views = [self._tensor(p) for p in pictures]
                try:  # one copy for the whole fetch: the decoder reuses its buffers
                    images = list(torch.stack(views))
                except RuntimeError:  # pictures of different sizes (a resolution change)
                    images = [v.clone() for v in views]
                self._stream.synchronize()
            # Let go of the decoder's pictures (and the DLPack views of them) before the next
            # fetch: that fetch recycles their buffers, and a view released after it would
            # hand freed memory back to the decoder (seen as a crash with two streams).
            del views, pictures
            for image in images:
                yield self._wrap(number, image)
                number += 1
        if number == 0:
            raise SourceError(str(self.path), "no frame could be decoded")

    def _tensor(self, picture: Any) -> Any:
        return picture_view(picture, self._stream_handle)

    def _wrap(self, number: int, image: Any) -> Frame:
        pts_s = number / self._fps if self._fps else None
        return gpu_frame(self.stream_id, number, pts_s, image)

    def _frame(self, number: int, picture: Any) -> Frame:
        import torch

        with torch.cuda.stream(self._stream):
            # the decoder reuses its surfaces: copy (device to device) before handing on
            image = self._tensor(picture).clone()
            self._stream.synchronize()
        return self._wrap(number, image)

    def _open_on_cpu(self, reason: str) -> VideoInfo:
        from vigil.sources.file import FileSource

        log.warning(
            "stream %s: NVDEC cannot decode %s (%s); decoding it on the CPU",
            self.stream_id,
            self.path.name,
            reason,
        )
        self._cpu = FileSource(self.stream_id, self.path)
        self._cpu.packets = self.packets
        return self._cpu.open()

    def _open_tap(self, nvc: ModuleType, fps: float) -> None:
        """The packet tap: the plain decoder's own packets, or (threaded) a second demuxer's."""
        assert self.packets is not None
        demuxer = (
            self._demuxer
            if self._demuxer is not None
            else nvc.CreateDemuxer(filename=str(self.path))
        )
        self._tap = NvdecPacketTap.of_demuxer(self.packets, demuxer, fps)
        if self._demuxer is None:
            self._tap.follow(demuxer)

    def _tap_safely(self, call: Any, arg: Any) -> None:
        """A failing packet tap stops recording this stream, never its decoding."""
        try:
            call(arg)
        except Exception:
            log.exception("stream %s: packet tap failed; no recording of it", self.stream_id)
            self._tap = None

    def _release(self) -> None:
        if self._threaded is not None:
            if self._reusable and self.pool is not None:
                self.pool.give(self.device_id, self._threaded)
            else:
                with contextlib.suppress(Exception):
                    self._threaded.end()
        self._threaded = None
        self._reusable = False
        self._decoder = None
        self._demuxer = None
        self._tap = None
        self._stream = None


def picture_view(picture: Any, stream_handle: int) -> Any:
    """A torch view of a decoded picture, ordered after the decoder's work on the CUDA
    stream ``stream_handle``.

    The picture's own ``__dlpack__`` is given the stream directly: torch's generic
    ``from_dlpack`` looks the device and current stream up on every call, which cost more
    than the copy at thousands of frames per second.
    """
    import torch

    try:
        capsule = picture.__dlpack__(stream=stream_handle)
    except TypeError:  # a producer without the stream argument
        return torch.from_dlpack(picture)
    return torch.from_dlpack(capsule)


def gpu_frame(stream_id: str, number: int, pts_s: float | None, image: Any) -> Frame:
    """A :class:`Frame` of a CUDA tensor NVDEC decoded: NV12 (``H*3/2 × W``) or RGB."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    pixel_format = PixelFormat.RGB if image.ndim == 3 else PixelFormat.NV12
    return Frame.captured_now(stream_id, number, pts_s, image, pixel_format)


def picture_size(image: Any) -> tuple[int, int]:
    """Width and height of a tensor :func:`gpu_frame` takes."""
    if image.ndim == 3 and image.shape[2] != 1:
        return int(image.shape[1]), int(image.shape[0])
    return int(image.shape[1]), int(image.shape[0]) * 2 // 3
