"""`vigil serve` under tracemalloc, for finding what grows in a soak.

Writes a snapshot of the Python heap (10 frames per allocation) every ``--every`` seconds
into ``--out``; ``bench/soak.py --tracemalloc DIR`` starts the service through this and
prints what grew between the first settled snapshot and the last. tracemalloc sees only
Python allocations: growth it does not show is native (FFmpeg, gRPC, malloc arenas).

Usage: ``python bench/traced_serve.py --out DIR [--every 120] -- serve --config vigil.yaml``
"""

from __future__ import annotations

import argparse
import threading
import time
import tracemalloc
from pathlib import Path

from vigil.cli import main as vigil_main


def snapshot_every(out: Path, every_s: float) -> None:
    """Dump a filtered snapshot to ``out/snap-NNN.pickle`` every ``every_s`` seconds."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    n = 0
    while True:
        time.sleep(every_s)
        tracemalloc.take_snapshot().filter_traces(ignore).dump(str(out / f"snap-{n:03d}.pickle"))
        n += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--every", type=float, default=120.0)
    parser.add_argument("vigil_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(10)
    threading.Thread(target=snapshot_every, args=(args.out, args.every), daemon=True).start()
    return vigil_main([a for a in args.vigil_args if a != "--"])


if __name__ == "__main__":
    raise SystemExit(main())
