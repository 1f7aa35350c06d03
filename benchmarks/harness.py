"""Timing, machine description, targets and the result table shared by the benchmarks.

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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = [
    "Stats",
    "Row",
    "Target",
    "at_least",
    "at_most",
    "exact",
    "report",
    "Benchmark",
    "interleaved",
    "machine_info",
    "load_average",
    "VERDICT",
    "TABLE_HEADER",
    "format_row",
    "format_table",
    "peak_rss_bytes",
]


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


def _num(x: float) -> str:
    """A bound as a reader writes it: 8, 1.3, 60, 1e-5."""
    return f"{x:g}".replace("e-0", "e-")


@dataclass(frozen=True)
class Target:
    """A target written once: the text the table shows and the predicate that decides it.

    Build one with :func:`at_least`, :func:`at_most`, :func:`exact` or :func:`report`, then make its rows
    with :meth:`row`, so that the text can never say something the check does not do.
    """

    text: str
    holds: Callable[[Any, float | None], bool] | None = None  # (judged value, error) -> met; None: report

    def row(
        self,
        id: str,
        case: str,
        metric: str,
        value: float | str,
        details: dict | None = None,
        *,
        err: float | None = None,
        judged: Any = None,
        applies: bool = True,
    ) -> Row:
        """A :class:`Row` showing ``value`` against this target.

        ``err``: the error the target bounds (targets built with ``max_err``). ``judged``: what the
        predicate reads when the shown value is text (default: ``value``). ``applies=False``: show the target
        but give no verdict (e.g. a bound stated for one length, on a row of another length).
        """
        passed = None
        if self.holds is not None and applies:
            passed = bool(self.holds(value if judged is None else judged, err))
        return Row(id, case, metric, value, self.text, passed, details or {})


def at_least(bound: float, unit: str = "x", *, max_err: float | None = None, where: str = "") -> Target:
    """``value >= bound`` (and ``err <= max_err`` when given). ``unit``: "x" (a ratio), "%" or ""."""
    return _bound(">=", bound, unit, max_err, where)


def at_most(bound: float, unit: str = "x", *, where: str = "") -> Target:
    """``value <= bound``. ``where``: the case the bound is stated for, e.g. "@640"."""
    return _bound("<=", bound, unit, None, where)


def _bound(op: str, bound: float, unit: str, max_err: float | None, where: str) -> Target:
    shown = f"{_num(100 * bound)}%" if unit == "%" else f"{_num(bound)}{unit}"
    text = f"{op} {shown}" + (f", rel err <= {_num(max_err)}" if max_err is not None else "")
    text += f" {where}" if where else ""

    def holds(value: float, err: float | None) -> bool:
        if max_err is not None and (err is None or not err <= max_err):
            return False
        return value >= bound if op == ">=" else value <= bound

    return Target(text, holds)


def exact() -> Target:
    """The two numbers in ``judged`` (a pair) are equal."""
    return Target("exact", lambda pair, _err: pair[0] == pair[1])


def report(text: str = "report") -> Target:
    """No verdict: the number is reported (``text`` may say what to expect)."""
    return Target(text)


@dataclass(frozen=True)
class Benchmark:
    """One workload of the suite: the row ids it reports and the function that measures it.

    ``run(quick)`` returns the rows; ``quick=True`` runs toy sizes in seconds (the smoke test).
    """

    ids: tuple[str, ...]
    title: str
    run: Callable[[bool], list[Row]]


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


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a literal | would end the cell


VERDICT = {True: "yes", False: "**no**", None: "-"}  # None: no verdict (report only, or --quick)
TABLE_HEADER = "| id | case | metric | value | target | ok |\n|---|---|---|---|---|---|"


def format_row(row: Row) -> str:
    """One Markdown table line: id, case, metric, value, target, verdict (yes, **no** or -)."""
    cells = (row.id, row.case, row.metric, _fmt(row.value), row.target, VERDICT[row.passed])
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table of ``rows`` under :data:`TABLE_HEADER`."""
    return "\n".join([TABLE_HEADER, *map(format_row, rows)])
