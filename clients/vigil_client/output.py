"""How ``vigilctl`` prints: JSON for machines, tables (rich when installed) for people."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

try:
    from rich.console import Console
    from rich.table import Table
except ImportError:  # rich is optional for the client; plain text then
    Console = None  # type: ignore[assignment,misc]
    Table = None  # type: ignore[assignment,misc]

NONE = "-"
"""What an empty cell shows."""


class _Result(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Give a command ``--json``: print the server's JSON instead of text."""
    parser.add_argument("--json", action="store_true", help="print the server's JSON")


def print_json(data: Any, out: TextIO) -> None:
    """Indented JSON, non-ASCII kept as it is."""
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def print_result(result: _Result, line: str, *, as_json: bool) -> None:
    """Print a command's result on stdout: its JSON with ``--json`` (``as_json``), else
    ``line``."""
    if as_json:
        print_json(result.to_dict(), sys.stdout)
    else:
        print(line)


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: TextIO,
    *,
    numeric: Collection[str] = (),
) -> None:
    """Print rows under ``columns``: a rich table when rich is installed, else aligned text.

    Args:
        columns: Column headings.
        rows: Cells, one string per column.
        out: Where to print.
        numeric: Headings of the columns to right-align (rich only).
    """
    if Console is not None and Table is not None:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in columns:
            justify = "right" if column in numeric else "left"
            table.add_column(column, justify=justify, overflow="fold")
        for row in rows:
            table.add_row(*row)
        Console(file=out, soft_wrap=False).print(table)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for row in (columns, *rows):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def format_bytes(size: int) -> str:
    """``1536`` → ``1.5 KiB``; below 1 KiB, the byte count."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_time(value: datetime | None) -> str:
    """A UTC timestamp to the second, e.g. ``2026-11-21 12:00:05Z`` (``-`` for none)."""
    if value is None:
        return NONE
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_seconds(value: float | None) -> str:
    """``12.25`` → ``12.2 s`` (``-`` for none)."""
    return NONE if value is None else f"{value:.1f} s"
