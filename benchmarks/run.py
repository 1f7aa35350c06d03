"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [--only ID ...] [--json out.json]``.

Each benchmark compares minihymba with a baseline or a physical floor measured in the same process:

    S1  fused CPU scan and its compiled-chunk variant vs the scan that materialises (B, L, I, N) tensors
    S2  Blelloch parallel scan vs the fused loop (report only: slower on a few CPU cores)
    A1  attention: naive SDPA (Dk != Dv) vs q/k-padded SDPA vs compiled FlexAttention, real head geometry
    P1  prefill of 512 tokens (+128 meta) vs the same GEMMs alone (the floor), fp32 and bf16
    P2  100-token prompt with the memoised meta-token cache vs recomputing the meta tokens
    D1  cached decode tokens/s vs one GEMV sweep over the same weights (the floor), fp32 and bf16
    D2  one cached decode step vs re-running the full forward over prompt + 1 (what a no-cache loop pays)
    C1  cache bytes after an 8k prompt + 1 step: measured == formula; ratio to no-SWA/no-sharing
    L1  loading a real-shape 1.5B bf16 checkpoint: time vs reading its bytes, peak RSS vs its bytes
    T1  one AdamW step of an 8M-param Hymba (fused / compiled scan) vs the GEMM floor of fwd + bwd

S1/S2 and D1/D2 share one workload each: ``--only S2`` measures S1 too and shows the S2 rows.
``--quick`` runs every benchmark at toy sizes (the smoke test); its numbers mean nothing and get no
verdict. The table goes to stdout as Markdown, row by row as each benchmark ends; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from .harness import TABLE_HEADER, Benchmark, format_row, load_average, machine_info

# One module per workload, each with BENCHMARKS = [Benchmark(ids, title, run)]; run in this order.
MODULES = (
    "scan",  # S1, S2
    "attention",  # A1
    "prefill",  # P1, P2
    "decode",  # D1, D2
    "cache",  # C1
    "load",  # L1
    "train_step",  # T1
)


def all_benchmarks() -> list[Benchmark]:
    """Every registered benchmark, in run order."""
    return [b for name in MODULES for b in importlib.import_module(f".{name}", __package__).BENCHMARKS]


def select(benchmarks: list[Benchmark], only: list[str]) -> tuple[list[Benchmark], set[str]]:
    """The benchmarks to run for ``--only`` (ids, space- or comma-separated; none: all) and the row ids to
    show. A benchmark runs when any of its ids is asked for (S2 runs the S1 workload too)."""
    known = [i for b in benchmarks for i in b.ids]
    wanted = {i.strip() for item in only for i in item.split(",") if i.strip()} or set(known)
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(f"unknown benchmark ids {unknown}; choose from {known}")
    return [b for b in benchmarks if wanted & set(b.ids)], wanted


def _parser(ids: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="toy sizes, no verdicts (the smoke test)")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="ID",
        help=f"run only these benchmarks (space- or comma-separated): {' '.join(ids)}",
    )
    parser.add_argument("--json", type=Path, help="write machine info, timings and every row here")
    return parser


def main(argv: list[str] | None = None) -> int:
    benchmarks = all_benchmarks()
    known = [i for b in benchmarks for i in b.ids]
    parser = _parser(known)
    args = parser.parse_args(argv)
    try:
        chosen, wanted = select(benchmarks, args.only)
    except ValueError as err:
        parser.error(str(err))
    info = machine_info()
    print(f"# machine: {json.dumps(info)}", flush=True)
    if args.quick:
        print("# --quick: toy sizes, the numbers mean nothing and get no verdict (ok: -)\n", flush=True)
    print(TABLE_HEADER, flush=True)
    rows, timings = [], {}
    start = time.perf_counter()
    for bench in chosen:
        label = "+".join(bench.ids)
        print(f"running {label} ({bench.title}) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        new_rows = [row for row in bench.run(args.quick) if row.id in wanted]
        timings[label] = time.perf_counter() - t0
        for row in new_rows:
            if args.quick:  # toy sizes: the targets do not apply
                row.passed = None
            print(format_row(row), flush=True)
        rows += new_rows
    info["loadavg_end"] = load_average()
    info["wall_seconds"] = {**timings, "total": time.perf_counter() - start}
    per_bench = ", ".join(f"{label} {s:.1f}" for label, s in timings.items())
    print(f"\nwall time (s): {per_bench}; total {info['wall_seconds']['total']:.0f}")
    print(f"loadavg start {info['loadavg']} end {info['loadavg_end']}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "quick": args.quick, "rows": [r.as_dict() for r in rows]},
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
