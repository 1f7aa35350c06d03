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
minutes of CPU training, a couple of seeds per model. It can show the *kind* of effect the paper reports
(which designs recall well), never its size.

``python -m minihymba.ablation --setting full --jobs 2 --json results.json`` trains every model of a
setting (two at a time, one thread each, a tqdm bar with an ETA per model), appends each record to the
JSON file as it finishes and skips, on a rerun, the records already there.

Shapes: u (B, S, D); q/k/v, xs, z as in :mod:`minihymba.hybrid_block`; a, y (B, S, I).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .cache import KVEntries
from .config import HymbaConfig
from .hybrid_block import HybridMixer, StepContext
from .model import HymbaForCausalLM
from .tasks import IGNORE, accuracy, make_task, vocab_ranges
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
    "chance_accuracy",
    "train_config",
    "accuracy_by_length",
    "text_data",
    "heldout_loss_by_length",
    "accuracy_by_pair",
    "run_one",
    "record_key",
    "run_ablation",
    "aggregate",
    "format_record",
    "SETTINGS",
    "SMOKE_TEST",
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
    """One experiment: the task, its lengths, the training budget, the parameter target, and which models
    (architectures x meta tokens on/off x seeds) it trains."""

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
    seeds: tuple[int, ...] = (0, 1)  # one model per seed: the seed of its weights and of its data stream
    architectures: tuple[str, ...] = tuple(ARCHITECTURES)
    meta_options: tuple[bool, ...] = (True,)  # (True, False): also train every model without meta tokens
    lab: LabConfig = LabConfig(vocab_size=32)  # depth, meta tokens, window, global layer; vocab = the task's
    # task "text" only: the corpus directory (python -m minihymba.corpus prepare/encode); None: a miniature
    # corpus cut from the shipped held-out sample (corpus.sample_corpus), which only smoke tests use
    data: str | None = None

    def __post_init__(self) -> None:
        if self.lab.vocab_size != self.task_kwargs.get("vocab_size", 64):
            raise ValueError(
                f"lab.vocab_size ({self.lab.vocab_size}) must equal the task's vocab_size "
                f"({self.task_kwargs.get('vocab_size', 64)})"
            )
        if self.task == "text" and len(self.train_lengths) != 1:
            raise ValueError(f"task 'text' trains at one length, got train_lengths={self.train_lengths}")
        unknown = set(self.architectures) - set(ARCHITECTURES)
        if unknown:
            raise ValueError(f"unknown architectures {sorted(unknown)}; choose from {sorted(ARCHITECTURES)}")

    def runs(self) -> list[tuple[str, bool, int]]:
        """Every model of the setting as (architecture, meta, seed), in training order (seed by seed)."""
        return [(a, m, s) for s in self.seeds for a in self.architectures for m in self.meta_options]


def chance_accuracy(setting: AblationSetting) -> float:
    """Accuracy of guessing uniformly among the values (every answer of these tasks is a value token)."""
    if setting.task == "text":
        raise ValueError(
            "task 'text' has no chance accuracy; compare held-out losses with corpus.unigram_loss"
        )
    _, values = vocab_ranges(setting.task_kwargs.get("vocab_size", 64))
    return 1.0 / len(values)


def train_config(setting: AblationSetting, seed: int = 0) -> TrainConfig:
    """The :class:`~minihymba.train.TrainConfig` a lab model of ``setting`` is trained with (one thread:
    runs are deterministic for a seed, and two of them can share a 2-core machine)."""
    text = setting.task == "text"
    return TrainConfig(
        task=setting.task,
        task_kwargs={"seq_len": setting.train_lengths[0]}
        if text
        else {**setting.task_kwargs, "seq_len": list(setting.train_lengths)},
        steps=setting.steps,
        batch_size=setting.batch_size,
        lr=setting.lr,
        warmup_steps=max(1, setting.steps // 20),
        eval_every=setting.curve_every,
        eval_batches=2 if text else len(setting.train_lengths),  # text: the first 2 held-out batches
        seed=seed,
        threads=1,
        data=text_data(setting) if text else "",
    )


def text_data(setting: AblationSetting) -> str:
    """The corpus directory a text setting trains on: ``setting.data``, or (None) the miniature corpus cut
    from the shipped held-out sample, written once into the temp directory."""
    if setting.data is not None:
        return setting.data
    import tempfile

    from .corpus import sample_corpus

    out = Path(tempfile.gettempdir()) / "minihymba-sample-corpus"
    if not (out / "heldout_tokens.safetensors").is_file():
        sample_corpus(out)
    return str(out)


def heldout_loss_by_length(model: HymbaForCausalLM, setting: AblationSetting) -> dict[int, float]:
    """Task "text": mean loss (nats/token) over the first ``eval_examples`` back-to-back held-out windows
    of each evaluation length (BOS + T - 1 tokens -> the next T, as :func:`minihymba.corpus.heldout_batches`).
    Every model of a setting is scored on the same windows, so differences between models are paired."""
    import torch.nn.functional as F

    from .corpus import heldout_batches, load_tokens

    tokens = load_tokens(Path(text_data(setting)) / "heldout_tokens.safetensors")
    scores = {}
    model.eval()
    with torch.no_grad():
        for length in setting.eval_lengths:
            scored = tokens[: setting.eval_examples * length]  # the first eval_examples windows
            total, count = 0.0, 0
            for ids, targets in heldout_batches(scored, 16, length):  # 16 windows at a time (memory)
                logits = model(ids).logits  # (rows, T, V)
                total += F.cross_entropy(logits.transpose(1, 2), targets, reduction="sum").item()
                count += targets.numel()
            scores[length] = total / count
    return scores


def _eval_batch(setting: AblationSetting, length: int) -> tuple[Tensor, Tensor]:
    """The held-out batch of ``length`` (a seed range training never draws), (B, T) ids and targets."""
    return make_task(
        setting.task, setting.eval_examples, seed=_EVAL_SEED + length, seq_len=length, **setting.task_kwargs
    )


def accuracy_by_length(model: HymbaForCausalLM, setting: AblationSetting) -> dict[int, float]:
    """Accuracy on fresh held-out batches (seeds training never uses) at every evaluation length."""
    scores = {}
    model.eval()
    with torch.no_grad():
        for length in setting.eval_lengths:
            ids, targets = _eval_batch(setting, length)
            scores[length] = accuracy(model(ids).logits, targets)
    return scores


def accuracy_by_pair(model: HymbaForCausalLM, setting: AblationSetting, length: int) -> list[float]:
    """MQAR only: accuracy of the answers about stored pair j (j = 0: stored first, farthest back from the
    queries) on the held-out batch of ``length``; one number per pair."""
    if setting.task != "mqar":
        raise ValueError(f"accuracy_by_pair needs the mqar task, not {setting.task!r}")
    num_pairs = setting.task_kwargs.get("num_pairs", 4)
    ids, targets = _eval_batch(setting, length)  # (B, T)
    model.eval()
    with torch.no_grad():
        correct = model(ids).logits.argmax(-1) == targets  # (B, T)
    stored_keys = ids[:, 1 : 1 + 2 * num_pairs : 2]  # (B, P): k_1 .. k_P
    scored = targets != IGNORE  # (B, T): the query columns
    queries = ids[scored].view(ids.shape[0], -1)  # (B, Q)
    pair = (queries[:, :, None] == stored_keys[:, None, :]).int().argmax(-1)  # (B, Q): which pair is asked
    hits = correct[scored].view(ids.shape[0], -1).float()  # (B, Q)
    return [
        round(hits[pair == j].mean().item(), 4) if (pair == j).any() else float("nan")
        for j in range(num_pairs)
    ]


def run_one(
    architecture: str, meta: bool, setting: AblationSetting, seed: int = 0, progress: bool | str = False
) -> dict[str, Any]:
    """Build the parameter-matched model, train it, score it; a JSON-ready record. ``progress``: a tqdm
    bar (a string labels it)."""
    lab = setting.lab
    budget = count_parameters("parallel", lab_config(lab, setting.reference_width, meta=False))
    config = matched_config(architecture, lab, budget, meta)
    model = build_model(architecture, config, seed=seed)
    model, result = train(train_config(setting, seed), progress=progress, model=model)
    last = result["history"][-20:]
    record = {
        "architecture": architecture,
        "meta_tokens": config.num_meta_tokens,
        "seed": seed,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "parameters": model.num_parameters(),
        "train_seconds": round(result["seconds"], 1),
        "final_loss": round(sum(r["loss"] for r in last) / len(last), 4),
    }
    if setting.task == "text":
        losses = heldout_loss_by_length(model, setting)
        record["heldout_loss"] = {str(k): round(v, 4) for k, v in losses.items()}
        curve_field = "eval_loss"
    else:
        record["accuracy"] = {str(k): round(v, 4) for k, v in accuracy_by_length(model, setting).items()}
        curve_field = "eval_accuracy"
    record["curve"] = [[r["step"], round(r[curve_field], 4)] for r in result["history"] if curve_field in r]
    if setting.task == "mqar":
        record["accuracy_by_pair"] = accuracy_by_pair(model, setting, setting.eval_lengths[0])
    return record


def record_key(record: Mapping[str, Any]) -> tuple[str, bool, int]:
    """(architecture, meta tokens on, seed): what identifies a record within one setting."""
    return record["architecture"], record["meta_tokens"] > 0, record.get("seed", 0)


def _run_job(job: tuple[str, bool, AblationSetting, int, bool]) -> dict[str, Any]:
    architecture, meta, setting, seed, progress = job
    label = f"{architecture} seed {seed}{'' if meta else ' no-meta'}"
    return run_one(architecture, meta, setting, seed, progress=label if progress else False)


def run_ablation(
    setting: AblationSetting,
    architectures: tuple[str, ...] | None = None,
    meta_options: tuple[bool, ...] | None = None,
    log: Callable[[str], None] | None = print,
    *,
    seeds: tuple[int, ...] | None = None,
    done: Iterable[Mapping[str, Any]] = (),
    on_record: Callable[[dict[str, Any]], None] | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train every (architecture, meta tokens, seed) of ``setting`` (or of the subsets given) that is not
    already among the records ``done``; returns the new records in training order.

    ``on_record`` is called with each record as it finishes (the command line appends it to the results
    file, so an interrupted run resumes where it stopped). ``jobs`` > 1 trains that many models at once in
    worker processes (one thread each; the records are the same as with ``jobs=1``)."""
    have = {record_key(r) for r in done}
    wanted = [  # seed by seed: the first models trained already cover every architecture
        (a, m, s)
        for s in (seeds or setting.seeds)
        for a in (architectures or setting.architectures)
        for m in (setting.meta_options if meta_options is None else meta_options)
        if (a, m, s) not in have
    ]
    queue = [(a, m, setting, s, progress) for a, m, s in wanted]
    began, records = time.perf_counter(), []

    def finished(record: dict[str, Any]) -> None:
        records.append(record)
        if on_record is not None:
            on_record(record)
        if log is not None:
            elapsed = time.perf_counter() - began
            left = elapsed / len(records) * (len(queue) - len(records))
            log(
                f"[{len(records)}/{len(queue)}] {format_record(record)}   "
                f"(elapsed {elapsed:.0f} s, about {left:.0f} s left)"
            )

    if jobs <= 1:
        for job in queue:
            finished(_run_job(job))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_run_job, job) for job in queue]
            for future in futures:  # in submission order: the file's records keep the training order
                finished(future.result())
    return records


def aggregate(records: Iterable[Mapping[str, Any]], field: str = "accuracy") -> dict[tuple[str, int], dict]:
    """Per (architecture, meta tokens): the seeds' mean, min and max of ``record[field]`` (a dict keyed by
    evaluation length, or a list such as ``accuracy_by_pair``), and the seeds used."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["architecture"], r["meta_tokens"]), []).append(r)
    out = {}
    for key, group in groups.items():
        values = [r[field] for r in group]
        points = list(values[0]) if isinstance(values[0], Mapping) else list(range(len(values[0])))
        table = {p: [v[p] for v in values] for p in points}
        out[key] = {
            "points": points,
            "mean": [sum(vs) / len(vs) for vs in table.values()],
            "min": [min(vs) for vs in table.values()],
            "max": [max(vs) for vs in table.values()],
            "seeds": [r.get("seed", 0) for r in group],
        }
    return out


def format_record(record: dict[str, Any]) -> str:
    """One line: architecture, meta tokens, seed, size, training time, accuracy (or loss) per length."""
    if "heldout_loss" in record:
        accs = "held-out loss " + " ".join(f"T={k}: {v:.3f}" for k, v in record["heldout_loss"].items())
    else:
        accs = " ".join(f"T={k}: {v:.2f}" for k, v in record["accuracy"].items())
    return (
        f"{record['architecture']:>10} meta={record['meta_tokens']:<2} seed={record.get('seed', 0)} "
        f"params={record['parameters']:,} {record['train_seconds']:.0f} s  {accs}"
    )


# Multi-query associative recall (MQAR): 8 key-value pairs stored at the start, then all 8 keys asked
# again in random order at the end; a 64-token vocabulary gives 30 keys and 30 values (chance 1/30).
_MQAR = {"num_pairs": 8, "vocab_size": 64}
SETTINGS = {
    # the committed notebook (python -m minihymba.ablation --setting full --jobs 2
    #   --json notebooks/results/08_ablation_full.json): budget 20 min on 2 cores, took 1,356 s (shared)
    "full": AblationSetting(
        task="mqar",
        task_kwargs=_MQAR,
        train_lengths=(48,),
        eval_lengths=(48, 96),
        steps=800,
        lab=LabConfig(vocab_size=64),
    ),
}
SETTINGS["fast"] = replace(  # what CI runs: the same pipeline in seconds; its numbers are a smoke test
    SETTINGS["full"], steps=6, batch_size=8, eval_examples=16, curve_every=3
)

# Language modelling: the Python documentation corpus of the tiny-text model (minihymba/assets/tiny-text), its
# 4096-token BPE; held-out loss of every model on the same held-out windows.
_TEXT = {"vocab_size": 4096}
SETTINGS["text"] = AblationSetting(  # notebook 08's main experiment (the command is in the results JSON)
    task="text",
    task_kwargs=_TEXT,
    train_lengths=(128,),
    eval_lengths=(128, 512),
    steps=400,
    batch_size=16,
    eval_examples=128,  # held-out windows per length: 16,384 tokens at 128, 65,536 at 512
    curve_every=50,
    lab=LabConfig(vocab_size=4096, sliding_window=32),
    data="data/pydoc",
)
SETTINGS["text-fast"] = replace(  # CI: the text pipeline on a miniature corpus; numbers mean nothing
    SETTINGS["text"],
    train_lengths=(32,),
    eval_lengths=(32, 64),
    steps=6,
    batch_size=4,
    eval_examples=4,
    curve_every=3,
    reference_width=32,
    lab=LabConfig(vocab_size=4096, sliding_window=16),
    data=None,  # the miniature corpus cut from the shipped sample
)

SMOKE_TEST = "the fast settings are smoke tests: their numbers come from 6 training steps and mean nothing"


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)  # atomic: an interrupted write never leaves half a file


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """``python -m minihymba.ablation --setting full --jobs 2 --json results.json``: train the setting's
    models, appending each record to the JSON file as it finishes; a rerun skips the records already there."""
    parser = argparse.ArgumentParser(prog="python -m minihymba.ablation", description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="fast")
    parser.add_argument("--json", default=None, help="append the records here (and resume from it)")
    parser.add_argument("--architectures", default=None, help="comma-separated subset of the setting's")
    parser.add_argument("--jobs", type=int, default=1, help="models trained at once (one thread each)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar per model")
    args = parser.parse_args(argv)
    setting = SETTINGS[args.setting]
    config = json.loads(json.dumps(asdict(setting)))
    command = " ".join(["python -m minihymba.ablation", *(sys.argv[1:] if argv is None else argv)])
    if args.setting.endswith("fast"):
        print(f"NOTE: {SMOKE_TEST}")
    path = None if args.json is None else Path(args.json)
    payload: dict[str, Any] = {"setting": args.setting, "config": config, "torch": torch.__version__}
    payload.update({"records": [], "runs": []})
    if path is not None and path.exists():
        stored = json.loads(path.read_text())
        if (stored.get("setting"), stored.get("config")) != (args.setting, config):
            raise SystemExit(
                f"{path} holds records of another setting or config; delete it or choose another --json"
            )
        payload = {**payload, **stored}
        if payload["records"]:
            print(f"resuming {path}: {len(payload['records'])} records already there are skipped")
    run = {"command": command, "jobs": args.jobs, "seconds": 0.0, "records_added": 0}
    payload["runs"].append(run)
    began = time.perf_counter()

    def save(record: dict[str, Any]) -> None:
        payload["records"].append(record)
        run["seconds"] = round(time.perf_counter() - began, 1)
        run["records_added"] += 1
        payload["seconds"] = round(sum(r["seconds"] for r in payload["runs"]), 1)
        if path is not None:
            _write_json(path, payload)

    architectures = None if args.architectures is None else tuple(args.architectures.split(","))
    records = run_ablation(
        setting,
        architectures,
        done=payload["records"],
        on_record=save,
        jobs=args.jobs,
        progress=not args.no_progress,
    )
    run["seconds"] = round(time.perf_counter() - began, 1)
    payload["seconds"] = round(sum(r["seconds"] for r in payload["runs"]), 1)
    if path is not None:
        _write_json(path, payload)
    print(f"{len(records)} models trained in {run['seconds']:.0f} s ({payload['seconds']:.0f} s in all runs)")
    if args.setting.endswith("fast"):
        print(f"NOTE: {SMOKE_TEST}")
    return records


if __name__ == "__main__":
    main()
