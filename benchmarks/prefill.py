"""P1, P2: prefill of the 4-layer real-width model (see :mod:`benchmarks.models`), B=1.

P1: 512 tokens (+128 meta), last-position logits, with the fused scan and the compiled scan (what
``Impl(scan="auto")`` runs there on CPU with a C++ compiler), against every ``nn.Linear`` of the same
model run as a bare ``F.linear`` over 640 rows (the GEMM floor), fp32 and bf16. P2: a 100-token prompt
started from the memoised meta-prefix cache (:func:`minihymba.generation.meta_prefix_cache`) against
recomputing the 128 meta tokens.

Shapes: ids (1, T); logits (1, 1, V).
"""

from __future__ import annotations

from functools import partial

import torch

from minihymba import HymbaForCausalLM
from minihymba.generation import meta_prefix_cache
from minihymba.impl import Impl

from .harness import Benchmark, Row, at_least, at_most, interleaved
from .models import linear_floor, make_model, model_config

NEAR_FLOOR = at_most(1.3)  # prefill time over the GEMM floor
META_MEMO = at_least(1.3)  # speed-up from the memoised meta-prefix cache


def run_prefill(quick: bool) -> list[Row]:
    """P1: prefill of 512 tokens (+128 meta), B=1, last-position logits, vs the same GEMMs alone."""
    cfg = model_config(quick)
    prompt = 32 if quick else 512
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        model = make_model(cfg, dtype)
        ids = torch.randint(3, cfg.vocab_size, (1, prompt), generator=torch.Generator().manual_seed(0))
        floor = linear_floor(model, prompt + cfg.num_meta_tokens, 1)

        def prefill(scan_impl: str, model=model, ids=ids):
            return model(ids, last_only=True, impl=Impl(scan=scan_impl))

        with torch.no_grad():  # the warm-up call compiles the "compiled" scan for this shape
            stats = interleaved(
                {
                    "model": partial(prefill, "fused"),
                    "compiled": partial(prefill, "compiled"),
                    "floor": floor,
                },
                repeat=3,
            )
        name = f"{cfg.num_layers} layers real width, {prompt}+{cfg.num_meta_tokens} tok, {str(dtype)[6:]}"
        details = {k: vars(s) for k, s in stats.items()} | {"attention": "auto"}
        for key, scan in (("model", "fused scan"), ("compiled", "compiled scan (the auto choice)")):
            ratio = stats[key].best / stats["floor"].best
            rows.append(NEAR_FLOOR.row("P1", f"{name}, {scan}", "prefill time / GEMM floor", ratio, details))
        del model
    return rows


def _prefill_fresh(model: HymbaForCausalLM, ids: torch.Tensor):
    return model(ids, cache=model.new_cache(1), last_only=True)  # meta tokens computed again


def _prefill_meta_cached(model: HymbaForCausalLM, ids: torch.Tensor):
    return model(ids, cache=meta_prefix_cache(model, 1), last_only=True)  # meta state copied from the memo


def run_meta_cache(quick: bool) -> list[Row]:
    """P2: a 100-token prompt, B=1, prefill with the memoised meta-prefix cache vs recomputing meta tokens."""
    cfg = model_config(quick)
    prompt = 12 if quick else 100
    rows = []
    for dtype in (torch.bfloat16,) if quick else (torch.float32, torch.bfloat16):
        model = make_model(cfg, dtype)
        ids = torch.randint(3, cfg.vocab_size, (1, prompt), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            meta_prefix_cache(model, 1)  # memoise once, as a long-running server would
            fresh = model(ids, cache=model.new_cache(1), last_only=True).logits
            cached = model(ids, cache=meta_prefix_cache(model, 1), last_only=True).logits
            stats = interleaved(
                {
                    "recompute": partial(_prefill_fresh, model, ids),
                    "meta_cached": partial(_prefill_meta_cached, model, ids),
                },
                repeat=5,
            )
        ratio = stats["recompute"].best / stats["meta_cached"].best
        details = {k: vars(s) for k, s in stats.items()} | {
            "max_abs_logit_diff": (fresh - cached).abs().max().item()
        }
        name = f"{cfg.num_layers} layers real width, {prompt} tok, {str(dtype)[6:]}"
        rows.append(META_MEMO.row("P2", name, "speed-up with memoised meta cache", ratio, details))
        del model
    return rows


BENCHMARKS = [
    Benchmark(("P1",), "prefill vs GEMM floor", run_prefill),
    Benchmark(("P2",), "memoised meta-prefix cache", run_meta_cache),
]
