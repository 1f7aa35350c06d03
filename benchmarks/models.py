"""The model workloads several benchmarks share (P1, P2, D1, D2, C1, L1).

``REAL`` is the real Hymba-1.5B geometry. :func:`model_config` keeps its widths but runs 4 layers (first and
last global, layers 1-2 an SWA producer/consumer pair): the 32-layer model in fp32 leaves little of a 23 GiB
machine for the rest. :func:`linear_floor` runs the same weights as bare ``F.linear`` calls: the GEMM
(prefill) or GEMV (decode) floor a forward pass is compared with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from minihymba import HymbaConfig, HymbaForCausalLM

__all__ = ["REAL", "model_config", "make_model", "linear_floor"]

REAL = HymbaConfig()  # the real Hymba-1.5B geometry


def model_config(quick: bool, num_layers: int = 4) -> HymbaConfig:
    """Real widths, fewer layers: first and last global, layers 1-2 an SWA producer-consumer pair."""
    if quick:
        return REAL.replace(
            hidden_size=64,
            num_heads=4,
            num_kv_heads=2,
            intermediate_size=96,
            dt_rank=8,
            vocab_size=500,
            num_layers=4,
            global_layers=(0, 3),
            kv_share_groups=((1, 2),),
            num_meta_tokens=8,
            sliding_window=16,
        )
    return REAL.replace(num_layers=num_layers, global_layers=(0, num_layers - 1), kv_share_groups=((1, 2),))


def make_model(cfg: HymbaConfig, dtype: torch.dtype) -> HymbaForCausalLM:
    """A seeded random model of ``cfg`` in ``dtype``, in eval mode."""
    model = HymbaForCausalLM(cfg)
    model.reset_parameters(seed=0)
    return model.to(dtype).eval()


def linear_floor(model: HymbaForCausalLM, rows: int, head_rows: int) -> Callable[[], None]:
    """A callable running every nn.Linear of ``model`` as a bare F.linear over ``rows`` input rows (lm_head:
    ``head_rows``): the GEMM (rows > 1) or GEMV (rows = 1) floor of a forward pass."""
    dtype = model.dtype
    jobs = []
    inputs: dict[tuple[int, int], torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            n = head_rows if name == "lm_head" else rows
            key = (n, module.in_features)
            if key not in inputs:
                inputs[key] = torch.randn(n, module.in_features).to(dtype)
            jobs.append((inputs[key], module.weight))

    def floor() -> None:
        for x, weight in jobs:
            F.linear(x, weight)

    return floor
