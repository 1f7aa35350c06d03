"""The exercise checks: right answers give True, wrong ones False with a hint that does not reveal the
answer, a missing answer (None) asks for one; the expected answers agree with the model itself."""

from __future__ import annotations

import json

import pytest
import torch

from minihymba import HymbaConfig, HymbaForCausalLM
from minihymba import exercises as ex


@pytest.fixture(scope="module")
def tiny_hub(fixture_dir) -> dict:
    return json.loads((fixture_dir / "config.json").read_text())


def _verdict(capsys, ok: bool, expected: bool) -> str:
    out = capsys.readouterr().out
    assert ok is expected
    assert out.startswith("Right!" if expected else "Not yet. Hint:"), out
    return out


def test_unanswered_asks_for_an_answer(capsys, tiny_hub) -> None:
    for check in (ex.check_meta_token_reach, ex.check_layer_parameters):
        assert check(None) is False
        assert "replace None" in capsys.readouterr().out
    assert ex.check_own_kv_rows(None, tiny_hub, 4) is False
    assert "replace None" in capsys.readouterr().out


def test_meta_token_reach(capsys) -> None:
    _verdict(capsys, ex.check_meta_token_reach({1, 2, 3, 4, 5, 6}), True)
    _verdict(capsys, ex.check_meta_token_reach(range(1, 4), num_layers=3), True)
    assert "embedding" in _verdict(capsys, ex.check_meta_token_reach(range(7)), False)
    assert "layer 0" in _verdict(capsys, ex.check_meta_token_reach([1]), False)
    assert "0..6" in _verdict(capsys, ex.check_meta_token_reach([9]), False)


@pytest.mark.parametrize("source", ["real", "tiny", "variant"])
def test_layer_parameter_formula_matches_the_model(source, tiny_hub) -> None:
    cfg = HymbaConfig() if source == "real" else HymbaConfig.from_hf_config(tiny_hub)
    if source == "variant":  # the switches the 1.5B leaves off or on
        cfg = cfg.replace(proj_bias=True, conv_bias=False, inner_layernorms=False, mlp_act="relu2")
    with torch.device("meta"):
        model = HymbaForCausalLM(cfg)
    for i, layer in enumerate(model.model.layers):
        assert ex._layer_parameters(cfg, i) == sum(p.numel() for p in layer.parameters()), f"layer {i}"


def test_layer_parameters(capsys, tiny_hub) -> None:
    real = HymbaConfig()
    right = ex._layer_parameters(real, 1)
    by_hand = (
        8960 * 1600  # in_proj: q 1600 + k 320 + v 640 + x 3200 + z 3200 rows
        + 3200 * 4
        + 3200  # conv1d weight, bias
        + 132 * 3200  # x_proj: dt (R = 100), B, C (N = 16 each)
        + 100 * 3200
        + 3200  # dt_proj weight, bias
        + 3200 * 16
        + 3200  # A_log, D
        + 100
        + 16
        + 16  # dt, B, C norms
        + 2 * 3200  # pre-average norms
        + 1600 * 3200  # out_proj
        + 3 * 5504 * 1600  # MLP gate, up, down
        + 2 * 1600  # input and pre-MLP norms
    )
    assert right == by_hand == 46_700_932
    assert "layer 1" in _verdict(capsys, ex.check_layer_parameters(right), True)
    consumer = ex._layer_parameters(real, 2)
    _verdict(capsys, ex.check_layer_parameters(consumer, layer=2), True)
    for wrong in (right - 1600, consumer, right + 10**6):
        out = _verdict(capsys, ex.check_layer_parameters(wrong), False)
        assert f"{right:,}" not in out and str(right) not in out
    assert "RMSNorm" in _verdict(capsys, ex.check_layer_parameters(right - 16), False)
    tiny = HymbaConfig.from_hf_config(tiny_hub)
    _verdict(capsys, ex.check_layer_parameters(ex._layer_parameters(tiny, 4), 4, tiny_hub), True)


def test_own_kv_rows(capsys, tiny_hub) -> None:
    cfg = HymbaConfig.from_hf_config(tiny_hub)
    producer_rows = sum(cfg.replace(kv_share_groups=()).in_proj_sizes(4))
    assert (sum(cfg.in_proj_sizes(4)), producer_rows) == (320, 416)
    _verdict(capsys, ex.check_own_kv_rows(416, tiny_hub, 4), True)
    _verdict(capsys, ex.check_own_kv_rows(416, cfg, 4), True)
    for wrong, word in (
        (320, "today"),
        (320 + 2 * 32, "head width"),
        (320 + 32 + 128, "GQA"),
        (999, "KV heads"),
    ):
        out = _verdict(capsys, ex.check_own_kv_rows(wrong, tiny_hub, 4), False)
        assert word in out and "416" not in out
    real_rows = sum(HymbaConfig().replace(kv_share_groups=()).in_proj_sizes(2))
    _verdict(capsys, ex.check_own_kv_rows(real_rows, None, 2), True)
    with pytest.raises(ValueError, match="already"):
        ex.check_own_kv_rows(1, tiny_hub, 3)


# --- notebooks 02, 04, 06 ---
def test_decay_steps(capsys) -> None:
    assert ex.check_decay_steps(None, dt=0.25, a=-2.0) is False
    assert "replace None" in capsys.readouterr().out
    _verdict(capsys, ex.check_decay_steps(10, dt=0.25, a=-2.0), True)  # exp(-0.5 k) < 0.01 from k = 10
    assert "logarithm" in _verdict(capsys, ex.check_decay_steps(9, dt=0.25, a=-2.0), False)
    _verdict(capsys, ex.check_decay_steps(1, dt=1.0, a=-10.0), True)
    with pytest.raises(ValueError):
        ex.check_decay_steps(1, dt=0.5, a=1.0)


def test_conv_state_reads(capsys) -> None:
    _verdict(capsys, ex.check_conv_state_reads(3, conv_kernel=4), True)
    assert "new token" in _verdict(capsys, ex.check_conv_state_reads(4, conv_kernel=4), False)
    _verdict(capsys, ex.check_conv_state_reads(1, conv_kernel=4), False)


def test_conv_state_reads_matches_the_library() -> None:
    from minihymba.ssm import causal_conv1d

    k = 4
    x, weight, state = torch.randn(1, 1, 3), torch.randn(3, k), torch.randn(1, 3, k)
    out = causal_conv1d(x, weight, None, state)[0]
    read = 0
    for j in range(k):
        poked = state.clone()
        poked[..., j] += 1.0
        read += not torch.equal(causal_conv1d(x, weight, None, poked)[0], out)
    assert read == k - 1


def test_chance_levels(capsys) -> None:
    from minihymba.tasks import vocab_ranges

    values = len(vocab_ranges(32)[1])
    _verdict(capsys, ex.check_chance_levels((1 / values, 0.25)), True)
    _verdict(capsys, ex.check_chance_levels((0.0714, 0.25), vocab_size=32, num_pairs=4), True)
    out = _verdict(capsys, ex.check_chance_levels((1 / 32, 0.25)), False)
    assert "value tokens" in out and "0.071" not in out
    _verdict(capsys, ex.check_chance_levels((1 / values, 0.5)), False)


def test_weakest_link(capsys) -> None:
    measured = {"conv": 0.29, "scan": 0.55}
    _verdict(capsys, ex.check_weakest_link("conv", measured), True)
    _verdict(capsys, ex.check_weakest_link("scan", measured), False)
    assert "knockout names" in _verdict(capsys, ex.check_weakest_link("mlp", measured), False)


def test_visible_keys(capsys) -> None:
    _verdict(capsys, ex.check_visible_keys((25, 24), window=16, n_meta=8), True)
    assert "hub" in _verdict(capsys, ex.check_visible_keys((25, 25), window=16, n_meta=8), False)
    _verdict(capsys, ex.check_visible_keys((24, 23), window=16, n_meta=8), False)


def test_visible_keys_matches_the_masks() -> None:
    from minihymba.masks import decode_window, hymba_mask_mod, materialize

    seen = [int(materialize(hymba_mask_mod(decode_window(16, hub), 8), 101)[0, 100].sum()) for hub in (0, 1)]
    assert tuple(seen) == (25, 24)


def test_top_p_kept(capsys) -> None:
    probs = [0.5, 0.3, 0.1, 0.05, 0.05]
    _verdict(capsys, ex.check_top_p_kept(2, probs, top_p=0.8), True)  # 0.5 + 0.3 reaches 0.8
    _verdict(capsys, ex.check_top_p_kept(1, probs, top_p=0.4), True)
    assert "sort" in _verdict(capsys, ex.check_top_p_kept(3, probs, top_p=0.8), False)


def test_top_p_kept_matches_filter_logits() -> None:
    from minihymba.generation import filter_logits

    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    for p in (0.3, 0.5, 0.9):
        kept = int(torch.isfinite(filter_logits(logits, top_p=p)).sum())
        assert ex.check_top_p_kept(kept, logits[0].softmax(-1).tolist(), top_p=p)
