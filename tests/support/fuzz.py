"""Malformed video files for decoder fuzzing: bit flips, truncation, garbage, empty files,
a smashed header and the wrong extension, made from valid clips (H.264 MP4 and MJPEG AVI from
``tests.support.clips.make_clip``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

KINDS = ("bitflip", "truncate", "garbage", "zero", "header", "wrong-extension")


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    """``data`` damaged the way ``kind`` names."""
    n = len(data)
    if kind == "bitflip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 200)):
            i = rng.randrange(n)
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "truncate":
        return data[: rng.randrange(1, n)]
    if kind == "garbage":
        at = rng.randrange(n)
        return data[:at] + rng.randbytes(rng.randint(1, 64 * 1024)) + data[at:]
    if kind == "zero":
        return b""
    if kind == "header":
        return rng.randbytes(rng.randint(16, 4096)) + data[4096:]
    return data  # wrong-extension: the bytes are fine, the name lies


def fuzz_clips(bases: list[Path], count: int, out_dir: Path, seed: int = 0) -> Iterator[Path]:
    """``count`` damaged files (kinds and bases in turn) written under ``out_dir``."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = [b.read_bytes() for b in bases]
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        base = bases[(i // len(KINDS)) % len(bases)]
        suffix = base.suffix
        if kind == "wrong-extension":
            suffix = ".avi" if suffix == ".mp4" else ".mp4"
        path = out_dir / f"fuzz-{i:03d}-{kind}-{base.stem}{suffix}"
        path.write_bytes(mutate(data[bases.index(base)], kind, rng))
        yield path
