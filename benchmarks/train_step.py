"""T1: one AdamW training step of an 8M-parameter Hymba against the GEMM floor of its forward + backward.

The model is the ``"text"`` training preset (:func:`minihymba.train.tiny_model_config`) at d = 256, 6
layers, vocabulary 4096, batch 16 x 256 tokens (+ meta tokens), float32. One step = forward, cross-entropy
over every position, backward, gradient clipping, ``AdamW.step``. It runs with the scan ``"fused"`` (the
hand-written eager backward) and ``"compiled"`` (:mod:`minihymba.scan_compiled`: chunked, compiled forward
and backward; its one-time compile happens in the warm-up call and is reported, not timed).

The floor, measured in the same process: for every 2-D weight the step multiplies by -- every
``nn.Linear``, the tied LM head once -- its forward GEMM ``x W^T`` and the two backward GEMMs ``gy W`` and
``gy^T x``, at the step's rows (B x (T + M) for the layers, B x T for the head, which drops the meta
positions). The target is a step within 3x of that.

Shapes: ids, targets (B, T); logits (B, T, V).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from minihymba import HymbaForCausalLM
from minihymba.impl import Impl
from minihymba.scan_compiled import compiled_scan_available
from minihymba.train import TrainConfig, tiny_model_config

from .harness import Benchmark, Row, at_most, interleaved, report

NEAR_FLOOR = at_most(3)  # training step time over the GEMM floor of forward + backward


def train_config(quick: bool) -> TrainConfig:
    """The T1 model's training config (``quick``: d 64, 2 layers, 4 x 64 tokens)."""
    if quick:
        return TrainConfig(task="text", model_preset="text", hidden_size=64, num_layers=2, batch_size=4)
    return TrainConfig(task="text", model_preset="text", hidden_size=256, num_layers=6, batch_size=16)


def gemm_floor(model: HymbaForCausalLM, rows: int, head_rows: int) -> Callable[[], None]:
    """Forward GEMM + the two backward GEMMs of every ``nn.Linear`` weight (a tied head once)."""
    jobs, seen = [], set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            n = head_rows if name == "lm_head" else rows
            x = torch.randn(n, module.in_features)
            gy = torch.randn(n, module.out_features)
            jobs.append((x, gy, module.weight.detach()))

    def floor() -> None:
        for x, gy, weight in jobs:
            F.linear(x, weight)  # forward: (n, in) -> (n, out)
            torch.mm(gy, weight)  # grad of the input: (n, out) @ (out, in)
            torch.mm(gy.t(), x)  # grad of the weight: (out, n) @ (n, in)

    return floor


def _step(model: HymbaForCausalLM, opt: torch.optim.Optimizer, ids, targets, impl: Impl) -> float:
    logits = model(ids, impl=impl).logits
    loss = F.cross_entropy(logits.transpose(1, 2), targets)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def run(quick: bool) -> list[Row]:
    """T1: fused vs compiled scan, each against the floor; ``quick``: toy sizes."""
    tc = train_config(quick)
    cfg = tiny_model_config(tc)
    seq = 64 if quick else int(tc.task_kwargs.get("seq_len", 256))
    model = HymbaForCausalLM(cfg)
    model.reset_parameters(seed=0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, cfg.vocab_size, (tc.batch_size, seq), generator=g)
    targets = torch.randint(3, cfg.vocab_size, (tc.batch_size, seq), generator=g)
    rows_layers, rows_head = tc.batch_size * (seq + cfg.num_meta_tokens), tc.batch_size * seq
    candidates: dict[str, Callable[[], object]] = {
        "fused": partial(_step, model, opt, ids, targets, Impl(attention="sdpa", scan="fused")),
        "floor": gemm_floor(model, rows_layers, rows_head),
    }
    compile_s = None
    if compiled_scan_available("cpu"):
        compiled = partial(_step, model, opt, ids, targets, Impl(attention="sdpa", scan="compiled"))
        started = time.perf_counter()
        compiled()  # the one-time compile (forward and backward chunk graphs) for this shape
        compile_s = time.perf_counter() - started
        candidates["compiled"] = compiled
    stats = interleaved(candidates, repeat=2 if quick else 3)
    params = model.num_parameters()
    case = (
        f"d {cfg.hidden_size}, {cfg.num_layers} layers, vocab {cfg.vocab_size}, "
        f"batch {tc.batch_size}x{seq}+{cfg.num_meta_tokens} meta, fp32"
    )
    details = {k: vars(s) for k, s in stats.items()} | {"first_compiled_step_s": compile_s, "params": params}
    floor = stats["floor"].best
    fused = stats["fused"].best
    rows = [NEAR_FLOOR.row("T1", f"{case}, fused scan", "train step / GEMM floor", fused / floor)]
    if "compiled" in stats:
        ratio = stats["compiled"].best / floor
        rows.append(NEAR_FLOOR.row("T1", f"{case}, compiled scan", "train step / GEMM floor", ratio, details))
        tokens = tc.batch_size * seq / stats["compiled"].best
        rows.append(report().row("T1", "compiled scan", "tokens/s (best)", tokens))
    else:
        no_compiler = report("no C++ compiler: compiled scan not run")
        rows.append(no_compiler.row("T1", case, "compiled", "n/a", details))
    rows.append(report().row("T1", "fused scan", "tokens/s (best)", tc.batch_size * seq / fused))
    return rows


BENCHMARKS = [Benchmark(("T1",), "training step vs GEMM floor", run)]
