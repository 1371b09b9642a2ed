"""``vigilctl recordings``: list, show, start, stop, download, rm."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vigil_client.client import VigilClient
from vigil_client.output import (
    NONE,
    add_json_flag,
    format_bytes,
    format_seconds,
    format_time,
    print_json,
    print_result,
    print_table,
)
from vigil_client.recordings import PART_SUFFIX, RecordingInfo

COLUMNS = ("ID", "STREAM", "STATE", "START", "DURATION", "SIZE", "TRIGGER")
STATES = ("recording", "complete", "interrupted", "failed")


def register(commands: Any) -> None:
    """Add the ``recordings`` command to ``vigilctl``'s subcommands."""
    recordings = commands.add_parser(
        "recordings", help="list, show, start, stop, download, rm clips"
    )
    actions = recordings.add_subparsers(dest="action", required=True, metavar="ACTION")
    when = "ISO-8601 with a time zone, e.g. 2026-11-21T12:00:00Z"

    ls = actions.add_parser("list", help="recordings, newest first")
    ls.add_argument("--stream", dest="stream_id", metavar="STREAM", help="only this stream's")
    ls.add_argument("--since", metavar="TIME", help=f"only clips ending after TIME ({when})")
    ls.add_argument("--until", metavar="TIME", help="only clips starting before TIME")
    ls.add_argument("--state", choices=STATES, help="only those in this state")
    ls.add_argument("--limit", type=int, metavar="N", help="at most N")
    add_json_flag(ls)
    ls.set_defaults(handler=_list)

    show = actions.add_parser("show", aliases=["get"], help="one recording")
    show.add_argument("id", metavar="ID")
    add_json_flag(show)
    show.set_defaults(handler=_show)

    start = actions.add_parser(
        "start", help="record a clip of a stream (or extend the one it is recording)"
    )
    start.add_argument("stream", metavar="STREAM")
    start.add_argument("--start", metavar="TIME", help=f"clip start ({when}); default: now")
    start.add_argument("--end", metavar="TIME", help="clip end; default: until stopped")
    start.add_argument("--duration", dest="duration_s", type=float, metavar="SECONDS")
    start.add_argument(
        "--pre-roll",
        dest="pre_roll_s",
        type=float,
        metavar="SECONDS",
        help="include SECONDS before the start",
    )
    start.add_argument(
        "--post-roll",
        dest="post_roll_s",
        type=float,
        metavar="SECONDS",
        help="include SECONDS after the end",
    )
    add_json_flag(start)
    start.set_defaults(handler=_start)

    stop = actions.add_parser("stop", help="stop the clip a stream is recording")
    stop.add_argument("stream", metavar="STREAM")
    add_json_flag(stop)
    stop.set_defaults(handler=_stop)

    download = actions.add_parser(
        "download",
        help=f"save a clip's file (resumes from a {PART_SUFFIX} file; a clip being written: "
        "what is written so far)",
    )
    download.add_argument("id", metavar="ID")
    download.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        default=".",
        help="file or directory to write (default: ./<ID>.<container>)",
    )
    download.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help=f"start again rather than continue a {PART_SUFFIX} file",
    )
    download.set_defaults(handler=_download)

    rm = actions.add_parser("rm", aliases=["delete"], help="delete a clip and its file")
    rm.add_argument("id", metavar="ID")
    rm.set_defaults(handler=_rm)


def _list(client: VigilClient, args: argparse.Namespace) -> int:
    recordings = client.list_recordings(
        stream_id=args.stream_id,
        since=args.since,
        until=args.until,
        state=args.state,
        limit=args.limit,
    )
    if args.json:
        print_json([r.to_dict() for r in recordings], sys.stdout)
    elif not recordings:
        print("no recordings")
    else:
        rows = [recording_row(r) for r in recordings]
        print_table(COLUMNS, rows, sys.stdout, numeric={"DURATION", "SIZE"})
    return 0


def _show(client: VigilClient, args: argparse.Namespace) -> int:
    recording = client.get_recording(args.id)
    if args.json:
        print_json(recording.to_dict(), sys.stdout)
        return 0
    fields = [
        ("id", recording.id),
        ("stream", recording.stream_id),
        ("state", recording.state),
        ("start", format_time(recording.start)),
        ("end", format_time(recording.end)),
        ("duration", format_seconds(recording.duration_s)),
        ("size", format_bytes(recording.size_bytes)),
        ("file", f"{recording.container}, {recording.codec or NONE}: {recording.file_url}"),
        ("trigger", _trigger(recording)),
    ]
    if recording.error:
        fields.append(("error", recording.error))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name.ljust(width)}  {value}")
    return 0


def _start(client: VigilClient, args: argparse.Namespace) -> int:
    recording = client.start_recording(
        args.stream,
        start=args.start,
        end=args.end,
        duration_s=args.duration_s,
        pre_roll_s=args.pre_roll_s,
        post_roll_s=args.post_roll_s,
    )
    what = "extended" if recording.extended else "started"
    until = format_time(recording.end) if recording.end else "stopped"
    line = f"{what} recording {recording.id} of {recording.stream_id} (until {until})"
    print_result(recording, line, as_json=args.json)
    return 0


def _stop(client: VigilClient, args: argparse.Namespace) -> int:
    recording = client.stop_recording(args.stream)
    print_result(
        recording,
        f"stopped recording {recording.id} of {recording.stream_id} ({recording.state}, "
        f"{format_seconds(recording.duration_s)}, {format_bytes(recording.size_bytes)})",
        as_json=args.json,
    )
    return 0


def _download(client: VigilClient, args: argparse.Namespace) -> int:
    result = client.download_recording(args.id, args.output, resume=args.resume)
    line = f"saved {args.id} to {result.path} ({format_bytes(result.size_bytes)}"
    if result.resumed_from_bytes:
        line += f"; resumed after {format_bytes(result.resumed_from_bytes)}"
    if not result.complete:
        line += "; still recording: this is what was written so far"
    print(line + ")")
    return 0


def _rm(client: VigilClient, args: argparse.Namespace) -> int:
    client.delete_recording(args.id)
    print(f"deleted recording {args.id}")
    return 0


def recording_row(recording: RecordingInfo) -> tuple[str, ...]:
    """One table row: the cells under :data:`COLUMNS`."""
    return (
        recording.id,
        recording.stream_id,
        recording.state,
        format_time(recording.start),
        format_seconds(recording.duration_s),
        format_bytes(recording.size_bytes),
        _trigger(recording),
    )


def _trigger(recording: RecordingInfo) -> str:
    trigger = recording.trigger
    return f"{trigger.kind}:{trigger.rule}" if trigger.rule else trigger.kind
