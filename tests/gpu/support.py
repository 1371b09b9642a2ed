"""Helpers of the Triton-backed GPU tests: what Triton has registered, whether CUDA memory is
still allocated, and ``vigil run`` as a child process on the GPU path."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench.gpu import peoplenet
from vigil.config import Settings
from vigil.infer.client import TritonClient
from vigil.shm_segments import owner_pid
from vigil.triton.server import EmbeddedTriton

ROOT = Path(__file__).resolve().parents[2]

# The child imports Vigil from this tree: the GPU machine runs it without installing it.
CHILD = textwrap.dedent(
    """
    import sys
    sys.path[:0] = {paths!r}
    from vigil.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


async def registered(triton: EmbeddedTriton) -> list[str]:
    """Names of the shared-memory regions (system and CUDA) registered with ``triton``."""
    client = TritonClient(triton.grpc_url)
    try:
        return await client.registered_regions()
    finally:
        await client.close()


def cuda_regions(triton: EmbeddedTriton) -> list[str]:
    """Names of the CUDA shared-memory regions registered with ``triton``."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton.grpc_url)
    try:
        return sorted(client.get_cuda_shared_memory_status(as_json=True).get("regions", {}))
    finally:
        client.close()


def owners(names: Sequence[str]) -> set[int]:
    """The pids in region names ``vigil_<pid>_...``."""
    return {pid for pid in map(owner_pid, names) if pid is not None}


def frames_in(clip: Path) -> int:
    """Frames in ``clip``, counted by OpenCV."""
    import cv2

    cap = cv2.VideoCapture(str(clip))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    return count


def is_allocated(address: int) -> bool:
    """Whether ``address`` is still inside a live CUDA allocation of this process."""
    from cuda.bindings import driver

    err, _ = driver.cuPointerGetAttribute(
        driver.CUpointer_attribute.CU_POINTER_ATTRIBUTE_RANGE_SIZE, address
    )
    return err == driver.CUresult.CUDA_SUCCESS


@contextlib.contextmanager
def child_run(
    settings: Settings, clip: Path, tmp_path: Path, *extra: str
) -> Iterator[subprocess.Popen[str]]:
    """``vigil run`` of two copies of ``clip`` on the GPU path against the tests' Triton, as
    a child process (``extra``: more arguments), killed on the way out if still running."""
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
        *extra,
    ]
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)


async def wait_registered(triton: EmbeddedTriton, pid: int, timeout_s: float = 120) -> None:
    """Wait until process ``pid`` has a region registered with ``triton``."""
    await until_regions(triton, lambda names: pid in owners(names), timeout_s)


async def until_regions(
    triton: EmbeddedTriton, condition: Callable[[list[str]], bool], timeout_s: float = 120
) -> list[str]:
    """Poll the registered regions until ``condition`` holds for them; returns them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = await registered(triton)
        if condition(names):
            return names
        await asyncio.sleep(0.2)
    raise AssertionError(f"regions never as expected: {await registered(triton)}")
