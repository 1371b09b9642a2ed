"""Figures of the GPU benchmark: the median of repeated runs with their spread, and the model's
request counts by origin. No torch here, so the arithmetic is tested on any host
(tests/unit/test_gpu_bench_stats.py)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Request ids of the naive client start with this (the model counts requests by origin).
NAIVE_REQUEST_ID = "naive-"


@dataclass
class Row:
    """One measured run of one configuration. All rates are frames over wall-clock seconds
    (``time.perf_counter``), for (a), (b) and (c) alike."""

    name: str
    frames: int
    seconds: float
    gpu_util: float | None = None
    nvdec_util: float | None = None
    cpu_cores: float | None = None
    extra: dict[str, float | str] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Spread:
    """The median of some runs and their minimum and maximum."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, fmt: str = ",.0f") -> str:
        """``median (min–max)``, or just the value of a single run."""
        if self.runs <= 1:
            return format(self.median, fmt)
        return f"{self.median:{fmt}} ({self.low:{fmt}}–{self.high:{fmt}})"


def spread(values: Sequence[float | None]) -> Spread:
    """The spread of the values that are known."""
    return Spread.of([v for v in values if v is not None])


def ratios(numerators: Sequence[Row], denominators: Sequence[Row]) -> Spread:
    """Run-by-run ratios of frame rates (run i of one over run i of the other); with unequal
    counts, every pair (the spread then covers all combinations)."""
    if len(numerators) == len(denominators):
        pairs = list(zip(numerators, denominators, strict=True))
    else:
        pairs = [(n, d) for n in numerators for d in denominators]
    return Spread.of([n.fps / d.fps for n, d in pairs if d.fps])


def summary_ratios(
    runs: dict[str, list[Row]], modes: Sequence[str], headline: str
) -> dict[str, dict[str, float]]:
    """The ratios the benchmark reports, each a :class:`Spread` as a dict: (b)/(a), (c)/(a)
    whole and steady per NVDEC mode, and (c)/(d) against both naive clients (with (c) in
    the ``headline`` mode)."""
    a = runs["a"]
    out = {"b_over_a": asdict(ratios(runs["b"], a))}
    for mode in modes:
        out[f"c_{mode}_over_a"] = asdict(ratios(runs[f"c-{mode}"], a))
        out[f"c_steady_{mode}_over_a"] = asdict(ratios(runs[f"c-steady-{mode}"], a))
    out["c_over_d"] = asdict(ratios(runs[f"c-{headline}"], runs["d-loop"]))
    out["c_over_d_threads"] = asdict(ratios(runs[f"c-{headline}"], runs["d-threads"]))
    return out


@dataclass(frozen=True)
class OriginCounts:
    """Requests the model saw, by origin, from the counts files of its instances."""

    vigil_requests: int
    vigil_cpu_inputs: int
    naive_requests: int
    naive_cpu_inputs: int
    instances: int


def read_origin_counts(directory: Path) -> OriginCounts:
    """Sum the ``counts-*.json`` files that the model's instances write anywhere under
    ``directory`` (``{"vigil": [requests, with CPU inputs], "naive": [...]}``). Counted at
    the source by request id, so no figure is derived by subtraction and none can go
    negative."""
    totals = {"vigil": [0, 0], "naive": [0, 0]}
    files = sorted(directory.rglob("counts-*.json"))
    for path in files:
        data = json.loads(path.read_text())
        for origin, (requests, cpu) in data.items():
            slot = totals.setdefault(origin, [0, 0])
            slot[0] += int(requests)
            slot[1] += int(cpu)
    return OriginCounts(*totals["vigil"], *totals["naive"], len(files))
