"""D1, D2: one cached decode step of the 4-layer real-width model after a 512-token prompt, B=1.

D1: against every ``nn.Linear`` (lm_head included) run as a GEMV over one row (the weight-sweep floor).
D2: against re-running the full forward over prompt + 1 tokens (what decoding without a cache pays per
token). fp32 and bf16.

Shapes: prompt ids (1, 512); one step's ids (1, 1).
"""

from __future__ import annotations

from functools import partial

import torch

from .harness import Benchmark, Row, at_least, interleaved, report
from .models import linear_floor, make_model, model_config

NEAR_FLOOR = at_least(0.7, "%")  # decode speed as a fraction of the GEMV-sweep floor's


def run(quick: bool) -> list[Row]:
    """D1 and D2 for each dtype; ``quick``: toy widths, a 32-token prompt."""
    cfg = model_config(quick)
    prompt = 32 if quick else 512
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        model = make_model(cfg, dtype)
        ids = torch.randint(3, cfg.vocab_size, (1, prompt), generator=torch.Generator().manual_seed(0))
        floor = linear_floor(model, 1, 1)
        with torch.no_grad():
            cache = model.new_cache(1)
            model(ids, cache=cache, last_only=True)
            token = ids[:, -1:]
            stats = interleaved({"decode": partial(model, token, cache=cache), "floor": floor}, repeat=10)
            # D2: one new token without the cache costs re-running the whole sequence (a no-cache loop)
            longer = torch.cat([ids, token], dim=1)  # (1, prompt + 1)
            recompute = interleaved(
                {
                    "decode": partial(model, token, cache=cache),
                    "full": partial(model, longer, last_only=True),
                },
                repeat=3,
            )
        name = f"{cfg.num_layers} layers real width + lm_head, {str(dtype)[6:]}"
        details = {k: vars(s) for k, s in stats.items()} | {"tokens_per_s": 1 / stats["decode"].best}
        fraction = stats["floor"].best / stats["decode"].best
        rows.append(NEAR_FLOOR.row("D1", name, "decode speed / GEMV-sweep floor", fraction, details))
        rows.append(
            report().row(
                "D2",
                f"{name}, prompt {prompt}",
                "cached decode step speed-up vs re-running the full forward",
                recompute["full"].best / recompute["decode"].best,
                {k: vars(s) for k, s in recompute.items()},
            )
        )
        del model
    return rows


BENCHMARKS = [Benchmark(("D1", "D2"), "cached decode step", run)]
