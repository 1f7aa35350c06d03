"""A1: one layer of sliding-window attention (W=1024, 128 meta tokens) at the real head geometry.

H=25 query heads, Hkv=5, Dk=64 != Dv=128, B=1, at L=640 and 4224, fp32 and bf16. Candidates: naive SDPA
with a dense mask (Dk != Dv sends CPU SDPA to its math path), q/k-padded SDPA with the same mask, padded
SDPA with the kernel's own causal mask where the mask is plain causal (L <= W + M + 1: what the model runs
then), and compiled FlexAttention over a BlockMask built from the same mask_mod (compiled once per shape
and dtype; the compile time goes into the JSON, not into the ratio).

Shapes: q (1, H, L, Dk); k (1, Hkv, L, Dk); v (1, Hkv, L, Dv); dense mask (1, L, L).
"""

from __future__ import annotations

import math
import time
import warnings
from functools import partial

import torch
import torch.nn.functional as F

from minihymba.attention import attention_flex, attention_sdpa
from minihymba.masks import materialize, positional_mask_mod, to_block_mask

from .harness import Benchmark, Row, at_least, interleaved, report
from .models import REAL

PADDED = at_least(2)  # padded SDPA (dense or causal mask) over the naive call
FLEX = at_least(2, where="@4224 bf16")  # compiled flex over padded SDPA, held at L=4224 in bf16 only


def _naive_sdpa(q, k, v, mask, scale):
    """SDPA as one would first write it: dense mask, Dk=64 != Dv=128 (CPU falls back to the math path)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=scale, enable_gqa=True)


def run(quick: bool) -> list[Row]:
    """A1 rows for each length and dtype; ``quick``: H=5, Hkv=1, Dk=16, Dv=32, W=32, M=8, L=128, no flex."""
    h, h_kv, dk, dv = (
        (5, 1, 16, 32) if quick else (REAL.num_heads, REAL.num_kv_heads, REAL.head_dim, REAL.v_head_dim)
    )
    window, n_meta = (32, 8) if quick else (REAL.sliding_window, REAL.num_meta_tokens)
    with_flex = not quick  # compiling takes 5-30 s per shape and dtype
    rows = []
    scale = 1 / math.sqrt(dk)
    for length in (128,) if quick else (640, 4224):
        pos = torch.arange(length)[None]
        mod = positional_mask_mod(pos, pos, torch.ones(1, length, dtype=torch.bool), window, n_meta)
        dense = materialize(mod, length, length, 1)
        block = to_block_mask(mod, length, length, 1)
        plain_causal = length - n_meta - 1 <= window  # the SWA mask is lower-triangular here
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            q = torch.randn(1, h, length, dk, generator=g).to(dtype)
            k = torch.randn(1, h_kv, length, dk, generator=g).to(dtype)
            v = torch.randn(1, h_kv, length, dv, generator=g).to(dtype)
            name = f"L={length} {str(dtype).removeprefix('torch.')}"
            candidates = {
                "naive": partial(_naive_sdpa, q, k, v, dense, scale),
                "padded": partial(attention_sdpa, q, k, v, dense, scale),
            }
            if plain_causal:  # what the model runs then: padded SDPA with the kernel's own causal mask
                candidates["causal"] = partial(attention_sdpa, q, k, v, None, scale)
            compile_s = None
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = _naive_sdpa(q.float(), k.float(), v.float(), dense, scale)
                if with_flex:
                    start = time.perf_counter()
                    flex_out = attention_flex(q, k, v, block, scale, compiled=True)
                    compile_s = time.perf_counter() - start
                    candidates["flex"] = partial(attention_flex, q, k, v, block, scale, compiled=True)
                stats = interleaved(candidates, repeat=3)
                pad_err = (attention_sdpa(q, k, v, dense, scale).float() - ref).abs().max().item()
            details = {k: vars(s) for k, s in stats.items()} | {
                "padded_max_abs_err": pad_err,
                "flex_compile_s": compile_s,
            }
            best = {k: s.best for k, s in stats.items()}
            rows.append(
                PADDED.row(
                    "A1", name, "padded SDPA speed-up vs naive SDPA", best["naive"] / best["padded"], details
                )
            )
            if plain_causal:
                causal_err = (attention_sdpa(q, k, v, None, scale).float() - ref).abs().max().item()
                rows.append(
                    PADDED.row(
                        "A1",
                        name,
                        "causal-kernel padded SDPA (the mask is plain causal) vs naive",
                        best["naive"] / best["causal"],
                        {"max_abs_err": causal_err},
                    )
                )
            if with_flex:
                gated = length >= 4096 and dtype == torch.bfloat16
                rows.append(
                    (FLEX if gated else report()).row(
                        "A1",
                        name,
                        "compiled flex speed-up vs padded SDPA",
                        best["padded"] / best["flex"],
                        {
                            "flex_max_abs_err": (flex_out.float() - ref).abs().max().item(),
                            "compile_s": compile_s,
                        },
                    )
                )
            else:
                rows.append(report().row("A1", name, "compiled flex", "skipped in --quick"))
    return rows


BENCHMARKS = [Benchmark(("A1",), "attention", run)]
