"""Live network streams (RTSP, RTSPS, HTTP, HTTPS) demuxed with PyAV on the CPU and decoded by
the GPU's NVDEC engines; the pictures stay on the GPU.

What real sites run are cameras, not files: this is the GPU path's source for them. PyAV
reads the stream exactly as the CPU source does (same options, timeouts, reconnect rules and
packet tap for smart recording); each packet is then put in Annex B form (RTSP carries it
already, MP4 or Matroska over HTTP does not), with the parameter sets in front of keyframes
that lack them (RTSP cameras often send them only in the SDP), and handed to a PyNvVideoCodec
decoder. Its pictures are copied device to device into tensors of Vigil's own (the decoder
reuses its surfaces) and go on as NV12 CUDA tensors, like those of the NVDEC file source.

When NVDEC cannot be used for a stream (PyNvVideoCodec missing, a codec the chip lacks, the
first packets refused), it is decoded on the CPU instead, with one warning naming it.
"""

from __future__ import annotations

import ctypes
import logging
from types import ModuleType
from typing import Any

import av

from vigil.frame import Frame
from vigil.sources.annexb import AnnexB
from vigil.sources.errors import PacketDecodeError
from vigil.sources.network import NetworkSource
from vigil.sources.nvdec import gpu_frame, load_pynvvideocodec, picture_size, picture_view
from vigil.sources.packets import CodecParams

log = logging.getLogger(__name__)

#: FFmpeg codec names → ``cudaVideoCodec`` member names.
CUDA_CODECS = {"h264": "H264", "hevc": "HEVC", "av1": "AV1", "vp9": "VP9", "vp8": "VP8",
               "mpeg4": "MPEG4", "mpeg2video": "MPEG2", "mjpeg": "JPEG"}  # fmt: skip
#: Packets NVDEC may refuse in a row before it has decoded any, before the CPU takes over.
FIRST_PICTURE_TRIES = 3


class NvdecPacketDecoder:
    """Decodes one stream's packets, given as bytes, with a PyNvVideoCodec decoder.

    Args:
        nvc: The PyNvVideoCodec module.
        params: The stream's codec parameters (codec name, extradata for Annex B).
        device_id: CUDA device that decodes and holds the pictures.

    Raises:
        ValueError: NVDEC has no decoder for the codec.
        Exception: whatever PyNvVideoCodec raises when it cannot create the decoder.
    """

    def __init__(self, nvc: ModuleType, params: CodecParams, device_id: int) -> None:
        name = CUDA_CODECS.get(params.codec)
        if name is None:
            raise ValueError(f"NVDEC does not decode {params.codec}")
        self.codec = params.codec
        self.annex_b = AnnexB(params)
        self._decoder = nvc.CreateDecoder(
            gpuid=device_id,
            codec=getattr(nvc.cudaVideoCodec, name),
            cudacontext=0,
            cudastream=0,
            usedevicememory=True,
        )
        self._packet = nvc.PacketData()
        self.pictures = 0

    def decode(self, data: bytes, keyframe: bool, pts: int | None) -> list[Any]:
        """The decoder's pictures after this packet (valid until the next call).

        Raises:
            PacketDecodeError: the decoder refused the packet.
        """
        payload = self.annex_b(data, keyframe)
        # PyNvVideoCodec takes the bitstream by address; `payload` stays referenced (and so
        # in place) until Decode() returns, which parses it before returning.
        buffer = ctypes.c_char_p(payload)
        self._packet.bsl_data = ctypes.cast(buffer, ctypes.c_void_p).value or 0
        self._packet.bsl = len(payload)
        self._packet.pts = 0 if pts is None else int(pts)
        return self._decode_packet("a packet")

    def flush(self) -> list[Any]:
        """The pictures the decoder still holds at the end of the stream (an empty packet
        is NVDEC's end of stream); valid until the next call.

        Raises:
            PacketDecodeError: the decoder refused the end of stream.
        """
        self._packet.bsl_data = 0
        self._packet.bsl = 0
        return self._decode_packet("the end of stream")

    def _decode_packet(self, what: str) -> list[Any]:
        try:
            pictures = list(self._decoder.Decode(self._packet))
        except Exception as e:
            raise PacketDecodeError(f"NVDEC refused {what}: {e}") from e
        self.pictures += len(pictures)
        return pictures


class NvdecNetworkSource(NetworkSource):
    """Frames of a live network camera, decoded by NVDEC into GPU memory.

    Args:
        stream_id: Id of the stream.
        url: ``rtsp://``, ``rtsps://``, ``http://`` or ``https://`` URL.
        device_id: CUDA device that decodes and holds the frames.
        open_timeout_s: As for :class:`~vigil.sources.network.NetworkSource`.
        read_timeout_s: As for :class:`~vigil.sources.network.NetworkSource`.
    """

    def __init__(
        self,
        stream_id: str,
        url: str,
        device_id: int = 0,
        *,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            stream_id, url, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s
        )
        self.device_id = device_id
        self._nvdec: NvdecPacketDecoder | None = None
        self._cuda_stream: Any = None
        self._refused = 0

    @property
    def on_gpu(self) -> bool:
        """Whether the stream decodes on NVDEC now (False after falling back to the CPU)."""
        return self._nvdec is not None

    def close(self) -> None:
        """Disconnect and release the decoder; idempotent."""
        super().close()
        self._nvdec = None
        self._cuda_stream = None

    def _start_decoding(self, stream: av.video.stream.VideoStream) -> None:
        self._refused = 0
        try:
            nvc = load_pynvvideocodec()
            import torch

            self._cuda_stream = torch.cuda.Stream(torch.device("cuda", self.device_id))
            self._nvdec = NvdecPacketDecoder(nvc, CodecParams.of_stream(stream), self.device_id)
        except Exception as e:
            self._fall_back(f"{type(e).__name__}: {e}")

    def _decode(self, packet: av.Packet) -> list[Any]:
        nvdec = self._nvdec
        if nvdec is None:
            return super()._decode(packet)
        try:
            pictures = nvdec.decode(bytes(packet), packet.is_keyframe, packet.pts)
        except PacketDecodeError as e:
            if nvdec.pictures == 0:
                self._refused += 1
                if self._refused >= FIRST_PICTURE_TRIES:
                    self._fall_back(str(e))
                    return super()._decode(packet)
            raise
        try:
            return self._copy(pictures)
        except Exception as e:
            if nvdec.pictures == len(pictures):  # the first pictures: this host cannot do it
                self._fall_back(f"its pictures cannot be copied: {type(e).__name__}: {e}")
                return []  # the CPU decoder starts at the next keyframe
            raise PacketDecodeError(f"copying NVDEC's pictures failed: {e}") from e

    def _drain(self, packet: av.Packet) -> list[Any]:
        nvdec = self._nvdec
        if nvdec is None:
            return super()._drain(packet)
        try:
            return self._copy(nvdec.flush())
        except Exception:  # the stream ends anyway; its last pictures are lost, say so
            log.warning("stream %s: NVDEC's last pictures could not be drained", self.stream_id)
            return []

    def _frame(self, number: int, picture: Any) -> Frame:
        if hasattr(picture, "is_cuda"):  # a tensor: NVDEC's (a PyAV frame after a fallback)
            return gpu_frame(self.stream_id, number, None, picture)
        return super()._frame(number, picture)

    def _size(self, picture: Any) -> tuple[int, int]:
        if hasattr(picture, "is_cuda"):
            return picture_size(picture)
        return super()._size(picture)

    def _copy(self, pictures: list[Any]) -> list[Any]:
        """Tensors of our own (device to device): the decoder reuses its surfaces."""
        if not pictures:
            return []
        import torch

        stream = self._cuda_stream
        with torch.cuda.stream(stream):
            images = [picture_view(p, stream.cuda_stream).clone() for p in pictures]
            stream.synchronize()
        return images

    def _fall_back(self, reason: str) -> None:
        log.warning(
            "stream %s: NVDEC cannot decode %s (%s); decoding it on the CPU",
            self.stream_id,
            self.safe_url,
            reason,
        )
        self._nvdec = None
        self._cuda_stream = None
