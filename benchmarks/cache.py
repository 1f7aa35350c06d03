"""C1: cache bytes after an 8k-token prompt + one decode step, real 1.5B cache geometry, bf16, B=1.

Every cache tensor's shape depends only on layer roles, Hkv, Dk, Dv, I, N and K. The MLP width and the
vocabulary size do not enter it, so the model run here is the real 32-layer config with the MLP removed
(intermediate_size=0) and a 512-token vocabulary -- identical cache geometry, 40 % of the weights. The
prompt is fed in 1024-token chunks through the cached forward (the result is the same cache a single
prefill gives; chunking only bounds the memory of the global layers' attention). Measured bytes are
compared with :func:`minihymba.memory.cache_bytes`; the hub's untrimmed cache is computed, not run.
"""

from __future__ import annotations

import time

import torch

from minihymba.memory import cache_bytes, cache_variants

from .harness import Benchmark, Row, exact, report
from .models import REAL, make_model, model_config


def run(quick: bool) -> list[Row]:
    """C1 rows; ``quick``: the toy 4-layer config, a 64-token prompt in 16-token chunks."""
    cfg = REAL.replace(intermediate_size=0, vocab_size=512)
    chunk, prompt = (1024, 8192)
    if quick:
        cfg = model_config(True).replace(intermediate_size=0)
        chunk, prompt = (16, 64)
    model = make_model(cfg, torch.bfloat16)
    ids = torch.randint(3, cfg.vocab_size, (1, prompt + 1), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.no_grad():
        cache = model.new_cache(1)
        for i in range(0, prompt, chunk):
            model(ids[:, i : i + chunk], cache=cache, last_only=True)
        model(ids[:, prompt:], cache=cache)  # one decode step
    seconds = time.perf_counter() - start
    measured = cache.nbytes()
    measured_kv = sum(e.keys.nbytes + e.values.nbytes for e in cache.kv if e is not None)
    formula = cache_bytes(cfg, prompt + 1, dtype=torch.bfloat16)
    variants = cache_variants(cfg, prompt + 1, dtype=torch.bfloat16)
    full = variants["no_swa_no_sharing"]
    # The hub keeps every KV layer's cache untrimmed until the first decode step: M + T entries in each.
    entry = cfg.num_kv_heads * (cfg.head_dim + cfg.v_head_dim) * 2
    owners = sum(cfg.owns_kv(i) for i in range(cfg.num_layers))
    hub_untrimmed = owners * (cfg.num_meta_tokens + prompt) * entry
    name = f"T={prompt}+1, M={cfg.num_meta_tokens}, bf16, {cfg.num_layers} layers"
    details = {
        "measured": measured,
        "formula_kv": formula.kv_bytes,
        "formula_state": formula.state_bytes,
        "variants": {k: v.total for k, v in variants.items()},
        "hub_untrimmed_kv_after_prefill": hub_untrimmed,
        "fill_seconds": seconds,
        "kv_lengths": cache.kv_lengths(),
    }
    rows = [
        exact().row(
            "C1",
            name,
            "measured bytes == formula",
            f"{measured:,} vs {formula.total:,}",
            details,
            judged=(measured, formula.total),
        ),
        report("78.9 (paper: 79)").row("C1", name, "KV MB (decimal), measured", measured_kv / 1e6),
        report("report (~6.2x)").row(
            "C1", name, "all-global, unshared / Hymba (KV+state)", full.total / measured
        ),
        report("reference: 271.6").row("C1", name, "hub after prefill, untrimmed KV MB", hub_untrimmed / 1e6),
    ]
    del model
    return rows


BENCHMARKS = [Benchmark(("C1",), "cache bytes", run)]
