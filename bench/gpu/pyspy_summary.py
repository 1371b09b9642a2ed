"""Summarize a py-spy ``--gil --threads --format raw`` profile (what ``bench.py --pyspy``
writes): how much of the run each thread held the GIL, and the functions it held it in.

Usage: python bench/gpu/pyspy_summary.py pyspy-c-threaded.txt --seconds 17 [--rate 200]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_THREAD = re.compile(r"^(?:process \d+:\"[^\"]*\";)?thread \((0x[0-9a-fA-F]+)\)")


#: Components, by a path in the stack (the innermost match wins: parse inside a stage is
#: parse)
COMPONENTS = (
    ("vigil/track/", "tracking"),
    ("vigil/parsers/", "parse"),
    ("vigil/analytics/", "analytics"),
    ("vigil/events/", "events"),
    ("vigil/plugins/", "plugins"),
    ("vigil/preprocess/", "preprocess"),
    ("vigil/sources/", "decode"),
    ("vigil/infer/", "inference client"),
    ("grpc/", "inference client"),
    ("vigil/pipeline/", "pipeline"),
    ("asyncio/", "asyncio"),
)


def component(frames: list[str]) -> str:
    """The component a sample's innermost recognised frame belongs to."""
    for frame in reversed(frames):
        for needle, name in COMPONENTS:
            if needle in frame:
                return name
    return "other"


def summarize(text: str) -> tuple[Counter[str], Counter[tuple[str, str]], int]:
    """Samples per thread, per (thread kind, component) and per (thread kind, leaf-most
    frame) together, and in all.

    A thread's kind is named by the outermost frame that says what it runs (a decoder
    thread, the event loop, a worker thread), so threads of one kind add up.
    """
    by_thread: Counter[str] = Counter()
    by_frame: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        kind = _kind(frames)
        by_thread[kind] += count
        by_frame[(kind, _leaf(frames))] += count
        by_frame[(kind, "[" + component(frames) + "]")] += count
        total += count
    return by_thread, by_frame, total


def _kind(frames: list[str]) -> str:
    # py-spy names the thread first: "thread (tid): name"; Vigil's threads are named
    # decode-<stream>, preprocess_N, stages_N, MainThread (the event loop)
    named = re.match(r"thread \(\w+\): (.+)", frames[0])
    if named:
        name = named.group(1)
        if name.startswith("decode-"):
            return "decode threads"
        return re.sub(r"_\d+$", "", name)
    text = ";".join(frames)
    for needle, name in (
        ("_threaded_frames", "decoder threads (NVDEC fetch)"),
        ("nvdec.py", "decoder threads (NVDEC)"),
        ("sources/", "decoder threads (other)"),
        ("run_forever", "event loop"),
        ("_worker (concurrent/futures", "worker threads"),
    ):
        if needle in text:
            return name
    return "other"


def _leaf(frames: list[str]) -> str:
    """The innermost frame (function and file), without the line number."""
    leaf = frames[-1]
    return re.sub(r":\d+\)$", ")", leaf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--seconds", type=float, required=True, help="wall time sampled")
    parser.add_argument("--rate", type=float, default=200.0, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    by_thread, by_frame, total = summarize(args.profile.read_text())
    ticks = args.seconds * args.rate
    print(f"GIL held in {total / ticks:.0%} of the samples' time ({total} samples)")
    for kind, n in by_thread.most_common():
        print(f"  {kind:<34} {n / ticks:6.1%} of the wall time ({n / total:.0%} of GIL time)")
    print("by component (thread, [component]):")
    for (kind, leaf), n in by_frame.most_common():
        if leaf.startswith("[") and n / ticks >= 0.002:
            print(f"  {n / ticks:6.1%}  {kind:<30} {leaf}")
    print(f"top {args.top} innermost frames holding the GIL:")
    frames = [(k, n) for k, n in by_frame.most_common() if not k[1].startswith("[")]
    for (kind, leaf), n in frames[: args.top]:
        print(f"  {n / ticks:6.1%}  {kind:<30} {leaf}")


if __name__ == "__main__":
    main()
