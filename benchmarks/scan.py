"""S1, S2: one layer's selective scan at Hymba's width (I=3200, N=16), B=1, fp32.

S1: the fused CPU scan and the compiled chunked scan (the "auto" choice for L >= 32 with a C++
compiler) against the scan that builds ``exp(dt*A)`` and ``dt*B*x`` as (B, I, L, N) tensors first
(mamba-ssm's reference form); also the time-major (B, L, I, N) variant and the reference loop. S2: the
Blelloch parallel scan against the fused loop (report only: slower on a few CPU cores).

Shapes: x, dt, z (1, L, I); A (I, N); B, C (1, L, N); D (I,).
"""

from __future__ import annotations

import time
from functools import partial

import torch
import torch.nn.functional as F

from minihymba.scan_compiled import selective_scan_compiled
from minihymba.scan_fast import (
    selective_scan_blelloch,
    selective_scan_fused,
    selective_scan_materialized,
)
from minihymba.ssm import selective_scan_ref

from .harness import Benchmark, Row, at_least, at_most, interleaved, report
from .models import REAL

SPEED_UP = at_least(8, max_err=1e-5)  # over the materialising scan, with the same result
FUSED_MS = at_most(60, "", where="@640")  # ms per layer at L=640
BLELLOCH = report("report (< 1 expected on CPU)")


def _scan_inputs(length: int, width: int, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, length, width, generator=g)
    dt = F.softplus(torch.randn(1, length, width, generator=g) - 2)
    A = -torch.exp(torch.randn(width, n, generator=g))
    B, C = torch.randn(1, length, n, generator=g), torch.randn(1, length, n, generator=g)
    D, z = torch.randn(width, generator=g), torch.randn(1, length, width, generator=g)
    return x, dt, A, B, C, D, z


def _max_rel_err(y: torch.Tensor, h: torch.Tensor, y_mat: torch.Tensor, h_mat: torch.Tensor) -> float:
    """Largest error relative to the largest magnitude, over y and h (both reach ~1e2 here)."""
    return max(
        ((y - y_mat).abs().max() / y_mat.abs().max()).item(),
        ((h - h_mat).abs().max() / h_mat.abs().max()).item(),
    )


def run(quick: bool) -> list[Row]:
    """S1 and S2 at L=640 and 2176 (Blelloch at 640 only); ``quick``: I=256, L=64."""
    width, n = (256, 16) if quick else (REAL.d_inner, REAL.ssm_state_size)
    rows = []
    for length in (64,) if quick else (640, 2176):
        args = _scan_inputs(length, width, n)
        with_blelloch = length <= 640
        with torch.no_grad():
            y_mat, h_mat = selective_scan_materialized(*args)
            y_fused, h_fused = selective_scan_fused(*args)
            y_ref, _ = selective_scan_ref(*args)
            started = time.perf_counter()
            y_comp, h_comp = selective_scan_compiled(*args)  # the first call compiles this shape
            compile_s = time.perf_counter() - started
            candidates = {
                "materialized": partial(selective_scan_materialized, *args),
                "fused": partial(selective_scan_fused, *args),
                "compiled": partial(selective_scan_compiled, *args),
                "ref": partial(selective_scan_ref, *args),
                "materialized_time_major": partial(selective_scan_materialized, *args, time_major=True),
            }
            if with_blelloch:
                candidates["blelloch"] = partial(selective_scan_blelloch, *args)
                y_bl, _ = selective_scan_blelloch(*args)
            stats = interleaved(candidates, repeat=3 if quick else 5)
        err = _max_rel_err(y_fused, h_fused, y_mat, h_mat)
        comp_err = _max_rel_err(y_comp, h_comp, y_mat, h_mat)
        rel = ((y_fused - y_ref).norm() / y_ref.norm()).item()
        details = {k: vars(v) for k, v in stats.items()} | {
            "max_rel_err_vs_materialized": err,
            "rel_err_vs_ref": rel,
        }
        best = {k: v.best for k, v in stats.items()}
        case, short = f"L={length} I={width} N={n} fp32", f"L={length}"
        rows += [
            SPEED_UP.row(
                "S1",
                case,
                "fused speed-up vs materialising scan (mamba-ref layout B,I,L,N)",
                best["materialized"] / best["fused"],
                details,
                err=err,
            ),
            SPEED_UP.row(
                "S1",
                case,
                "compiled scan (auto for L >= 32 with a C++ compiler) speed-up vs materialising scan",
                best["materialized"] / best["compiled"],
                {"max_rel_err_vs_materialized": comp_err, "first_call_s": compile_s},
                err=comp_err,
            ),
            FUSED_MS.row("S1", short, "fused ms/layer (best)", 1e3 * best["fused"], applies=length == 640),
            report().row("S1", short, "compiled ms/layer (best)", 1e3 * best["compiled"]),
            report().row(
                "S1",
                short,
                "fused speed-up vs materialising scan, time-major (B,L,I,N) layout",
                best["materialized_time_major"] / best["fused"],
            ),
            report().row(
                "S1", short, "fused speed-up vs ref loop (per-step allocations)", best["ref"] / best["fused"]
            ),
        ]
        if with_blelloch:
            rows.append(
                BLELLOCH.row(
                    "S2",
                    short,
                    "Blelloch speed vs fused (teaching path)",
                    best["fused"] / best["blelloch"],
                    {"max_abs_err_vs_ref": (y_bl - y_ref).abs().max().item()},
                )
            )
    return rows


BENCHMARKS = [Benchmark(("S1", "S2"), "selective scan", run)]
