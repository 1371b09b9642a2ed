"""``vigilctl``: manage a Vigil server's streams, models, analytics and recordings from the
shell.

Examples:
    vigilctl streams add cam-1 rtsp://10.0.0.5/stream1 --interval 2 --max-fps 15
    vigilctl streams list
    vigilctl --url http://vigil:8080 --api-key "$KEY" streams stop cam-1
    vigilctl models list
    vigilctl models upload ssd_mobilenet_v2_coco ssd-v2.onnx
    vigilctl models swap ssd_mobilenet_v2_coco latest
    vigilctl models rollback ssd_mobilenet_v2_coco
    vigilctl analytics load cam-1 door.yaml --reset-counts
    vigilctl analytics show cam-1
    vigilctl recordings start cam-1 --duration 20 --pre-roll 5
    vigilctl recordings list --stream cam-1 --since 2026-11-21T00:00:00Z
    vigilctl recordings download cam-1-20261121T120000-a1b2c3 -o clip.mp4  # resumes
    vigilctl ready && echo up

Every listing and ``show`` prints a table (rich when installed); ``--json`` prints the
server's JSON instead.

Exit status: 0 on success, 1 on an error (printed as ``error: <message>`` on stderr) or a
failed check (``health`` not ok, ``ready`` false), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from vigil_client import __version__, cli_analytics, cli_models, cli_recordings
from vigil_client.client import VigilClient
from vigil_client.errors import VigilError
from vigil_client.output import print_json, print_table
from vigil_client.streams import StreamInfo

DEFAULT_URL = "http://127.0.0.1:8080"
# This is a separate program from the service, so it reads its own two variables here
# rather than through the service's settings.
URL_ENV = "VIGIL_URL"
API_KEY_ENV = "VIGIL_API_KEY"

COLUMNS = ("ID", "STATE", "FPS", "FRAMES", "DROPPED", "RECONNECTS", "REASON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults for ``--url``/``--api-key`` come from the environment)."""
    parser = argparse.ArgumentParser(
        prog="vigilctl",
        description="Manage the streams, models, analytics and recordings of a Vigil server.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--url",
        dest="server_url",
        metavar="URL",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"server root URL (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"API key sent as X-API-Key (default: ${API_KEY_ENV})",
    )
    parser.add_argument(
        "--timeout",
        dest="timeout_s",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="request timeout (default: 10; uploads, swaps and rollbacks wait at least 300)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    streams = commands.add_parser("streams", help="add, list, inspect, start, stop, remove")
    actions = streams.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="register a stream and start it")
    add.add_argument("id", metavar="ID")
    add.add_argument("source_url", metavar="URL", help="source URL (file://, rtsp://, ...)")
    add.add_argument("--name", help="display name")
    add.add_argument(
        "--interval",
        dest="inference_interval",
        type=int,
        metavar="N",
        help="run inference on every N-th frame",
    )
    add.add_argument("--max-fps", type=float, metavar="F", help="decode at most F frames/s")
    add.add_argument(
        "--drop-policy", choices=("block", "drop_oldest"), help="what to do when behind"
    )
    add.set_defaults(handler=_streams_add)

    ls = actions.add_parser("list", help="table of all streams")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(handler=_streams_list)

    for name, handler, text in (
        ("get", _streams_get, "print one stream as JSON"),
        ("rm", _streams_rm, "stop a stream and remove it"),
        ("start", _streams_start, "start a stopped stream"),
        ("stop", _streams_stop, "stop a stream (it stays registered)"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("id", metavar="ID")
        sub.set_defaults(handler=handler)

    cli_models.register(commands)
    cli_analytics.register(commands)
    cli_recordings.register(commands)

    health = commands.add_parser("health", help="print the health report; exit 1 unless ok")
    health.set_defaults(handler=_health)
    ready = commands.add_parser("ready", help="exit 0 if the server is ready, else 1")
    ready.set_defaults(handler=_ready)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vigilctl``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage error (2) or --help/--version (0)
        return e.code if isinstance(e.code, int) else 2
    try:
        with VigilClient(args.server_url, api_key=args.api_key, timeout_s=args.timeout_s) as client:
            return args.handler(client, args)
    except VigilError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # an argument the client refuses before sending, e.g. an empty id
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------- handlers


def _streams_add(client: VigilClient, args: argparse.Namespace) -> int:
    options = {
        key: value
        for key in ("name", "inference_interval", "max_fps", "drop_policy")
        if (value := getattr(args, key)) is not None
    }
    info = client.add_stream(args.id, args.source_url, **options)
    print(f"added stream {info.id} ({info.state})")
    return 0


def _streams_list(client: VigilClient, args: argparse.Namespace) -> int:
    streams = client.list_streams()
    if args.json:
        print_json([s.to_dict() for s in streams], sys.stdout)
    elif not streams:
        print("no streams")
    else:
        print_streams_table(streams, sys.stdout)
    return 0


def _streams_get(client: VigilClient, args: argparse.Namespace) -> int:
    print_json(client.get_stream(args.id).to_dict(), sys.stdout)
    return 0


def _streams_rm(client: VigilClient, args: argparse.Namespace) -> int:
    client.remove_stream(args.id)
    print(f"removed stream {args.id}")
    return 0


def _streams_start(client: VigilClient, args: argparse.Namespace) -> int:
    info = client.start_stream(args.id)
    print(f"{info.id}: {info.state}")
    return 0


def _streams_stop(client: VigilClient, args: argparse.Namespace) -> int:
    info = client.stop_stream(args.id)
    print(f"{info.id}: {info.state}")
    return 0


def _health(client: VigilClient, args: argparse.Namespace) -> int:
    report = client.health()
    print_json(report, sys.stdout)
    return 0 if report.get("status") == "ok" else 1


def _ready(client: VigilClient, args: argparse.Namespace) -> int:
    report = client.ready()
    if report.get("ready") is True:
        print("ready")
        return 0
    print(f"not ready: {report.get('reason') or 'no reason given'}")
    return 1


# --------------------------------------------------------------------------- output


def stream_row(info: StreamInfo) -> tuple[str, ...]:
    """One table row: the cells under :data:`COLUMNS`."""
    return (
        info.id,
        info.state,
        f"{info.fps:.1f}",
        str(info.frames_processed),
        str(info.dropped_total),
        str(info.reconnects),
        info.reason,
    )


def print_streams_table(streams: Sequence[StreamInfo], out: TextIO) -> None:
    """Print streams as a table: a rich one when rich is installed, else aligned text."""
    rows = [stream_row(s) for s in streams]
    print_table(COLUMNS, rows, out, numeric={"FPS", "FRAMES", "DROPPED", "RECONNECTS"})
