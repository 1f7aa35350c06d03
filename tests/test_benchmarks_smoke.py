"""Smoke test of the benchmark suite: ``python -m benchmarks.run --quick`` runs end to end (toy sizes).

Only checks that every benchmark runs and reports well-formed rows; the quick numbers mean nothing and no
timing is asserted. The correctness parts the benchmarks print (cache bytes == formula) are checked, and
so is the printed table: one valid Markdown table with every verdict cell filled. The table helpers, the
targets (text and check from one definition) and ``--only`` are tested without running anything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import VERDICT, Row, at_least, at_most, exact, format_table, report
from benchmarks.run import all_benchmarks, select

ROOT = Path(__file__).resolve().parent.parent
IDS = {"S1", "S2", "A1", "P1", "P2", "D1", "D2", "C1", "L1", "T1"}


def table_lines(text: str) -> list[str]:
    """The lines of the one Markdown table in ``text``; fails unless they are contiguous."""
    lines = text.splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("|")]
    assert rows, "no table printed"
    assert rows == list(range(rows[0], rows[-1] + 1)), "the table is interrupted by other lines"
    return lines[rows[0] : rows[-1] + 1]


def cells(line: str) -> list[str]:
    """The cells of one table line (``\\|`` is a literal bar inside a cell)."""
    assert line.startswith("|") and line.endswith("|"), f"text outside the table cells: {line!r}"
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]


def check_table(text: str) -> list[list[str]]:
    """Header, separator and six filled cells in every row; returns the rows' cells."""
    header, separator, *body = table_lines(text)
    assert cells(header) == ["id", "case", "metric", "value", "target", "ok"]
    assert cells(separator) == ["---"] * 6
    parsed = [cells(line) for line in body]
    for row in parsed:
        assert len(row) == 6, row
        assert all(row), f"empty cell in {row}"
        assert row[5] in VERDICT.values(), row
    return parsed


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_quick_suite_runs_and_writes_json(quick_run):
    _, report_ = quick_run
    assert report_["quick"] is True
    assert {"cpu", "torch", "torch_threads", "loadavg", "loadavg_end"} <= set(report_["machine"])
    assert {row["id"] for row in report_["rows"]} == IDS
    assert all(row["passed"] is None for row in report_["rows"])  # no verdicts at toy sizes
    cache = next(r for r in report_["rows"] if r["id"] == "C1" and "formula" in r["metric"])["details"]
    assert cache["measured"] == cache["formula_kv"] + cache["formula_state"]


def test_quick_suite_prints_one_markdown_table_with_the_ok_column_filled(quick_run):
    proc, report_ = quick_run
    rows = check_table(proc.stdout)
    assert [r[0] for r in rows] == [r["id"] for r in report_["rows"]]  # every row, once, in order
    assert {r[5] for r in rows} == {VERDICT[None]}  # --quick: no verdict, said the same way everywhere
    assert "wall time (s): S1+S2 " in proc.stdout


def test_format_table_is_valid_markdown_with_every_verdict():
    rows = [
        Row("S1", "L=640", "a ratio", 8.26, ">= 8x", True),
        Row("A1", "L=640 | bf16", "another", 1.75, ">= 2x", False),
        Row("D2", "x", "reported", 28.4, "report", None),
        Row("C1", "y", "bytes", "1 vs 1", "exact", True),
    ]
    parsed = check_table(format_table(rows))
    assert [r[5] for r in parsed] == ["yes", "**no**", "-", "yes"]
    assert parsed[1][1] == r"L=640 \| bf16"  # the bar inside a cell is escaped


def test_targets_show_what_they_check():
    speed = at_least(8, max_err=1e-5)
    assert speed.text == ">= 8x, rel err <= 1e-5"
    assert speed.row("S1", "c", "m", 8.0, err=1e-7).passed is True
    assert speed.row("S1", "c", "m", 7.99, err=1e-7).passed is False
    assert speed.row("S1", "c", "m", 9.0, err=2e-5).passed is False
    fraction = at_least(0.7, "%")
    assert fraction.text == ">= 70%"
    assert fraction.row("D1", "c", "m", 0.69).passed is False
    per_layer = at_most(60, "", where="@640")
    assert per_layer.text == "<= 60 @640"
    assert per_layer.row("S1", "c", "m", 59.0).passed is True
    assert per_layer.row("S1", "c", "m", 61.0).passed is False
    assert per_layer.row("S1", "c", "m", 1.0, applies=False).passed is None
    assert at_most(1.3).row("P1", "c", "m", 1.31).passed is False
    assert exact().row("C1", "c", "m", "1 vs 2", judged=(1, 2)).passed is False
    assert exact().row("C1", "c", "m", "2 vs 2", judged=(2, 2)).passed is True
    assert report("report (~6.2x)").row("C1", "c", "m", 6.2).passed is None


def test_every_documented_id_can_be_chosen_alone():
    benchmarks = all_benchmarks()
    assert {i for b in benchmarks for i in b.ids} == IDS
    for bench_id in IDS:
        chosen, wanted = select(benchmarks, [bench_id])
        assert wanted == {bench_id}
        assert [bench_id in b.ids for b in chosen] == [True], bench_id
    chosen, wanted = select(benchmarks, ["S1,A1"])
    assert wanted == {"S1", "A1"} and len(chosen) == 2
    assert select(benchmarks, ["S2", "D2"])[1] == {"S2", "D2"}
    assert select(benchmarks, [])[0] == benchmarks


def test_unknown_benchmark_id_is_rejected():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--only", "Z9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "unknown benchmark ids" in proc.stderr
