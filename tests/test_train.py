"""Training loop: loss goes down, runs are bit-identical for a seed, checkpoints load and resume exactly,
and the shipped tiny model loads offline and still reaches its recorded accuracy."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import minihymba
from minihymba.scans import SCAN_NAMES
from minihymba.tasks import TASKS, accuracy, make_task
from minihymba.train import TrainConfig, _parser, lr_at, main, tiny_model_config, train


def _tiny(**changes) -> TrainConfig:
    """A very small run: D=32, 2 layers (one global), 2 meta tokens, MQAR with 2 pairs over 16 tokens."""
    base = dict(
        task="mqar",
        task_kwargs={"num_pairs": 2, "vocab_size": 16},
        steps=5,
        batch_size=8,
        lr=3e-3,
        warmup_steps=2,
        eval_every=0,
        eval_batches=1,
        hidden_size=32,
        num_layers=2,
        num_meta_tokens=2,
        sliding_window=4,
        seed=0,
    )
    base.update(changes)
    return TrainConfig(**base)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key  # bit-identical


def test_loss_decreases():
    model, result = train(_tiny(steps=40, warmup_steps=5, eval_every=40, eval_batches=2), progress=False)
    losses = [r["loss"] for r in result["history"]]
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, (first, last)
    assert "eval_accuracy" in result["history"][-1]


def test_two_runs_are_bit_identical_and_seed_matters():
    a, _ = train(_tiny(), progress=False)
    b, _ = train(_tiny(), progress=False)
    _assert_same_weights(a, b)
    c, _ = train(_tiny(seed=1), progress=False)
    assert not torch.equal(
        a.state_dict()["model.embed_tokens.weight"], c.state_dict()["model.embed_tokens.weight"]
    )


def test_checkpoint_loads_and_resume_is_exact(tmp_path):
    straight, _ = train(_tiny(steps=6), progress=False)
    out = tmp_path / "run"
    interrupted, _ = train(_tiny(steps=6), out, until=3, progress=False)
    assert json.loads((out / "trainer_state.json").read_text())["step"] == 3
    loaded = minihymba.load_pretrained(out)  # the hub format: load_pretrained reads it
    _assert_same_weights(interrupted, loaded)
    resumed, _ = train(_tiny(steps=6), out, resume=True, progress=False)
    _assert_same_weights(straight, resumed)
    _assert_same_weights(resumed, minihymba.load_pretrained(out))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(_tiny(), tmp_path / "empty", resume=True, progress=False)


def test_lr_schedule():
    tc = _tiny(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, tc) == pytest.approx(0.1) and lr_at(9, tc) == pytest.approx(1.0)
    assert lr_at(10, tc) == pytest.approx(1.0) and lr_at(99, tc) == pytest.approx(0.1, abs=1e-3)
    assert all(lr_at(s, tc) >= lr_at(s + 1, tc) for s in range(10, 99))


def test_tiny_model_config_has_every_layer_kind():
    cfg = tiny_model_config(TrainConfig())
    assert cfg.global_layers == (2,) and cfg.kv_share_groups == ((0, 1),) and cfg.num_meta_tokens == 8
    assert not cfg.is_global(0) and not cfg.owns_kv(1)


def test_cli(tmp_path, capsys):
    summary = main(
        [
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--hidden-size",
            "32",
            "--num-layers",
            "2",
            "--task-kwargs",
            '{"num_pairs": 2, "vocab_size": 16}',
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert summary["steps"] == 2 and 0.0 <= summary["accuracy"] <= 1.0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    with pytest.raises(ValueError, match="steps"):
        train(_tiny(steps=0), progress=False)


def test_shipped_tiny_model_reaches_recorded_accuracy():
    path = minihymba.assets_path("tiny-mqar")
    record = json.loads((path / "trainer_state.json").read_text())
    tc = record["train_config"]
    model = minihymba.load_tiny()
    assert model.config.vocab_size == tc["task_kwargs"]["vocab_size"]
    ids, targets = make_task(tc["task"], 256, seed=20261125, **tc["task_kwargs"])  # a fresh batch
    with torch.no_grad():
        acc = accuracy(model(ids).logits, targets)
    assert acc >= record["final_eval"]["accuracy"] - 0.05, acc
    with pytest.raises(FileNotFoundError, match="no shipped asset"):
        minihymba.assets_path("does-not-exist")


def test_every_command_line_option_is_described():
    parser = _parser()
    options = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(options) >= {f.name for f in dataclasses.fields(TrainConfig)}
    undescribed = [dest for dest, action in options.items() if not (action.help or "").strip()]
    assert not undescribed
    assert tuple(options["scan_impl"].choices) == ("auto", *SCAN_NAMES)
    assert sorted(options["task"].choices) == sorted([*TASKS, "text"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--scan-impl", "no-such-scan"])
