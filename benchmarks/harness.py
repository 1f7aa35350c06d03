"""Timing, machine description and the result table shared by the benchmarks.

Every comparison is timed side by side in one process: after one warm-up call each, the candidates run
interleaved (A B, then B A, ...) so that a change of machine load hits all of them alike, and each reports
its best and median time. Absolute times on a shared machine move 1.5-4x with load; the ratios measured in
the same run are the numbers to read.

Shapes: none (times in seconds).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

__all__ = ["Stats", "Row", "interleaved", "machine_info", "format_table", "peak_rss_bytes"]


@dataclass
class Stats:
    """Best and median of repeated timings, in seconds."""

    best: float
    median: float
    runs: int

    @staticmethod
    def of(times: list[float]) -> Stats:
        return Stats(min(times), statistics.median(times), len(times))


@dataclass
class Row:
    """One line of the result table: a measured ratio and the target it is held to."""

    id: str
    case: str
    metric: str
    value: float | str | None
    target: str = ""
    passed: bool | None = None  # None: report only
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def interleaved(
    candidates: dict[str, Callable[[], object]], repeat: int, warmup: int = 1
) -> dict[str, Stats]:
    """Time each zero-argument callable ``repeat`` times, alternating the order every round."""
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeat):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return {name: Stats.of(t) for name, t in times.items()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict:
    """CPU model, core and thread counts, memory, torch version, load average (call at start and end)."""
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            mem_gb = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": mem_gb,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "loadavg": load_average(),
    }


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size (VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def format_table(rows: list[Row]) -> str:
    """A Markdown table: id, case, metric, value, target, verdict."""
    lines = ["| id | case | metric | value | target | ok |", "|---|---|---|---|---|---|"]
    verdict = {True: "yes", False: "**no**", None: ""}
    for r in rows:
        lines.append(
            f"| {r.id} | {r.case} | {r.metric} | {_fmt(r.value)} | {r.target} | {verdict[r.passed]} |"
        )
    return "\n".join(lines)
