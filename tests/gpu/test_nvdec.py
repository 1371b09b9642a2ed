"""NVDEC decoding through PyNvVideoCodec: frames on the GPU, same pictures as the CPU."""

from __future__ import annotations

import importlib.util
import itertools

import cv2
import pytest

from tests.gpu.decoded import assert_like_cpu_decode
from vigil.sources.nvdec import NvdecFileSource, nvdec_unavailable_reason

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _nvdec() -> None:
    reason = nvdec_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("threaded", [True, False], ids=["threaded", "plain"])
def test_nvdec_frames_stay_on_the_gpu_and_match_the_cpu_decode(gpu_clip, cuda, threaded):
    source = NvdecFileSource("cam", gpu_clip, threaded=threaded)
    info = source.open()
    try:
        assert source.on_gpu
        assert (info.width, info.height) == (1920, 1080)
        frames = source.frames()
        decoded = [next(frames) for _ in range(10)]
    finally:
        source.close()
    first = decoded[0]
    assert first.on_gpu
    assert first.image.is_cuda
    assert (first.width, first.height, first.frame_number) == (1920, 1080, 0)
    assert [f.frame_number for f in decoded] == list(range(10))
    assert_like_cpu_decode(decoded, gpu_clip)


@pytest.mark.parametrize("threaded", [True, False], ids=["threaded", "plain"])
def test_nvdec_decodes_every_frame_of_the_file(gpu_clip, threaded):
    expected = int(cv2.VideoCapture(str(gpu_clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    source = NvdecFileSource("cam", gpu_clip, threaded=threaded)
    source.open()
    try:
        count = sum(1 for _ in source.frames())
    finally:
        source.close()
    assert count == expected
    assert source.decode_errors == 0
    assert source.on_gpu, "NVDEC must not have fallen back to the CPU"


@pytest.mark.parametrize("threaded", [True, False], ids=["threaded", "plain"])
def test_nvdec_sources_feed_the_packet_tap_one_packet_per_frame(gpu_clip, threaded):
    packets = []
    source = NvdecFileSource("cam", gpu_clip, threaded=threaded)
    source.packets = packets.append
    source.open()
    try:
        assert source.on_gpu
        count = sum(1 for _ in source.frames())
    finally:
        source.close()
    print(
        f"tapped {len(packets)} packets for {count} frames; first: pts={packets[0].pts} "
        f"dts={packets[0].dts} base={packets[0].params.time_base} {packets[0].params.codec}"
    )
    assert packets[0].keyframe
    assert packets[0].params.codec == "h264"
    assert abs(len(packets) - count) <= 1
    assert sum(p.keyframe for p in packets) >= 2  # the clip's GOP is shorter than the file
    assert packets[0].data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")), "Annex B"
    dts = [p.dts for p in packets]
    assert all(b > a for a, b in itertools.pairwise(dts))
    if importlib.util.find_spec("av") is None:  # PyAV (the muxer) is not on every GPU host
        return
    from vigil.record.clip import ClipWriter

    writer = ClipWriter(gpu_clip.parent / f"nvdec-tap-{threaded}.mp4", "mp4")
    for p in packets[:90]:
        writer.write(p)
    writer.close()
    assert writer.duration_s > 2.5


def test_a_decoder_that_finished_its_file_is_reused_and_gives_the_next_file_from_its_start(
    gpu_clip, cuda
):
    """The next stream takes the idle decoder (no new NVDEC session) and gets its own file's
    frames from the first, every one of them; a stream stopped half-way does not give its
    decoder back."""
    from vigil.sources.nvdec_pool import DecoderPool

    expected = int(cv2.VideoCapture(str(gpu_clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    pool = DecoderPool(capacity=4)
    first = NvdecFileSource("first", gpu_clip, pool=pool)
    first.open()
    try:
        assert sum(1 for _ in first.frames()) == expected
    finally:
        first.close()
    assert len(pool) == 1

    second = NvdecFileSource("second", gpu_clip, pool=pool)
    second.open()
    try:
        assert pool.reused == 1
        assert len(pool) == 0
        frames = second.frames()
        decoded = [next(frames) for _ in range(10)]
        rest = sum(1 for _ in frames)
    finally:
        second.close()
    assert [f.frame_number for f in decoded] == list(range(10))
    assert 10 + rest == expected
    assert_like_cpu_decode(decoded, gpu_clip)
    assert len(pool) == 1, "the second stream ended cleanly too"

    stopped = NvdecFileSource("stopped", gpu_clip, pool=pool)
    stopped.open()
    try:
        frames = stopped.frames()
        next(frames)
        frames.close()
    finally:
        stopped.close()
    assert len(pool) == 0, "a decoder stopped half-way is ended, not kept"
    pool.clear()
