"""The ablation lab: single-branch layers are the hybrid layer with one branch removed, parameter counts
match across architectures, and a (very short) ablation run is deterministic and well-formed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from minihymba.ablation import (
    ARCHITECTURES,
    SETTINGS,
    AblationSetting,
    LabConfig,
    LabModel,
    SingleBranchMixer,
    accuracy_by_pair,
    aggregate,
    build_model,
    chance_accuracy,
    count_parameters,
    lab_config,
    layer_kinds,
    main,
    matched_config,
    run_ablation,
)

LAB = LabConfig(vocab_size=16, num_layers=4, num_meta_tokens=2, sliding_window=4, global_layer=2)


def test_layer_kinds():
    assert layer_kinds("parallel", 4) == ("hybrid",) * 4
    assert layer_kinds("sequential", 4) == ("attention", "ssm", "attention", "ssm")
    assert layer_kinds("attention", 3) == ("attention",) * 3
    assert layer_kinds("ssm", 2) == ("ssm", "ssm")
    with pytest.raises(ValueError, match="unknown architecture"):
        layer_kinds("transformer", 4)


def test_single_branch_layers_keep_only_their_parameters():
    config = lab_config(LAB, 32, meta=True)
    keys = {a: set(build_model(a, config).state_dict()) for a in ARCHITECTURES}
    assert "model.layers.0.mamba.A_log.0" not in keys["attention"]
    assert "model.layers.0.mamba.pre_avg_layernorm2.weight" not in keys["attention"]
    assert "model.layers.0.mamba.pre_avg_layernorm1.weight" not in keys["ssm"]
    assert (
        "model.layers.0.mamba.A_log.0" in keys["ssm"] and "model.layers.0.mamba.A_log.0" in keys["parallel"]
    )
    assert "model.layers.1.mamba.A_log.0" in keys["sequential"]  # layer 1 is an SSM layer
    assert "model.layers.0.mamba.A_log.0" not in keys["sequential"]  # layer 0 is an attention layer
    attn = build_model("attention", config).model.layers[0].mamba
    q, k, v = config.in_proj_sizes(0)[:3]
    assert attn.in_proj.weight.shape == (q + k + v, config.hidden_size)


@pytest.mark.parametrize("branch", ["attention", "ssm"])
def test_single_branch_mixer_is_the_hybrid_without_the_other_branch(branch):
    """Zero the other branch's RMSNorm gain and double this one's: the hybrid's (n1(a) + n2(y)) / 2 becomes
    this branch alone. The single-branch mixer with the same weights must give exactly that."""
    config = lab_config(LAB, 32, meta=True)
    torch.manual_seed(0)
    hybrid = build_model("parallel", config, seed=1).eval()
    single = build_model("attention" if branch == "attention" else "ssm", config, seed=2).eval()
    with torch.no_grad():
        for h_layer, s_layer in zip(hybrid.model.layers, single.model.layers, strict=True):
            keep, drop = ("pre_avg_layernorm1", "pre_avg_layernorm2")[:: 1 if branch == "attention" else -1]
            getattr(h_layer.mamba, drop).weight.zero_()
            getattr(h_layer.mamba, keep).weight.mul_(2.0)
            rows = h_layer.mamba.in_proj.weight.split(h_layer.mamba.split_sizes)  # q, k, v, x, z
            s_layer.mamba.in_proj.weight.copy_(torch.cat(rows[:3] if branch == "attention" else rows[3:]))
            for name, p in s_layer.state_dict().items():
                if "in_proj" not in name:
                    p.copy_(h_layer.state_dict()[name] / (2.0 if name.endswith(f"{keep}.weight") else 1.0))
        single.model.embed_tokens.weight.copy_(hybrid.model.embed_tokens.weight)
        single.model.memory_tokens.copy_(hybrid.model.memory_tokens)
        single.model.final_layernorm.weight.copy_(hybrid.model.final_layernorm.weight)
        ids = torch.randint(0, LAB.vocab_size, (2, 11), generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(single(ids).logits, hybrid(ids).logits, atol=1e-5, rtol=1e-5)


def test_matched_configs_have_equal_parameter_counts():
    budget = count_parameters("parallel", lab_config(LAB, 48, meta=False))
    counts = {}
    for architecture in ARCHITECTURES:
        config = matched_config(architecture, LAB, budget, meta=False)
        counts[architecture] = count_parameters(architecture, config)
        assert abs(counts[architecture] - budget) <= 0.01 * budget, (
            architecture,
            counts[architecture],
            budget,
        )
    assert counts["parallel"] == budget
    assert len({matched_config(a, LAB, budget, meta=False).hidden_size for a in ARCHITECTURES}) > 1
    with pytest.raises(ValueError, match="at most"):
        matched_config("attention", LAB, 10, meta=False)


def test_global_layer_must_attend():
    config = lab_config(LAB, 32, meta=True).replace(global_layers=(1,))
    with pytest.raises(ValueError, match="no attention"):
        LabModel(config, "sequential")  # layer 1 of a sequential stack is SSM-only
    with pytest.raises(ValueError, match="branch"):
        SingleBranchMixer(config, 0, "mlp")


def _short_setting(**changes) -> AblationSetting:
    base = {
        "task": "mqar",
        "task_kwargs": {"num_pairs": 2, "vocab_size": 16},
        "train_lengths": (10, 14),
        "eval_lengths": (10, 14),
        "steps": 3,
        "batch_size": 4,
        "eval_examples": 8,
        "reference_width": 16,
        "lab": LAB,
        "curve_every": 2,
        "seeds": (0,),
        "meta_options": (True, False),
        "architectures": ("parallel", "ssm"),
    }
    return AblationSetting(**{**base, **changes})


def test_a_short_ablation_is_deterministic():
    setting = _short_setting()
    first = run_ablation(setting, log=None)
    again = run_ablation(setting, log=None)
    assert [r["architecture"] for r in first] == ["parallel", "parallel", "ssm", "ssm"]
    assert [r["meta_tokens"] for r in first] == [2, 0, 2, 0]
    for a, b in zip(first, again, strict=True):
        assert a["accuracy"] == b["accuracy"] and a["final_loss"] == b["final_loss"]
        assert set(a["accuracy"]) == {"10", "14"} and all(0.0 <= v <= 1.0 for v in a["accuracy"].values())
        assert a["curve"] == b["curve"] and [step for step, _ in a["curve"]] == [2]  # curve_every=2, 3 steps
        assert len(a["accuracy_by_pair"]) == 2 and a["accuracy_by_pair"] == b["accuracy_by_pair"]


def test_seeds_differ_and_done_records_are_skipped():
    setting = _short_setting(seeds=(0, 1), meta_options=(True,), architectures=("attention",))
    records = run_ablation(setting, log=None)
    assert [(r["architecture"], r["seed"]) for r in records] == [("attention", 0), ("attention", 1)]
    assert records[0]["curve"] != records[1]["curve"] or records[0]["final_loss"] != records[1]["final_loss"]
    assert run_ablation(setting, log=None, done=records) == []  # everything there: nothing retrained
    seen = []
    rest = run_ablation(setting, log=None, done=records[:1], on_record=seen.append)
    assert (
        rest == seen
        and [r["seed"] for r in rest] == [1]
        and rest[0]["final_loss"] == records[1]["final_loss"]
    )
    summary = aggregate(records)
    row = summary[("attention", LAB.num_meta_tokens)]
    assert row["seeds"] == [0, 1] and row["points"] == ["10", "14"]
    for lo, mean, hi in zip(row["min"], row["mean"], row["max"], strict=True):
        assert lo <= mean <= hi
    assert aggregate(records, "accuracy_by_pair")[("attention", LAB.num_meta_tokens)]["points"] == [0, 1]


def test_accuracy_by_pair_and_chance():
    setting = _short_setting(task_kwargs={"num_pairs": 3, "vocab_size": 16}, eval_lengths=(14,))
    assert chance_accuracy(setting) == 1 / 6  # 16 tokens: 4 special, 6 keys, 6 values

    class Oracle(torch.nn.Module):  # answers every query right except those about pair 2
        def forward(self, ids):
            logits = torch.zeros(*ids.shape, 16)
            logits[:, :-1].scatter_(-1, ids[:, 1:, None], 1.0)  # predict the next token
            wrong = ids == ids[:, 3:4]  # the key of pair 2 (k_2 at column 3)
            logits[wrong] = 0.0
            logits[..., 0][wrong] = 1.0
            return SimpleNamespace(logits=logits)

    assert accuracy_by_pair(Oracle(), setting, 14) == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="mqar"):
        accuracy_by_pair(Oracle(), _short_setting(task="needle", task_kwargs={"vocab_size": 16}), 10)


def test_settings_and_command_line(tmp_path, capsys):
    assert SETTINGS["full"].steps > SETTINGS["fast"].steps
    assert len(SETTINGS["full"].seeds) >= 2
    with pytest.raises(ValueError, match="vocab_size"):
        AblationSetting(
            task="mqar",
            task_kwargs={"vocab_size": 16},
            train_lengths=(10,),
            eval_lengths=(10,),
            steps=1,
            lab=LabConfig(vocab_size=32),
        )
    with pytest.raises(ValueError, match="unknown architectures"):
        _short_setting(architectures=("mlp",))
    out = tmp_path / "fast.json"
    records = main(["--setting", "fast", "--json", str(out), "--architectures", "attention", "--no-progress"])
    assert "smoke test" in capsys.readouterr().out
    assert [(r["architecture"], r["seed"]) for r in records] == [
        ("attention", s) for s in SETTINGS["fast"].seeds
    ]
    payload = json.loads(out.read_text())
    assert payload["setting"] == "fast" and payload["records"] == records
    assert payload["runs"][0]["command"].endswith("--architectures attention --no-progress")
    assert payload["seconds"] == payload["runs"][0]["seconds"] > 0
    again = main(
        ["--setting", "fast", "--json", str(out), "--architectures", "attention,ssm", "--no-progress"]
    )
    assert [r["architecture"] for r in again] == ["ssm"] * len(SETTINGS["fast"].seeds)  # attention: skipped
    payload = json.loads(out.read_text())
    assert len(payload["records"]) == 4 and len(payload["runs"]) == 2
    assert payload["runs"][1]["records_added"] == 2
    payload["config"]["steps"] += 1
    out.write_text(json.dumps(payload))
    with pytest.raises(SystemExit, match="another setting"):
        main(["--setting", "fast", "--json", str(out), "--no-progress"])


def test_sample_corpus_splits_the_shipped_sample(tmp_path):
    from minihymba.corpus import load_tokens, sample_corpus, sample_windows

    out = sample_corpus(tmp_path / "mini")
    train, heldout = (load_tokens(out / f"{n}_tokens.safetensors") for n in ("train", "heldout"))
    stream = torch.cat([train, heldout])
    assert train.numel() == stream.numel() * 3 // 4 and heldout.numel() > 0
    windows = sample_windows(16)  # the same text, cut into BOS + 15-token windows
    torch.testing.assert_close(windows[0, 1:].int(), stream[:15])


def test_text_lab_scores_held_out_loss_on_shared_windows(tmp_path):
    """The text setting: one record per model with a held-out loss per length and a loss curve; the held-out
    loss is the mean cross-entropy over exactly ``eval_examples`` windows of each length."""
    import torch.nn.functional as F

    from minihymba.ablation import heldout_loss_by_length, run_one, text_data
    from minihymba.corpus import heldout_batches, load_tokens

    setting = SETTINGS["text-fast"]
    with pytest.raises(ValueError, match="unigram"):
        chance_accuracy(setting)
    with pytest.raises(ValueError, match="one length"):
        AblationSetting(**{**setting.__dict__, "train_lengths": (16, 32)})
    record = run_one("parallel", True, setting, seed=0)
    assert set(record["heldout_loss"]) == {"32", "64"} and "accuracy" not in record
    assert [s for s, _ in record["curve"]] == [3, 6]
    assert all(4.0 < v < 10.0 for v in record["heldout_loss"].values())  # near ln 4096 = 8.3 after 6 steps
    model = build_model("ssm", lab_config(setting.lab, 32, meta=True), seed=3).eval()
    tokens = load_tokens(f"{text_data(setting)}/heldout_tokens.safetensors")
    ids, targets = next(heldout_batches(tokens, setting.eval_examples, 32))
    with torch.no_grad():
        expected = F.cross_entropy(model(ids).logits.transpose(1, 2), targets).item()
    assert ids.shape[0] == setting.eval_examples
    assert heldout_loss_by_length(model, setting)[32] == pytest.approx(expected, rel=1e-5)
