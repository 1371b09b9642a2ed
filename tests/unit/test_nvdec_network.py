"""NVDEC decoding of packet-fed streams (RTSP/HTTP) without a GPU: what the decoder is fed
(Annex B, parameter sets in front of keyframes, by address), how its refusals are counted,
and the CPU fallback with its one warning. The GPU side is `tests/gpu/test_nvdec_packets.py`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from tests.support.http_files import served
from vigil.sources.annexb import is_keyframe, starts_with_parameter_set, to_annex_b
from vigil.sources.errors import PacketDecodeError
from vigil.sources.nvdec_network import NvdecNetworkSource, NvdecPacketDecoder
from vigil.sources.packets import CodecParams

FPS, GOP = 10, 20


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 s of H.264 in MP4 (length-prefixed packets, parameter sets in avcC), a keyframe
    every 2 s."""
    path = tmp_path_factory.mktemp("nvdec") / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", "bf": "0"}
        for i in range(40):
            image = np.full((96, 160, 3), i * 5, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def demuxed(path: Path) -> tuple[CodecParams, list[av.Packet]]:
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        params = CodecParams.of_stream(stream)
        packets = [p for p in f.demux(stream) if p.size]
        return params, [(bytes(p), p.is_keyframe, p.pts) for p in packets]


class FakeNvc:
    """What NvdecPacketDecoder uses of PyNvVideoCodec; Decode reads the bitstream back from
    the address it is given, as the native decoder does."""

    cudaVideoCodec = SimpleNamespace(H264="H264", HEVC="HEVC")  # noqa: N815 (its name)

    class PacketData:
        bsl_data = 0
        bsl = 0
        pts = 0

    def __init__(self, refuse: int = 0, delay: int = 0) -> None:
        self.fed: list[bytes] = []
        self.created: dict = {}
        self.refuse = refuse
        self.delay = delay  # pictures held back, as a decoder that reorders holds them
        self.held: list[str] = []

    def CreateDecoder(self, **kwargs):  # noqa: N802 (PyNvVideoCodec's name)
        self.created = kwargs
        return self

    def Decode(self, packet):  # noqa: N802
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("CUDA_ERROR_INVALID_VALUE")
        if packet.bsl == 0:  # the end of stream: everything held comes out
            held, self.held = self.held, []
            return held
        self.fed.append(ctypes.string_at(packet.bsl_data, packet.bsl))
        self.held.append(f"picture {len(self.fed)}")
        ready = max(0, len(self.held) - self.delay)
        out, self.held = self.held[:ready], self.held[ready:]
        return out


def test_the_decoder_is_fed_annex_b_with_parameter_sets_at_keyframes(clip):
    params, packets = demuxed(clip)
    nvc = FakeNvc()
    decoder = NvdecPacketDecoder(nvc, params, device_id=3)
    assert nvc.created["gpuid"] == 3
    assert nvc.created["codec"] == "H264"
    assert nvc.created["usedevicememory"] is True
    for data, key, pts in packets:
        assert decoder.decode(data, key, pts) == [f"picture {len(nvc.fed)}"]
    assert len(nvc.fed) == len(packets) == 40
    assert decoder.pictures == 40
    for fed, (data, key, _) in zip(nvc.fed, packets, strict=True):
        assert fed.startswith(b"\x00\x00\x00\x01")  # Annex B, not length-prefixed
        assert not data.startswith(b"\x00\x00\x00\x01")
        assert is_keyframe(fed, "h264") == key
        assert starts_with_parameter_set(fed, "h264") == key  # SPS/PPS before each IDR
        assert fed.endswith(to_annex_b(data, 4))  # the camera's NAL units, byte for byte


def test_a_refused_packet_is_a_packet_decode_error():
    params = CodecParams("h264", 160, 96, time_base=None)  # type: ignore[arg-type]
    decoder = NvdecPacketDecoder(FakeNvc(refuse=1), params, 0)
    with pytest.raises(PacketDecodeError, match="INVALID_VALUE"):
        decoder.decode(b"\x00\x00\x00\x01\x65\x88", True, None)
    assert decoder.decode(b"\x00\x00\x00\x01\x65\x88", True, None) == ["picture 1"]


def test_the_pictures_a_decoder_holds_come_out_at_the_end_of_stream(clip):
    params, packets = demuxed(clip)
    nvc = FakeNvc(delay=2)
    decoder = NvdecPacketDecoder(nvc, params, 0)
    pictures = [p for data, key, pts in packets for p in decoder.decode(data, key, pts)]
    assert len(pictures) == 38
    assert decoder.flush() == ["picture 39", "picture 40"]
    assert decoder.pictures == 40


def test_every_frame_of_an_http_stream_with_b_frames_is_decoded(tmp_path):
    """A decoder that reorders B-frames holds the last pictures until the demuxer's flush
    packet: the network source drains them before the stream ends (it used to drop them)."""
    path = tmp_path / "bframes.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"g": str(GOP), "bf": "2"}
        for i in range(40):
            image = np.full((96, 160, 3), i * 5, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    with av.open(str(path)) as check:
        assert check.streams.video[0].codec_context.has_b_frames, "the clip must reorder"
    with served(tmp_path) as base:
        source = NvdecNetworkSource("cam", f"{base}/{path.name}", open_timeout_s=5)
        source.open()
        numbers = []
        with contextlib.suppress(Exception):  # an HTTP file ends: "stream ended"
            for frame in source.frames():
                numbers.append(frame.frame_number)
        source.close()
    assert numbers == list(range(40))


def test_a_codec_nvdec_lacks_is_refused_at_once():
    with pytest.raises(ValueError, match="NVDEC does not decode theora"):
        NvdecPacketDecoder(FakeNvc(), CodecParams("theora", 8, 8, None), 0)  # type: ignore[arg-type]


def test_without_nvdec_an_http_stream_decodes_on_the_cpu_with_one_warning(clip, caplog):
    with served(clip.parent) as base:
        source = NvdecNetworkSource("cam", f"{base}/{clip.name}", open_timeout_s=5)
        packets = []
        source.packets = packets.append
        with caplog.at_level(logging.WARNING, logger="vigil.sources.nvdec_network"):
            info = source.open()
            try:
                frames = []
                with contextlib.suppress(Exception):  # an HTTP file ends: "stream ended"
                    for frame in source.frames():
                        frames.append(frame)
            finally:
                source.close()
    assert (info.width, info.height) == (160, 96)
    assert not source.on_gpu
    assert len(frames) == 40
    assert frames[0].image.shape == (96, 160, 3)  # RGB on the host, as the CPU source gives
    assert len(packets) == 40  # the recorder's tap is fed either way
    warnings = [r for r in caplog.records if "decoding it on the CPU" in r.getMessage()]
    assert len(warnings) == 1
    assert "cam" in warnings[0].getMessage()


def test_pictures_that_cannot_be_handed_on_make_the_stream_fall_back(clip, caplog):
    params, packets = demuxed(clip)
    source = NvdecNetworkSource("cam", "http://127.0.0.1:9/clip.mp4")
    source._nvdec = NvdecPacketDecoder(FakeNvc(), params, 0)  # torch absent: copies fail

    class Packet:
        def __init__(self, data: bytes, key: bool, pts: int) -> None:
            self.data, self.is_keyframe, self.pts = data, key, pts

        def __bytes__(self) -> bytes:
            return self.data

    with caplog.at_level(logging.WARNING, logger="vigil.sources.nvdec_network"):
        assert source._decode(Packet(*packets[0])) == []
    assert not source.on_gpu
    assert "cannot be copied" in caplog.text
