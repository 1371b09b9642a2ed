"""Tail a Vigil events JSONL file and print one line per detected object.

Vigil's JSONL sink writes DeepStream nvmsgconv messages, one per line; this reads both the
"full" schema (one object per message) and the "minimal" one (all objects of a frame). It uses
only the standard library. Kafka consumption will follow the same shape: one message in, one
line per object out.

Usage:
    python consume_events.py [PATH] [--from-start] [--once]

Output, one line per object:
    2024-01-01T12:00:00.123Z  cam-1  person  0.87  [10,20,110,220]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

# Members of a full-schema "object" that are not a class sub-object.
_OBJECT_MEMBERS = frozenset(
    {"id", "speed", "direction", "orientation", "bbox", "location", "coordinate"}
    | {"signature", "maskoutline"}
)


def describe(message: dict[str, Any]) -> list[str]:
    """Lines ``timestamp sensor class confidence [l,t,r,b]`` for one message."""
    timestamp = message.get("@timestamp", "")
    if "objects" in message:  # minimal schema: "id|left|top|right|bottom|label[|#|...|conf]"
        lines = []
        for text in message["objects"]:
            fields = text.split("|")
            label, box = fields[5], ",".join(fields[1:5])
            if label == "Vehicle" and len(fields) > 7 and fields[7]:
                label = fields[7]  # the vehicle's first attribute slot holds its class
            confidence = fields[-1] if "#" in fields[6:] else "?"
            lines.append(f"{timestamp}  {message.get('sensorId')}  {label}  {confidence}  [{box}]")
        return lines
    obj = message["object"]
    class_key = next(key for key in obj if key not in _OBJECT_MEMBERS)
    sub = obj[class_key]
    label = (sub.get("type") or class_key) if class_key == "vehicle" else class_key
    box = obj["bbox"]
    corners = (box["topleftx"], box["toplefty"], box["bottomrightx"], box["bottomrighty"])
    return [
        f"{timestamp}  {message['sensor']['id']}  {label}  {sub.get('confidence', 0.0):.2f}  "
        f"[{','.join(str(v) for v in corners)}]"
    ]


def follow(path: Path, from_start: bool, once: bool, poll_interval_s: float) -> Iterator[str]:
    """Complete lines appended to ``path``, like ``tail -F``.

    Waits for the file to appear and starts over when it is truncated or replaced (the sink
    recreates the file each time the service starts).
    """
    if not path.exists():
        from_start = True  # everything in a file that appears later is new
    while not path.exists():
        if once:
            return
        time.sleep(poll_interval_s)
    file: TextIO = path.open("r", encoding="utf-8")
    try:
        if not from_start:
            file.seek(0, os.SEEK_END)
        partial = ""
        while True:
            chunk = file.readline()
            if chunk:
                partial += chunk
                if partial.endswith("\n"):  # the writer may be half-way through a line
                    yield partial
                    partial = ""
                continue
            if once:
                return
            time.sleep(poll_interval_s)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if stat.st_ino != os.fstat(file.fileno()).st_ino or stat.st_size < file.tell():
                file.close()
                file = path.open("r", encoding="utf-8")
                partial = ""
    finally:
        file.close()


def main(argv: list[str] | None = None) -> int:
    """Print the events of a JSONL file as they arrive; Ctrl-C to stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="events.jsonl", type=Path)
    parser.add_argument("--from-start", action="store_true", help="print existing events first")
    parser.add_argument("--once", action="store_true", help="stop at the end of the file")
    parser.add_argument("--poll-interval", type=float, default=0.2, metavar="SECONDS")
    args = parser.parse_args(argv)
    try:
        for line in follow(args.path, args.from_start or args.once, args.once, args.poll_interval):
            if not line.strip():
                continue
            try:
                print(*describe(json.loads(line)), sep="\n", flush=True)
            except (ValueError, KeyError, IndexError, StopIteration, TypeError) as e:
                print(f"skipped malformed event ({e!r}): {line.strip()[:120]}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
