"""NVDEC decoding of a packet-fed stream (the RTSP/HTTP path): PyAV demuxes, NVDEC decodes;
frames stay on the GPU and match the CPU decode. The clip is served over HTTP, so its MP4
packets are length-prefixed and must be converted to Annex B on the way (RTSP's already are).
"""

from __future__ import annotations

import contextlib

import pytest

from tests.gpu.decoded import assert_like_cpu_decode
from tests.support.http_files import faststart_copy, served
from vigil.sources.nvdec import nvdec_unavailable_reason

pytestmark = pytest.mark.gpu

# The GPU image has no PyAV, and its wheel does not fit beside Triton in the device tool's
# 64 MiB carry: stage it (bench/gpu/stage.sh WITH_PYAV=1) for a call that runs these.
pytest.importorskip("av", reason="PyAV is not installed (bench/gpu/stage.sh WITH_PYAV=1)")
from vigil.sources.nvdec_network import NvdecNetworkSource  # noqa: E402 (needs PyAV)


@pytest.fixture(autouse=True)
def _nvdec() -> None:
    reason = nvdec_unavailable_reason()
    if reason:
        pytest.skip(reason)


def test_packet_fed_nvdec_frames_stay_on_the_gpu_and_match_the_cpu_decode(gpu_clip, cuda, tmp_path):
    faststart_copy(gpu_clip, tmp_path)  # a streamable MP4, as an HTTP camera sends
    with served(tmp_path) as base:
        source = NvdecNetworkSource("cam", f"{base}/{gpu_clip.name}", open_timeout_s=20)
        packets = []
        source.packets = packets.append
        info = source.open()
        try:
            assert source.on_gpu, "NVDEC must not have fallen back to the CPU"
            frames = source.frames()
            decoded = [next(frames) for _ in range(10)]
        finally:
            source.close()
    assert (info.width, info.height) == (1920, 1080)
    assert all(f.on_gpu and f.image.is_cuda for f in decoded)  # no pixel on the host
    assert [f.frame_number for f in decoded] == list(range(10))
    assert len(packets) >= 10  # the recorder's tap is fed on this path too
    assert_like_cpu_decode(decoded, gpu_clip)


def test_packet_fed_nvdec_decodes_every_frame_and_frees_its_memory(gpu_clip, cuda, tmp_path):
    torch = cuda
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    faststart_copy(gpu_clip, tmp_path)
    with served(tmp_path) as base:
        source = NvdecNetworkSource("cam", f"{base}/{gpu_clip.name}", open_timeout_s=20)
        source.open()
        count = 0
        with contextlib.suppress(Exception):  # the served file ends: "stream ended"
            for frame in source.frames():
                count += 1
                del frame
        on_gpu = source.on_gpu
        source.close()
    import cv2

    expected = int(cv2.VideoCapture(str(gpu_clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert on_gpu
    assert count == expected
    assert source.decode_errors == 0
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before  # every frame's copy was released
