"""The toy ablation lab: Hymba's parallel hybrid heads against attention-only, SSM-only and sequential stacks.

The paper's design question (its Table 1 / Fig. 2, at 300M-1B scale) asks how to combine attention and
SSM heads. This module builds four architectures of the same depth at (nearly) equal parameter counts,
each with and without meta tokens, so they can be trained on the synthetic recall tasks of
:mod:`minihymba.tasks` for a few CPU minutes and compared::

    parallel     every layer: attention heads AND SSM heads side by side      (Hymba)
    sequential   layers alternate: attention-only, SSM-only, attention-only, ... (Jamba / Samba style)
    attention    every layer: attention heads only                            (a Transformer with SWA)
    ssm          every layer: SSM heads only                                  (a Mamba)

All four are :class:`~minihymba.model.HymbaForCausalLM` models: a single-branch layer swaps its
:class:`~minihymba.hybrid_block.HybridMixer` for a :class:`SingleBranchMixer`, which keeps only that
branch's rows of ``in_proj`` and that branch's parameters and feeds ``out_proj`` with that branch's
normalised output. Everything else (meta tokens, RoPE, sliding-window masks, MLPs, the head) is the
library's. Widths are chosen per architecture (:func:`matched_config`) so that the parameter counts agree
within a few percent. There is no KV sharing in the lab (a KV group would tie layers of different kinds).

This is a qualitative reproduction at toy scale: a few hundred thousand parameters, synthetic tasks,
minutes of CPU training, single seeds. It can show the *kind* of effect the paper reports (which designs
recall well as sequences grow), never its size.

Shapes: u (B, S, D); q/k/v, xs, z as in :mod:`minihymba.hybrid_block`; a, y (B, S, I).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .cache import KVEntries
from .config import HymbaConfig
from .hybrid_block import HybridMixer, StepContext
from .model import HymbaForCausalLM
from .tasks import accuracy, make_task
from .train import TrainConfig, train

__all__ = [
    "ARCHITECTURES",
    "SingleBranchMixer",
    "LabModel",
    "layer_kinds",
    "lab_config",
    "LabConfig",
    "build_model",
    "count_parameters",
    "matched_config",
    "AblationSetting",
    "train_config",
    "accuracy_by_length",
    "run_one",
    "run_ablation",
    "format_record",
    "SETTINGS",
    "main",
]

ARCHITECTURES = {
    "parallel": "attention + SSM heads in every layer (Hymba)",
    "sequential": "attention-only and SSM-only layers alternating",
    "attention": "attention heads only",
    "ssm": "SSM heads only",
}

_EVAL_SEED = 777_000_001  # held-out evaluation batches: a seed range training never draws
_SSM_ONLY = ("conv1d", "x_proj", "dt_proj", "A_log", "D", "dt_layernorm", "B_layernorm", "C_layernorm")


class SingleBranchMixer(HybridMixer):
    """A mixer with one branch: ``"attention"`` (q, k, v rows) or ``"ssm"`` (x, z rows).

    out = out_proj(RMSNorm(branch output)): the hybrid's fusion with the other branch removed.
    """

    def __init__(self, config: HymbaConfig, layer: int, branch: str) -> None:
        if branch not in ("attention", "ssm"):
            raise ValueError(f"branch must be 'attention' or 'ssm', got {branch!r}")
        if not config.owns_kv(layer):
            raise ValueError(f"layer {layer}: single-branch layers cannot be KV-group consumers")
        super().__init__(config, layer)
        self.branch = branch
        q, k, v, x, z = self.split_sizes
        self.split_sizes = (q, k, v) if branch == "attention" else (x, z)
        self.in_proj = torch.nn.Linear(config.hidden_size, sum(self.split_sizes), bias=config.proj_bias)
        unused = _SSM_ONLY + ("pre_avg_layernorm2",) if branch == "attention" else ("pre_avg_layernorm1",)
        for name in unused:
            if hasattr(self, name):
                delattr(self, name)

    def forward(
        self, u: Tensor, ctx: StepContext, shared_kv: KVEntries | None = None
    ) -> tuple[Tensor, KVEntries | None, Tensor | None]:
        parts = self.in_proj(u).split(self.split_sizes, dim=-1)
        if self.branch == "attention":
            q, k, v = parts
            a, kv, probs = self.attend(q, k, v, ctx, shared_kv)  # (B, S, I)
            return self.out_proj(self.pre_avg_layernorm1(a)), kv, probs  # (B, S, D)
        xs, z = parts
        return self.out_proj(self.pre_avg_layernorm2(self.ssm(xs, z, ctx))), None, None


def layer_kinds(architecture: str, num_layers: int) -> tuple[str, ...]:
    """Per layer: ``"hybrid"``, ``"attention"`` or ``"ssm"``. Sequential stacks start with attention."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}")
    if architecture == "sequential":
        return tuple("attention" if i % 2 == 0 else "ssm" for i in range(num_layers))
    kind = {"parallel": "hybrid", "attention": "attention", "ssm": "ssm"}[architecture]
    return (kind,) * num_layers


@dataclass(frozen=True)
class LabConfig:
    """The shared shape of every lab model; only the width differs between architectures."""

    vocab_size: int
    num_layers: int = 4
    num_meta_tokens: int = 8
    sliding_window: int = 8
    global_layer: int = 2  # the one full-attention layer (an attention layer in every stack that has one)


def lab_config(
    lab: LabConfig, hidden_size: int, meta: bool, intermediate_size: int | None = None
) -> HymbaConfig:
    """A lab model of width ``hidden_size`` (4 heads, 2 KV heads, N = 8, no KV sharing); MLP width
    ``intermediate_size`` (default 2 x width)."""
    return HymbaConfig(
        vocab_size=lab.vocab_size,
        hidden_size=hidden_size,
        num_layers=lab.num_layers,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=2 * hidden_size if intermediate_size is None else intermediate_size,
        ssm_state_size=8,
        dt_rank=8,
        num_meta_tokens=lab.num_meta_tokens if meta else 0,
        sliding_window=lab.sliding_window,
        global_layers=(lab.global_layer,),
        kv_share_groups=(),
        max_position_embeddings=1024,
        orig_max_position_embeddings=256,
        torch_dtype="float32",
    )


class LabModel(HymbaForCausalLM):
    """A HymbaForCausalLM whose layers are of the kinds ``layer_kinds(architecture, ...)``."""

    def __init__(self, config: HymbaConfig, architecture: str) -> None:
        kinds = layer_kinds(architecture, config.num_layers)
        if kinds[config.global_layers[0]] == "ssm" and "attention" in kinds:
            raise ValueError(f"{architecture}: the global layer {config.global_layers[0]} has no attention")
        super().__init__(config)
        self.architecture = architecture
        for i, kind in enumerate(kinds):
            if kind != "hybrid":
                self.model.layers[i].mamba = SingleBranchMixer(config, i, kind)
        self.reset_parameters()  # initialise the swapped-in mixers like the rest


def build_model(architecture: str, config: HymbaConfig, seed: int = 0) -> LabModel:
    """A seeded, randomly initialised lab model."""
    model = LabModel(config, architecture)
    model.reset_parameters(seed=seed)
    return model


def count_parameters(architecture: str, config: HymbaConfig) -> int:
    """Parameters of a lab model (counted on the meta device: no memory, no init work)."""
    with torch.device("meta"):
        return LabModel(config, architecture).num_parameters()


def matched_config(architecture: str, lab: LabConfig, target_params: int, meta: bool) -> HymbaConfig:
    """The config of ``architecture`` whose parameter count (meta tokens excluded) is closest to
    ``target_params``: the widest width (a multiple of 8: 4 heads with even head dims) that stays at or
    below the target with a 2x MLP, then the MLP width that closes the remaining gap."""
    base, width = lab_config(lab, 8, meta=False), None
    for d in range(8, 1025, 8):  # parameter counts grow with the width: stop at the first one too big
        if (
            count_parameters(architecture, base.replace(hidden_size=d, intermediate_size=2 * d))
            > target_params
        ):
            break
        width = d
    if width is None:
        raise ValueError(f"no {architecture} model has at most {target_params} parameters")
    config = lab_config(lab, width, meta=False)
    per_mlp_unit = 3 * width * lab.num_layers  # gate, up and down rows of every layer's MLP
    extra = (target_params - count_parameters(architecture, config)) // per_mlp_unit
    return lab_config(lab, width, meta, intermediate_size=2 * width + extra)


# ---------------------------------------------------------------- the experiment
@dataclass(frozen=True)
class AblationSetting:
    """One experiment: the task, its lengths, the training budget and the parameter target."""

    task: str
    task_kwargs: dict
    train_lengths: tuple[int, ...]  # mixed-length training: batches cycle through these lengths
    eval_lengths: tuple[int, ...]
    steps: int
    batch_size: int = 32
    lr: float = 3e-3
    eval_examples: int = 256  # held-out examples per evaluation length
    curve_every: int = 50  # learning curve: every this many steps, one held-out batch per training length
    reference_width: int = 64  # the parallel hybrid at this width sets the parameter budget
    seed: int = 0
    lab: LabConfig = LabConfig(vocab_size=32)  # depth, meta tokens, window, global layer; vocab = the task's

    def __post_init__(self) -> None:
        if self.lab.vocab_size != self.task_kwargs.get("vocab_size", 64):
            raise ValueError(
                f"lab.vocab_size ({self.lab.vocab_size}) must equal the task's vocab_size "
                f"({self.task_kwargs.get('vocab_size', 64)})"
            )


def train_config(setting: AblationSetting) -> TrainConfig:
    """The :class:`~minihymba.train.TrainConfig` every lab model of ``setting`` is trained with."""
    return TrainConfig(
        task=setting.task,
        task_kwargs={**setting.task_kwargs, "seq_len": list(setting.train_lengths)},
        steps=setting.steps,
        batch_size=setting.batch_size,
        lr=setting.lr,
        warmup_steps=max(1, setting.steps // 20),
        eval_every=setting.curve_every,
        eval_batches=len(setting.train_lengths),
        seed=setting.seed,
    )


def accuracy_by_length(model: HymbaForCausalLM, setting: AblationSetting) -> dict[int, float]:
    """Accuracy on fresh held-out batches (seeds training never uses) at every evaluation length."""
    scores = {}
    model.eval()
    with torch.no_grad():
        for length in setting.eval_lengths:
            ids, targets = make_task(
                setting.task,
                setting.eval_examples,
                seed=_EVAL_SEED + length,
                seq_len=length,
                **setting.task_kwargs,
            )
            scores[length] = accuracy(model(ids).logits, targets)
    return scores


def run_one(architecture: str, meta: bool, setting: AblationSetting) -> dict[str, Any]:
    """Build the parameter-matched model, train it, score it; a JSON-ready record."""
    lab = setting.lab
    budget = count_parameters("parallel", lab_config(lab, setting.reference_width, meta=False))
    config = matched_config(architecture, lab, budget, meta)
    model = build_model(architecture, config, seed=setting.seed)
    model, result = train(train_config(setting), progress=False, model=model)
    last = result["history"][-20:]
    return {
        "architecture": architecture,
        "meta_tokens": config.num_meta_tokens,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "parameters": model.num_parameters(),
        "train_seconds": round(result["seconds"], 1),
        "final_loss": round(sum(r["loss"] for r in last) / len(last), 4),
        "accuracy": {str(k): round(v, 4) for k, v in accuracy_by_length(model, setting).items()},
        "curve": [
            [r["step"], round(r["eval_accuracy"], 4)] for r in result["history"] if "eval_accuracy" in r
        ],
    }


def run_ablation(
    setting: AblationSetting,
    architectures: tuple[str, ...] = tuple(ARCHITECTURES),
    meta_options: tuple[bool, ...] = (True, False),
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Every (architecture, meta tokens on/off) pair, one after the other; returns their records."""
    records = []
    for architecture in architectures:
        for meta in meta_options:
            record = run_one(architecture, meta, setting)
            records.append(record)
            if log is not None:
                log(format_record(record))
    return records


def format_record(record: dict[str, Any]) -> str:
    """One line: architecture, meta tokens, size, training time, accuracy per length."""
    accs = " ".join(f"T={k}: {v:.2f}" for k, v in record["accuracy"].items())
    return (
        f"{record['architecture']:>10} meta={record['meta_tokens']:<2} params={record['parameters']:,} "
        f"{record['train_seconds']:.0f} s  {accs}"
    )


# Noisy-needle retrieval (one marked key-value pair hidden in random tokens, asked for at the end), trained on
# three lengths at once and scored on those plus one twice as long as any training sequence.
_NEEDLE = {"vocab_size": 32}
SETTINGS = {
    # the committed notebook: a few CPU minutes per model (python -m minihymba.ablation --setting full)
    "full": AblationSetting(
        task="needle",
        task_kwargs=_NEEDLE,
        train_lengths=(16, 32, 64),
        eval_lengths=(16, 32, 64, 128),
        steps=1000,
    ),
    # what CI runs: the same pipeline in seconds; its numbers mean nothing
    "fast": AblationSetting(
        task="needle",
        task_kwargs=_NEEDLE,
        train_lengths=(16, 32, 64),
        eval_lengths=(16, 32, 64, 128),
        steps=6,
        batch_size=8,
        eval_examples=16,
    ),
}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """``python -m minihymba.ablation --setting full --json results.json``: run and save the records."""
    parser = argparse.ArgumentParser(prog="python -m minihymba.ablation", description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="fast")
    parser.add_argument("--json", default=None, help="write {setting, records} here")
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES), help="comma-separated subset")
    args = parser.parse_args(argv)
    setting = SETTINGS[args.setting]
    records = run_ablation(setting, tuple(args.architectures.split(",")))
    if args.json:
        payload = {
            "setting": args.setting,
            "config": asdict(setting),
            "torch": torch.__version__,
            "records": records,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return records


if __name__ == "__main__":
    main()
