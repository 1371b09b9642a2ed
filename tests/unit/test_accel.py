"""Choosing the CPU or GPU path, and the ring logic they share (CPU only: no GPU needed)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from vigil.accel import CPU_PATH, AccelerationError, GpuProbe, choose_acceleration
from vigil.config import GpuSettings
from vigil.frame import Frame, PixelFormat
from vigil.infer.shm import SlotRing, SystemShmRing
from vigil.infer.tensors import InputFormat, Layout, TensorSpec
from vigil.preprocess.cpu import CpuPreprocessor
from vigil.shm_segments import SHM_DIR, new_prefix

GPU_HOST = GpuProbe(cuda=None, nvdec=None)
GPU_NO_NVDEC = GpuProbe(cuda=None, nvdec="PyNvVideoCodec cannot be used: libnvcuvid.so.1 missing")
CPU_HOST = GpuProbe(cuda="PyTorch is not installed", nvdec="PyTorch is not installed")


@pytest.mark.parametrize(
    ("settings", "probe", "shared_memory", "decode"),
    [
        (GpuSettings(), CPU_HOST, "system", "cpu"),
        (GpuSettings(), GPU_HOST, "cuda", "gpu"),
        (GpuSettings(), GPU_NO_NVDEC, "cuda", "cpu"),
        (GpuSettings(mode="cpu"), GPU_HOST, "system", "cpu"),
        (GpuSettings(decode="cpu"), GPU_HOST, "cuda", "cpu"),
        (GpuSettings(shared_memory="system"), GPU_HOST, "system", "cpu"),
        (GpuSettings(mode="cpu", shared_memory="cuda"), GPU_HOST, "cuda", "gpu"),
        (GpuSettings(mode="gpu", decode="gpu"), GPU_NO_NVDEC, "cuda", "cpu"),
    ],
    ids=[
        "cpu-host-auto",
        "gpu-host-auto",
        "gpu-host-without-nvdec",
        "mode-cpu-on-gpu-host",
        "decode-cpu-override",
        "system-shm-override",
        "cuda-shm-override",
        "gpu-decode-forced-without-nvdec",
    ],
)
def test_choose_acceleration_when_settings_and_host_combine(settings, probe, shared_memory, decode):
    chosen = choose_acceleration(settings, probe)
    assert (chosen.shared_memory, chosen.decode) == (shared_memory, decode)
    assert chosen.on_gpu == (shared_memory == "cuda")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (GpuSettings(mode="gpu"), "gpu.mode is 'gpu' but PyTorch is not installed"),
        (GpuSettings(shared_memory="cuda"), "gpu.shared_memory is 'cuda' but PyTorch"),
        (GpuSettings(decode="gpu"), "decoded frames would have to leave the GPU"),
    ],
    ids=["gpu-mode", "cuda-shm", "gpu-decode-with-system-shm"],
)
def test_choose_acceleration_when_the_host_cannot_raises(settings, message):
    with pytest.raises(AccelerationError, match=message):
        choose_acceleration(settings, CPU_HOST)


def test_choose_acceleration_without_nvdec_logs_one_clear_line(caplog):
    with caplog.at_level(logging.WARNING, logger="vigil.accel"):
        chosen = choose_acceleration(GpuSettings(), GPU_NO_NVDEC)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "NVDEC is unavailable (PyNvVideoCodec cannot be used: libnvcuvid.so.1 missing): "
        "decoding video on the CPU"
    ]
    assert chosen.decode == "cpu"


def test_choose_acceleration_on_a_cpu_host_is_quiet_and_the_cpu_path(caplog):
    with caplog.at_level(logging.DEBUG, logger="vigil.accel"):
        assert choose_acceleration(GpuSettings(), CPU_HOST) is CPU_PATH
    assert caplog.records == []


def test_gpu_pool_setting_reaches_the_embedded_triton_only_on_the_gpu_path():
    assert CPU_PATH.triton_cuda_pool_bytes == 0
    chosen = choose_acceleration(GpuSettings(triton_cuda_pool_mb=512), GPU_HOST)
    assert chosen.triton_cuda_pool_bytes == 512 << 20


def test_cpu_path_builds_system_ring_cpu_preprocessor_and_pyav_sources():
    pytest.importorskip("av", reason="PyAV is not installed (GPU hosts may run without it)")
    from vigil.config import SourceSettings
    from vigil.sources.file import FileSource
    from vigil.sources.isolated import IsolatedSource
    from vigil.sources.testpattern import TestPatternSource
    from vigil.specs import StreamSpec

    image = TensorSpec("image", np.dtype(np.uint8), (30, 40, 3))
    ring = CPU_PATH.make_ring(new_prefix("test"), 2, 2, [image], [])
    try:
        assert isinstance(ring, SystemShmRing)
        assert ring.kind == "system"
    finally:
        ring.close()
    fmt = InputFormat(40, 30, Layout.HWC, np.dtype(np.uint8))
    assert isinstance(CPU_PATH.make_preprocessor(fmt), CpuPreprocessor)
    spec = StreamSpec(id="a", url="file:///tmp/x.mp4")
    isolated = CPU_PATH.make_source(spec, SourceSettings())
    assert isinstance(isolated, IsolatedSource)
    assert not isolated.is_live
    in_process = SourceSettings(decoder_isolation="none")
    assert isinstance(CPU_PATH.make_source(spec, in_process), FileSource)
    camera = StreamSpec(id="b", url="rtsp://camera.local/s")
    assert CPU_PATH.make_source(camera, SourceSettings()).is_live
    pattern = StreamSpec(id="c", url="test://pattern")
    assert isinstance(CPU_PATH.make_source(pattern, SourceSettings()), TestPatternSource)


class FakeRegion:
    """A region in plain memory, for the ring logic."""

    kind = "fake"

    def __init__(self, name: str, byte_size: int) -> None:
        self.name, self.byte_size = name, byte_size
        self.memory = np.zeros(byte_size, np.uint8)
        self.closed = False

    def view(self, dtype, shape, offset):
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.memory[offset : offset + count].view(dtype).reshape(shape)

    def to_host(self, view):
        return view.copy()

    def close(self) -> None:
        self.closed = True


def test_slot_ring_that_fails_half_way_closes_the_regions_it_made():
    made: list[FakeRegion] = []

    def make(i: int, size: int) -> FakeRegion:
        if i == 2:
            raise MemoryError("no more device memory (simulated)")
        made.append(FakeRegion(f"r{i}", size))
        return made[-1]

    with pytest.raises(MemoryError):
        SlotRing(make, 4, 2, [TensorSpec("x", np.dtype(np.float32), (3,))], [])
    assert [r.closed for r in made] == [True, True]


def test_slot_host_outputs_hands_the_parser_the_first_batch_rows():
    out = TensorSpec("scores", np.dtype(np.float32), (5,))
    ring = SlotRing(lambda i, size: FakeRegion(f"r{i}", size), 1, 4, [], [out])
    slot = ring.slots[0]
    slot.outputs["scores"][:] = np.arange(20, dtype=np.float32).reshape(4, 5)
    host = slot.host_outputs(2)
    assert host["scores"].shape == (2, 5)
    np.testing.assert_array_equal(host["scores"][1], [5, 6, 7, 8, 9])
    ring.close()
    assert slot.region.closed


def test_system_slot_host_outputs_are_views_not_copies():
    out = TensorSpec("scores", np.dtype(np.float32), (5,))
    prefix = new_prefix("test")
    ring = SystemShmRing(prefix, 1, 4, [], [out])
    try:
        host = ring.slots[0].host_outputs(3)["scores"]
        assert np.shares_memory(host, ring.slots[0].outputs["scores"])
    finally:
        ring.close()
    assert not list(SHM_DIR.glob(f"{prefix}*"))


@pytest.mark.parametrize(
    ("shape", "pixel_format", "size"),
    [
        ((1080, 1920, 3), PixelFormat.RGB, (1920, 1080)),
        ((1620, 1920), PixelFormat.NV12, (1920, 1080)),
    ],
    ids=["rgb", "nv12"],
)
def test_frame_size_comes_from_the_layout(shape, pixel_format, size):
    frame = Frame("s", 0, None, 0.0, 0.0, np.zeros(shape, np.uint8), pixel_format)
    assert (frame.width, frame.height) == size
    assert not frame.on_gpu


@pytest.mark.parametrize(
    ("shape", "pixel_format"),
    [
        ((1080, 1920), PixelFormat.RGB),
        ((1081, 1920), PixelFormat.NV12),
        ((4, 4, 3), PixelFormat.NV12),
    ],
    ids=["rgb-2d", "nv12-odd-rows", "nv12-3d"],
)
def test_frame_when_the_image_does_not_fit_its_layout_raises(shape, pixel_format):
    with pytest.raises(ValueError, match=f"Frame.image in {pixel_format.value} must be uint8"):
        Frame("s", 0, None, 0.0, 0.0, np.zeros(shape, np.uint8), pixel_format)
