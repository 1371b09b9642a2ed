"""``vigilctl analytics``: show a stream's rules and counts, load rules from a file, clear."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vigil_client.analytics import StreamAnalyticsInfo
from vigil_client.client import VigilClient
from vigil_client.output import add_json_flag, print_json, print_result, print_table


def register(commands: Any) -> None:
    """Add the ``analytics`` command to ``vigilctl``'s subcommands."""
    analytics = commands.add_parser("analytics", help="a stream's rules and counts")
    actions = analytics.add_subparsers(dest="action", required=True, metavar="ACTION")

    show = actions.add_parser("show", aliases=["get"], help="a stream's rules and counts")
    show.add_argument("stream", metavar="STREAM")
    add_json_flag(show)
    show.set_defaults(handler=_show)

    load = actions.add_parser(
        "load", help="replace a stream's rules with those in a YAML or JSON file (no restart)"
    )
    load.add_argument("stream", metavar="STREAM")
    load.add_argument(
        "file",
        metavar="FILE",
        help="an analytics config (lines:, crowding:, dwell:, rois:, directions:), or a "
        "stream's settings with one under analytics:; .json is read as JSON, else YAML",
    )
    load.add_argument("--reset-counts", action="store_true", help="start every count from zero")
    add_json_flag(load)
    load.set_defaults(handler=_load)

    clear = actions.add_parser("clear", help="remove a stream's rules and counts")
    clear.add_argument("stream", metavar="STREAM")
    clear.set_defaults(handler=_clear)


def _show(client: VigilClient, args: argparse.Namespace) -> int:
    info = client.get_analytics(args.stream)
    if args.json:
        print_json(info.to_dict(), sys.stdout)
    else:
        print_analytics(info)
    return 0


def _load(client: VigilClient, args: argparse.Namespace) -> int:
    info = client.load_analytics_file(args.stream, args.file, reset_counts=args.reset_counts)
    print_result(
        info, f"{info.stream}: loaded {_rules_text(info)} from {args.file}", as_json=args.json
    )
    return 0


def _clear(client: VigilClient, args: argparse.Namespace) -> int:
    client.clear_analytics(args.stream)
    print(f"{args.stream}: analytics removed")
    return 0


def print_analytics(info: StreamAnalyticsInfo) -> None:
    """The rules, then one table per kind of count."""
    if info.config is None:
        print(f"{info.stream}: no analytics")
        return
    print(f"{info.stream}: {_rules_text(info)}")
    counts = info.counts
    out = sys.stdout
    if counts.lines:
        rows = [
            (
                line,
                str(counts.crossings(line, "in")),
                str(counts.crossings(line, "out")),
                _by_class(directions),
            )
            for line, directions in counts.lines.items()
        ]
        print_table(("LINE", "IN", "OUT", "BY CLASS"), rows, out, numeric={"IN", "OUT"})
    if counts.crowding:
        rows = [
            (
                zone,
                str(c.get("count", 0)),
                "yes" if c.get("raised") else "no",
                str(c.get("episodes", 0)),
            )
            for zone, c in counts.crowding.items()
        ]
        columns = ("CROWDING ZONE", "NOW", "RAISED", "EPISODES")
        print_table(columns, rows, out, numeric={"NOW", "EPISODES"})
    if counts.dwell:
        rows = [
            (zone, str(d.get("inside", 0)), str(d.get("exceeded", 0)))
            for zone, d in counts.dwell.items()
        ]
        print_table(("DWELL ZONE", "INSIDE", "EXCEEDED"), rows, out, numeric={"INSIDE", "EXCEEDED"})
    if counts.rois:
        rows = [(roi, str(n)) for roi, n in counts.rois.items()]
        print_table(("ROI", "INSIDE"), rows, out, numeric={"INSIDE"})


def _rules_text(info: StreamAnalyticsInfo) -> str:
    names = info.rule_names()
    if not names:
        return "no rules"
    return "; ".join(f"{kind}: {', '.join(found)}" for kind, found in names.items())


def _by_class(directions: Any) -> str:
    """``in 0=3 2=1, out 0=1`` (class ids as the model numbers them)."""
    parts = []
    for direction in ("in", "out"):
        by_class = directions.get(direction) or {}
        if by_class:
            cells = " ".join(f"{cls}={n}" for cls, n in sorted(by_class.items()))
            parts.append(f"{direction} {cells}")
    return ", ".join(parts)
