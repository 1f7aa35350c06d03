"""A small, readable training loop for synthetic tasks (``minihymba.tasks``) and for text, and its CLI.

    for step in range(start, steps):
        ids, targets = task_batch(tc, step)                   a fresh batch that depends only on the step
        loss = cross_entropy(model(ids).logits, targets)      scored positions only (targets != -100)
        loss.backward(); clip_grad_norm_(clip)
        lr = warmup_then_cosine(step); AdamW.step()

Every ``eval_every`` steps the model is scored on held-out batches (a disjoint seed stream) and every
``save_every`` steps (and at the end) it is written to ``out`` in the hub format with
:func:`minihymba.save_pretrained` -- so :func:`minihymba.load_pretrained` reads it -- next to
``optimizer.safetensors`` (AdamW moments) and ``trainer_state.json`` (step, settings, history). ``resume``
continues from there and gives the same weights as an uninterrupted run.

CPU training runs SDPA attention (FlexAttention has no CPU backward) and, by default (``scan_impl="auto"``),
the scan :mod:`minihymba.impl`'s policy picks: the chunked compiled scan with its compiled backward where a
C++ compiler works, else the fused scan with its hand-written backward (``"ref"`` runs the reference loop
through autograd). The implementations are passed to every model call as :meth:`TrainConfig.impl`; a
run that must be reproduced names its scan explicitly (the shipped models' commands do).
Runs are deterministic on CPU for a fixed seed, thread count and torch version.

Tasks: the synthetic ones of :mod:`minihymba.tasks` (``mqar``, ``recall``, ``copy``, ``needle``), and
``text``: language modelling on the corpus prepared by :mod:`minihymba.corpus` in ``data`` (random windows
of ``task_kwargs["seq_len"]`` tokens from the training stream, each starting with BOS; evaluation on the
first held-out windows). ``model_preset`` picks the architecture (:func:`tiny_model_config`).

Command line::

    python -m minihymba.train --task mqar --steps 600 --seed 0 --out runs/mqar

Shapes: B batch, T task length, V vocabulary.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .config import HymbaConfig
from .impl import Impl
from .loading import load_pretrained, save_pretrained
from .model import HymbaForCausalLM
from .scans import SCAN_NAMES
from .tasks import TASKS, accuracy, make_task

__all__ = ["TrainConfig", "tiny_model_config", "lr_at", "task_batch", "evaluate", "train", "main"]

_EVAL_SEED_OFFSET = 1_000_000_007  # eval batches come from a seed stream training never touches


@dataclass
class TrainConfig:
    """Everything a run depends on (saved in ``trainer_state.json``)."""

    task: str = "mqar"
    task_kwargs: dict[str, Any] = field(default_factory=lambda: {"num_pairs": 4, "vocab_size": 32})
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int = 30
    weight_decay: float = 0.01
    clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 4
    save_every: int = 0  # 0: only at the end
    seed: int = 0
    threads: int = 1
    scan_impl: str = "auto"  # "auto" (minihymba.impl's policy) or a minihymba.scans name, e.g. "compiled"
    data: str = ""  # task "text": the corpus directory written by `python -m minihymba.corpus prepare/encode`
    # model size (see tiny_model_config)
    model_preset: str = "recall"  # "recall" (synthetic tasks) or "text" (the tiny-text architecture)
    hidden_size: int = 64
    num_layers: int = 4
    num_meta_tokens: int = 8
    sliding_window: int = 8

    def impl(self) -> Impl:
        """The implementations every training and evaluation call runs."""
        return Impl(attention="sdpa", scan=self.scan_impl)


def tiny_model_config(tc: TrainConfig) -> HymbaConfig:
    """The model a run trains, from ``tc.model_preset`` and the size fields of ``tc``.

    ``"recall"``: a small Hymba with every layer kind -- layer 2 global, layers 0-1 a sliding-window KV
    group -- and the task's vocabulary (``task_kwargs['vocab_size']``, default 64).

    ``"text"``: the real model's shape of ideas at a few million parameters -- meta tokens, sliding-window
    layers with global layers first, in the middle and last (0, L // 2, L - 1), the layers in between paired
    into KV-sharing groups, value heads twice as wide as query/key heads (I = 2D split over H heads), NTK
    RoPE -- with the corpus tokenizer's 4096-token vocabulary.
    """
    if tc.model_preset == "text":
        return _text_model_config(tc)
    if tc.model_preset != "recall":
        raise ValueError(f"model_preset must be 'recall' or 'text', got {tc.model_preset!r}")
    vocab = int(tc.task_kwargs.get("vocab_size", 64))
    last = tc.num_layers - 1
    return HymbaConfig(
        vocab_size=vocab,
        hidden_size=tc.hidden_size,
        num_layers=tc.num_layers,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=2 * tc.hidden_size,
        ssm_state_size=8,
        dt_rank=8,
        num_meta_tokens=tc.num_meta_tokens,
        sliding_window=tc.sliding_window,
        global_layers=(min(2, last),),
        kv_share_groups=((0, 1),) if tc.num_layers >= 3 else (),
        max_position_embeddings=512,
        orig_max_position_embeddings=128,
        torch_dtype="float32",
    )


def _text_model_config(tc: TrainConfig) -> HymbaConfig:
    n, d = tc.num_layers, tc.hidden_size
    global_layers = tuple(sorted({0, n // 2, n - 1}))
    groups, run = [], []
    for layer in range(n):  # the sliding-window layers between two global ones, paired (a triple if odd)
        if layer in global_layers:
            groups, run = groups + _pairs(run), []
        else:
            run.append(layer)
    groups += _pairs(run)
    seq_len = int(tc.task_kwargs.get("seq_len", 256))
    return HymbaConfig(
        vocab_size=4096,
        hidden_size=d,
        num_layers=n,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=round(8 * d / 3 / 64) * 64,  # the usual 8/3 of a gated MLP, a multiple of 64
        ssm_state_size=16,
        dt_rank=-(-d // 16),
        num_meta_tokens=tc.num_meta_tokens,
        sliding_window=tc.sliding_window,
        global_layers=global_layers,
        kv_share_groups=tuple(groups),
        max_position_embeddings=4 * seq_len,
        orig_max_position_embeddings=seq_len,
        torch_dtype="float32",
    )


def _pairs(run: list[int]) -> list[tuple[int, ...]]:
    """Consecutive layers in groups of two (the last group takes a third layer when the run is odd)."""
    groups = [tuple(run[i : i + 2]) for i in range(0, len(run) - len(run) % 2, 2)]
    if len(run) % 2 and groups:
        groups[-1] = (*groups[-1], run[-1])
    return groups


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, then a cosine down to ``lr * min_lr_ratio``."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    span = max(1, tc.steps - tc.warmup_steps)
    progress = min(1.0, (step - tc.warmup_steps) / span)
    floor = tc.lr * tc.min_lr_ratio
    return floor + (tc.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@lru_cache(maxsize=4)
def _corpus_tokens(data: str, split: str) -> torch.Tensor:
    """The token stream of a prepared corpus split ("train" or "heldout"), read once per process."""
    from .corpus import load_tokens

    path = Path(data) / f"{split}_tokens.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"no {path}: prepare the corpus first (python -m minihymba.corpus prepare --out {data}, then "
            f"tokenizer and encode; see minihymba/assets/tiny-text/README.md)"
        )
    return load_tokens(path)


def task_batch(tc: TrainConfig, step: int, eval: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of ``step``: a pure function of (seed, step), so resumed runs see the same data.

    A list ``task_kwargs["seq_len"]`` trains on mixed lengths: batch ``step`` has length
    ``seq_len[step % len(seq_len)]``. Task ``text``: a random window batch of the training stream
    (:func:`minihymba.corpus.lm_batch`); evaluation batch ``step`` is the ``step``-th batch of held-out
    windows.
    """
    if tc.task == "text":
        from .corpus import heldout_batches, lm_batch

        seq_len = int(tc.task_kwargs.get("seq_len", 256))
        if eval:
            batches = heldout_batches(_corpus_tokens(tc.data, "heldout"), tc.batch_size, seq_len)
            return next(islice(batches, step, None))
        return lm_batch(_corpus_tokens(tc.data, "train"), tc.batch_size, seq_len, tc.seed, step)
    seed = tc.seed * 100_003 + step + (_EVAL_SEED_OFFSET if eval else 0)
    kwargs = dict(tc.task_kwargs)
    if isinstance(kwargs.get("seq_len"), (list, tuple)):
        kwargs["seq_len"] = kwargs["seq_len"][step % len(kwargs["seq_len"])]
    return make_task(tc.task, tc.batch_size, seed, **kwargs)  # (B, T), (B, T)


def _loss(
    model: HymbaForCausalLM, ids: torch.Tensor, targets: torch.Tensor, impl: Impl
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(ids, impl=impl).logits  # (B, T, V) float32
    return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100), logits


@torch.no_grad()
def evaluate(model: HymbaForCausalLM, tc: TrainConfig, batches: int | None = None) -> dict[str, float]:
    """Mean loss and accuracy over ``batches`` held-out batches (eval seed stream)."""
    was_training = model.training
    model.eval()
    losses, accs = [], []
    for i in range(tc.eval_batches if batches is None else batches):
        ids, targets = task_batch(tc, i, eval=True)
        loss, logits = _loss(model, ids, targets, tc.impl())
        losses.append(loss.item())
        accs.append(accuracy(logits, targets))
    model.train(was_training)
    return {"loss": sum(losses) / len(losses), "accuracy": sum(accs) / len(accs)}


# ---------------------------------------------------------------- checkpoints
def _save(
    model: HymbaForCausalLM,
    opt: torch.optim.AdamW,
    tc: TrainConfig,
    step: int,
    history: list,
    out: Path,
    final: dict | None = None,
) -> None:
    """Weights (hub format), AdamW moments (safetensors) and ``trainer_state.json`` into ``out``."""
    save_pretrained(model, out)
    names = {id(p): n for n, p in model.named_parameters()}
    moments = {}
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p)
            if state:
                name = names[id(p)]
                moments[f"{name}.exp_avg"] = state["exp_avg"].contiguous()
                moments[f"{name}.exp_avg_sq"] = state["exp_avg_sq"].contiguous()
                moments[f"{name}.step"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1)
    save_file(moments, str(out / "optimizer.safetensors"))
    state = {"step": step, "train_config": asdict(tc), "history": history}
    if final is not None:  # the end of a run: its held-out score and wall time
        state["final_eval"], state["seconds"] = final["eval"], round(final["seconds"], 1)
    (out / "trainer_state.json").write_text(json.dumps(state, indent=2))


def _restore_optimizer(model: HymbaForCausalLM, opt: torch.optim.AdamW, path: Path) -> None:
    moments = load_file(str(path))
    for name, p in model.named_parameters():
        if f"{name}.exp_avg" in moments:
            opt.state[p] = {
                "step": moments[f"{name}.step"].reshape(()).clone(),
                "exp_avg": moments[f"{name}.exp_avg"].clone(),
                "exp_avg_sq": moments[f"{name}.exp_avg_sq"].clone(),
            }


def _progress(total: int, initial: int, enabled: bool | str):
    """A tqdm bar (imported lazily; absent or disabled -> None); a string ``enabled`` is its label."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    desc = enabled if isinstance(enabled, str) else "train"
    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)


# ---------------------------------------------------------------- the loop
def train(
    tc: TrainConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    until: int | None = None,
    progress: bool | str = True,
    model: HymbaForCausalLM | None = None,
) -> tuple[HymbaForCausalLM, dict[str, Any]]:
    """Train a tiny Hymba on ``tc.task``; returns the model and ``{"history", "eval", "seconds"}``.

    ``out``: directory for checkpoints (None: keep nothing on disk). ``resume``: continue from the
    checkpoint in ``out`` (its step, weights and AdamW moments; the settings in ``tc`` are used as given).
    ``until``: stop after this step (and save), as if interrupted; the schedule still spans ``tc.steps``.
    ``progress``: a tqdm bar with an ETA (a string labels it).
    ``model``: train this (initialised) model in place instead of a fresh ``tiny_model_config(tc)`` one;
    the model-size fields of ``tc`` are then ignored (used by :mod:`minihymba.ablation`).
    """
    if tc.steps <= 0:
        raise ValueError(f"steps must be positive, got {tc.steps}")
    if model is not None and resume:
        raise ValueError("give either model= or resume=True, not both")
    out = None if out is None else Path(out)
    threads_before, deterministic_before = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
    )
    torch.set_num_threads(tc.threads)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(tc, out, resume, tc.steps if until is None else min(until, tc.steps), progress, model)
    finally:
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(deterministic_before)


def _train(
    tc: TrainConfig,
    out: Path | None,
    resume: bool,
    stop: int,
    progress: bool | str,
    model: HymbaForCausalLM | None,
):
    torch.manual_seed(tc.seed)
    start, history = 0, []
    if resume:
        if out is None or not (out / "trainer_state.json").is_file():
            raise FileNotFoundError(f"nothing to resume: no trainer_state.json in {out}")
        state = json.loads((out / "trainer_state.json").read_text())
        start, history = int(state["step"]), list(state["history"])
        model = load_pretrained(out)
    elif model is None:
        model = HymbaForCausalLM(tiny_model_config(tc))
        model.reset_parameters(seed=tc.seed)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "memory_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "memory_tokens" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr,
        betas=(0.9, 0.98),
        foreach=False,
    )
    if resume:
        _restore_optimizer(model, opt, out / "optimizer.safetensors")

    bar = _progress(tc.steps, start, progress)
    began = time.perf_counter()
    for step in range(start, stop):
        ids, targets = task_batch(tc, step)  # (B, T), (B, T)
        loss, _ = _loss(model, ids, targets, tc.impl())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc)
        opt.step()
        record = {"step": step + 1, "loss": loss.item()}
        if tc.eval_every and (step + 1) % tc.eval_every == 0:
            record.update({f"eval_{k}": v for k, v in evaluate(model, tc).items()})
        history.append(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "step"})
        if out is not None and tc.save_every and (step + 1) % tc.save_every == 0 and step + 1 < stop:
            _save(model, opt, tc, step + 1, history, out)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - began
    final = evaluate(model, tc)
    if out is not None:
        _save(model, opt, tc, stop, history, out, {"eval": final, "seconds": seconds})
    model.eval()
    return model, {"history": history, "eval": final, "seconds": seconds}


# ---------------------------------------------------------------- command line
# One description per TrainConfig field: a field without one fails the parser (and its test).
_FIELD_HELP = {
    "steps": "optimizer steps (the cosine schedule spans them)",
    "batch_size": "sequences per step",
    "lr": "peak learning rate (AdamW)",
    "min_lr_ratio": "the cosine ends at lr * this",
    "warmup_steps": "linear warmup steps before the cosine",
    "weight_decay": "AdamW weight decay, on tensors of 2 or more dimensions except the meta tokens",
    "clip": "gradient-norm clipping threshold",
    "eval_every": "score held-out batches every this many steps (0: only at the end)",
    "eval_batches": "held-out batches per evaluation",
    "save_every": "also checkpoint to --out every this many steps (0: only at the end)",
    "seed": "seed of the weights and of the data stream",
    "threads": "torch threads (a run is deterministic for a seed, thread count and torch version)",
    "scan_impl": "selective scan: auto = minihymba.impl's policy (compiled when a C++ compiler works, else "
    "fused); compiled = chunked torch.compile scan with a compiled backward; fused = hand-written backward; "
    "ref = the reference loop through autograd",
    "data": "task text: the corpus directory written by `python -m minihymba.corpus prepare/encode`",
    "model_preset": "architecture: recall (one global layer, a KV pair) or text (tiny-text's layout)",
    "hidden_size": "model width D",
    "num_layers": "layers (recall: layer 2 global, 0-1 a KV pair; text: 0, L//2, L-1 global, pairs between)",
    "num_meta_tokens": "learnable meta tokens prepended to every sequence",
    "sliding_window": "attention window of the sliding-window layers",
}
_FIELD_CHOICES = {"scan_impl": ("auto", *SCAN_NAMES), "model_preset": ("recall", "text")}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m minihymba.train",
        description="Train a tiny Hymba on a synthetic task (minihymba.tasks) or on the text corpus "
        "(minihymba.corpus); checkpoints in hub format.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = TrainConfig()
    p.add_argument(
        "--task", default=defaults.task, choices=[*sorted(TASKS), "text"], help="synthetic task, or text (LM)"
    )
    p.add_argument(
        "--task-kwargs",
        default=json.dumps(defaults.task_kwargs),
        help="JSON dict of the task generator's arguments, e.g. num_pairs, seq_len, vocab_size "
        "(see minihymba.tasks)",
    )
    for f in fields(TrainConfig):
        if f.name in ("task", "task_kwargs"):
            continue
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name),
            choices=_FIELD_CHOICES.get(f.name),
            help=_FIELD_HELP[f.name],
        )
    p.add_argument(
        "--out", default=None, help="checkpoint directory (hub format); none: keep nothing on disk"
    )
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--until", type=int, default=None, help="stop (and save) after this step")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "task_kwargs"}
    tc = TrainConfig(**values, task_kwargs=json.loads(args.task_kwargs))
    _, result = train(tc, args.out, resume=args.resume, until=args.until, progress=not args.no_progress)
    summary = {"steps": tc.steps, "seed": tc.seed, "seconds": round(result["seconds"], 1), **result["eval"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
