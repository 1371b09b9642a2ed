"""What the benchmarks share: the line saying when and where a result was measured, the
``median (min–max)`` of repeated runs, and a ``vigil serve`` in a subprocess for those that
drive the service over REST."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import yaml
from rich.table import Table

from bench.gpu.stats import Spread
from tests.support.process import free_port

ROOT = Path(__file__).resolve().parents[1]


def measured_on() -> str:
    """``2026-11-21 12:00 UTC, <host>, <N> cores``: when and where a result was measured."""
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores"


def spread(values: Sequence[float], fmt: str = ".1f") -> str:
    """``median (min–max)`` of ``values`` with the format spec ``fmt``; one value alone (the
    GPU benchmark's :class:`~bench.gpu.stats.Spread`, which has no heavy imports)."""
    return Spread.of(values).text(fmt)


def results_table(what: str, details: str, unit: str) -> Table:
    """A table titled ``Vigil <what> benchmark — <when and where>, <details>``, with a
    ``measurement`` column and a right-aligned ``unit`` column (add more after)."""
    table = Table(title=f"Vigil {what} benchmark — {measured_on()}, {details}")
    table.add_column("measurement")
    table.add_column(unit, justify="right")
    return table


def wait_ready(api: httpx.Client, timeout_s: float) -> bool:
    """Poll ``/api/v1/ready`` of a starting ``vigil serve``; True once it answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if api.get("/api/v1/ready").status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


@dataclass(frozen=True)
class Served:
    """A running ``vigil serve``: its process, a client of its API and its root URL."""

    process: subprocess.Popen[bytes]
    api: httpx.Client
    url: str


@contextmanager
def vigil_serve(
    config: Mapping[str, Any],
    run_dir: Path,
    *,
    ready_timeout_s: float = 180.0,
    http_timeout_s: float = 10.0,
    launcher: Sequence[str] = ("-m", "vigil.cli"),
    env: Mapping[str, str] | None = None,
    log: IO[Any] | int = subprocess.DEVNULL,
) -> Iterator[Served]:
    """``vigil serve`` on a free port with ``config``, ready to take requests.

    The config (plus ``api.port``) is written to ``run_dir/vigil.yaml``; the service is
    terminated (and waited for) when the block ends.

    Args:
        config: Settings as the YAML config file takes them, without ``api``.
        run_dir: Where the config file goes.
        ready_timeout_s: How long to wait for ``/api/v1/ready``.
        http_timeout_s: Timeout of the API client's requests.
        launcher: What runs ``serve --config ...`` under ``python`` (a tracing wrapper,
            say).
        env: The service's environment (default: this process's).
        log: Where its stdout and stderr go.

    Raises:
        SystemExit: The service did not become ready in time.
    """
    port = free_port()
    path = run_dir / "vigil.yaml"
    path.write_text(yaml.safe_dump({"api": {"port": port}, **config}))
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, *launcher, "serve", "--config", str(path)],
        cwd=ROOT,
        env=None if env is None else dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=url, timeout=http_timeout_s) as api:
            if not wait_ready(api, ready_timeout_s):
                raise SystemExit("vigil serve did not become ready")
            yield Served(process, api, url)
    finally:
        process.terminate()
        process.wait(60)
