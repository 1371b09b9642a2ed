"""The GPU path end to end against a real Triton (PeopleNet-class model), and its exit paths:
CUDA shared-memory regions are unregistered from Triton and freed however Vigil stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.gpu import peoplenet
from vigil.accel import choose_acceleration
from vigil.config import Settings
from vigil.infer import cuda_shm
from vigil.infer.client import TritonClient
from vigil.infer.cuda_shm import allocated_regions
from vigil.jobs import file_spec, run_streams
from vigil.runtime import open_runtime
from vigil.shm_segments import new_prefix
from vigil.triton.server import EmbeddedTriton
from vigil.triton_connection import connect

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_BYTES_PER_FRAME = (3 + 12) * 34 * 60 * 4


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, triton_server_dir: Path) -> Path:
    import torch

    from bench.gpu import peoplenet_net

    tmp = tmp_path_factory.mktemp("peoplenet")
    device = torch.device("cuda", 0)
    net = peoplenet_net.build(0).to(device)
    net = peoplenet_net.calibrate(net, torch.rand(4, 3, 544, 960, device=device))
    net = peoplenet_net.for_inference(net, device)
    torch.save(net.state_dict(), tmp / "weights.pt")
    del net
    torch.cuda.empty_cache()
    peoplenet.write_repository(tmp / "repository", tmp / "weights.pt", max_batch=8, instances=1)
    return tmp / "repository"


@pytest.fixture(scope="module")
def triton(repository: Path, triton_server_dir: Path) -> Iterator[EmbeddedTriton]:
    """A Triton that outlives the Vigil runs of the tests ("external" to them)."""
    server = EmbeddedTriton(
        triton_server_dir,
        repository,
        repository.parent / "triton.log",
        shm_prefix=new_prefix("pb") + "_",
        cuda_memory_pool_bytes=1 << 30,
    )
    with server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, triton: EmbeddedTriton, repository: Path) -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "run_dir": tmp_path,
            "triton": base.triton.model_copy(
                update={"url": triton.grpc_url, "model_repository": repository}
            ),
            "model": base.model.model_copy(
                update={"name": peoplenet.MODEL_NAME, "confidence_threshold": 0.5}
            ),
            "gpu": base.gpu.model_copy(update={"mode": "gpu"}),
            "pipeline": base.pipeline.model_copy(
                update={"max_batch_size": 8, "inflight_requests": 2}
            ),
            "events": base.events.model_copy(update={"jsonl_path": tmp_path / "events.jsonl"}),
        }
    )


async def registered(triton: EmbeddedTriton) -> list[str]:
    client = TritonClient(triton.grpc_url)
    try:
        return await client.registered_regions()
    finally:
        await client.close()


def is_allocated(address: int) -> bool:
    """Whether ``address`` is still inside a live CUDA allocation of this process."""
    from cuda.bindings import driver

    err, _ = driver.cuPointerGetAttribute(
        driver.CUpointer_attribute.CU_POINTER_ATTRIBUTE_RANGE_SIZE, address
    )
    return err == driver.CUresult.CUDA_SUCCESS


async def test_gpu_path_runs_streams_to_events_copying_only_outputs_to_host(
    settings, triton, gpu_clip
):
    assert choose_acceleration(settings.gpu).on_gpu
    await registered(triton)
    before = cuda_shm.TRANSFERS.bytes
    specs = [file_spec("a", str(gpu_clip)), file_spec("b", str(gpu_clip))]
    addresses: list[int] = []

    def on_start(runtime) -> None:
        ring = runtime.pipeline.route.ring
        addresses.extend(int(slot.region._handle._base_addr) for slot in ring.slots)

    result = await run_streams(settings, specs, on_start=on_start)
    frames = sum(s.stats.frames_processed for s in result.streams.values())
    assert not result.failed, [s.reason for s in result.failed]
    assert frames == 2 * sum(1 for _ in _count(gpu_clip))
    assert result.events_written > 0, "the model's outputs came back empty"
    # device → host: the detector's outputs and nothing else (no pixels)
    assert cuda_shm.TRANSFERS.bytes - before == frames * OUTPUT_BYTES_PER_FRAME
    assert await registered(triton) == []
    assert allocated_regions() == 0
    assert addresses
    assert not [hex(a) for a in addresses if is_allocated(a)], "CUDA memory not freed"


def _count(clip: Path):
    import cv2

    cap = cv2.VideoCapture(str(clip))
    while cap.grab():
        yield 1
    cap.release()


async def test_gpu_path_exception_exit_unregisters_and_frees(settings, triton, gpu_clip):
    seen: list[str] = []
    addresses: list[int] = []

    async def fail_mid_run() -> None:
        async with open_runtime(settings) as runtime:
            await runtime.streams.add(file_spec("a", str(gpu_clip)), trusted=True)
            await asyncio.sleep(1.0)
            seen.extend(await registered(triton))
            ring = runtime.pipeline.route.ring
            assert ring is not None
            addresses.extend(int(s.region._handle._base_addr) for s in ring.slots)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_mid_run()
    assert any(n.startswith(f"vigil_{os.getpid()}_") for n in seen)
    assert addresses
    assert await registered(triton) == []
    assert allocated_regions() == 0
    assert not [hex(a) for a in addresses if is_allocated(a)], "CUDA memory not freed"


CHILD = textwrap.dedent(
    """
    import sys
    sys.path[:0] = {paths!r}
    from vigil.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def start_child(settings: Settings, clip: Path, tmp_path: Path) -> subprocess.Popen[str]:
    script = CHILD.format(paths=[str(ROOT), str(ROOT / "service")])
    env = dict(os.environ, VIGIL_GPU__MODE="gpu", PYTHONUNBUFFERED="1")
    args = [
        "run",
        "--source",
        f"a={clip}",
        "--source",
        f"b={clip}",
        "--triton-url",
        settings.triton.url or "",
        "--model",
        peoplenet.MODEL_NAME,
        "--model-repository",
        str(settings.triton.model_repository),
        "--out",
        str(tmp_path / "child.jsonl"),
        "--no-progress",
    ]
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def wait_registered(triton: EmbeddedTriton, pid: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(n.startswith(f"vigil_{pid}_") for n in await registered(triton)):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"process {pid} never registered a region")


async def test_sigterm_mid_run_unregisters_the_cuda_regions(settings, triton, gpu_clip, tmp_path):
    child = start_child(settings, gpu_clip, tmp_path)
    try:
        await wait_registered(triton, child.pid)
        await asyncio.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM, out
    assert [n for n in await registered(triton) if f"_{child.pid}_" in n] == [], out


async def test_regions_of_a_killed_vigil_are_unregistered_at_the_next_start(
    settings, triton, gpu_clip, tmp_path
):
    child = start_child(settings, gpu_clip, tmp_path)
    try:
        await wait_registered(triton, child.pid)
        child.kill()  # SIGKILL: no chance to unregister
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert [n for n in await registered(triton) if f"_{child.pid}_" in n]
    async with connect(settings):  # what every Vigil start does with an external Triton
        pass
    assert [n for n in await registered(triton) if f"_{child.pid}_" in n] == []


def test_output_bytes_constant_matches_the_model():
    assert (
        sum(int(np.prod(shape)) * 4 for shape in ((3, 34, 60), (12, 34, 60)))
        == OUTPUT_BYTES_PER_FRAME
    )
