"""Smoke test of the benchmark suite: ``python -m benchmarks.run --quick`` runs end to end (toy sizes).

Only checks that every benchmark runs and reports well-formed rows; the quick numbers mean nothing and no
timing is asserted. The correctness parts the benchmarks print (cache bytes == formula) are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_suite_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert {"cpu", "torch", "torch_threads", "loadavg", "loadavg_end"} <= set(report["machine"])
    ids = {row["id"] for row in report["rows"]}
    assert ids == {"S1", "S2", "A1", "P1", "D1", "D2", "C1", "P2", "L1"}
    assert all(row["passed"] is None for row in report["rows"])  # no verdicts at toy sizes
    cache = next(r for r in report["rows"] if r["id"] == "C1" and "formula" in r["metric"])["details"]
    assert cache["measured"] == cache["formula_kv"] + cache["formula_state"]
    assert "| S1 |" in proc.stdout  # the table is printed


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
