"""The exercise checks: right answers give True, wrong ones False with a hint that does not reveal the
answer, a missing answer (None) asks for one; the expected answers agree with the model itself."""

from __future__ import annotations

import json

import pytest
import torch

from minihymba import HymbaConfig, HymbaForCausalLM
from minihymba import exercises as ex
from minihymba.masks import hymba_mask_mod, materialize


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


# --- notebooks 00, 03, 05 ---


def test_attention_without_sharing(capsys) -> None:
    from minihymba.params import attention_parameters

    real = HymbaConfig()
    right = 32 * (1600 + 320 + 640) * 1600
    assert right == attention_parameters(real, kv_sharing=False) == 131_072_000
    assert "23,040,000" in _verdict(capsys, ex.check_attention_without_sharing(right), True)
    shared = attention_parameters(real)
    assert "with" in _verdict(capsys, ex.check_attention_without_sharing(shared), False)
    no_gqa = attention_parameters(real, kv_sharing=False, gqa=False)
    assert "Hkv" in _verdict(capsys, ex.check_attention_without_sharing(no_gqa), False)
    out = _verdict(capsys, ex.check_attention_without_sharing(1), False)
    assert "131" not in out
    assert ex.check_attention_without_sharing(None) is False


def test_kv_sources(capsys, tiny_hub) -> None:
    real = HymbaConfig()
    right = {c: g[0] for g in real.kv_share_groups for c in g[1:]}
    assert right[18] == 16
    assert "18: 16" in _verdict(capsys, ex.check_kv_sources(right), True)
    neighbour = {c: c - 1 for c in right}
    assert "first" in _verdict(capsys, ex.check_kv_sources(neighbour), False)
    assert "owns_kv" in _verdict(capsys, ex.check_kv_sources({2: 1}), False)
    _verdict(capsys, ex.check_kv_sources({4: 3}, tiny_hub), True)
    assert ex.check_kv_sources(None) is False


def test_visible_keys(capsys) -> None:
    mask = materialize(hymba_mask_mod(3, 4), 14)[0]
    for q in (0, 5, 13):
        _verdict(capsys, ex.check_visible_keys(int(mask[q].sum()), q, 3, 4), True)
    assert int(mask[13].sum()) == 4 + 3 + 1
    assert "inclusive" in _verdict(capsys, ex.check_visible_keys(7, 13, 3, 4), False)
    assert "meta" in _verdict(capsys, ex.check_visible_keys(4, 13, 3, 4), False)
    _verdict(capsys, ex.check_visible_keys(14, 13, None, 4), True)
    assert "count" in _verdict(capsys, ex.check_visible_keys(99, 13, 3, 4), False)
    assert ex.check_visible_keys(None, 13, 3, 4) is False


@pytest.mark.parametrize(
    ("window", "n_meta", "seq_len", "block"), [(3, 2, 20, 4), (5, 7, 33, 8), (None, 3, 17, 4)]
)
def test_visited_tiles_matches_the_block_mask(window, n_meta, seq_len, block) -> None:
    dense = materialize(hymba_mask_mod(window, n_meta), seq_len)[0]
    blocks = -(-seq_len // block)
    padded = torch.zeros(blocks * block, blocks * block, dtype=torch.bool)
    padded[:seq_len, :seq_len] = dense
    visited = padded.view(blocks, block, blocks, block).any(3).any(1)
    assert ex._visited_tiles(window, n_meta, seq_len, block) == int(visited.sum())


def test_visited_tiles(capsys) -> None:
    right = ex._visited_tiles(1024, 128, 128 + 8192, 128)
    assert right == 605
    assert "85.7% skipped" in _verdict(capsys, ex.check_visited_tiles(605, 1024, 128, 8320), True)
    assert "skipped" in _verdict(capsys, ex.check_visited_tiles(65 * 65 - 605, 1024, 128, 8320), False)
    assert "global" in _verdict(capsys, ex.check_visited_tiles(2145, 1024, 128, 8320), False)
    no_meta = ex._visited_tiles(1024, 0, 8320, 128)
    assert "meta" in _verdict(capsys, ex.check_visited_tiles(no_meta, 1024, 128, 8320), False)
    assert "row" in _verdict(capsys, ex.check_visited_tiles(1, 1024, 128, 8320), False)
    assert ex.check_visited_tiles(None, 1024, 128, 8320) is False


def test_kv_head(capsys) -> None:
    assert "KV head 3" in _verdict(capsys, ex.check_kv_head(3, 17), True)
    assert "interleaved" in _verdict(capsys, ex.check_kv_head(17 % 5, 17), False)
    assert "share" in _verdict(capsys, ex.check_kv_head(0, 17), False)
    with pytest.raises(ValueError):
        ex.check_kv_head(0, 25)
    assert ex.check_kv_head(None, 17) is False


def test_kv_cache_bytes(capsys) -> None:
    right = (3 * (128 + 8192) + 14 * (128 + 1024)) * 5 * (64 + 128) * 2
    assert right == 78_888_960
    assert "78.9 MB" in _verdict(capsys, ex.check_kv_cache_bytes(right), True)
    state = 32 * 3200 * (4 + 16) * 2
    assert "states" in _verdict(capsys, ex.check_kv_cache_bytes(right + state), False)
    unshared = (3 * 8320 + 29 * 1152) * 960 * 2
    assert "consumer" in _verdict(capsys, ex.check_kv_cache_bytes(unshared), False)
    assert "M + W" in _verdict(capsys, ex.check_kv_cache_bytes(17 * 8320 * 960 * 2), False)
    assert "2 bytes" in _verdict(capsys, ex.check_kv_cache_bytes(right // 2), False)
    assert "megabytes" in _verdict(capsys, ex.check_kv_cache_bytes(79), False)
    assert ex.check_kv_cache_bytes(None) is False


def test_cache_growth_per_token(capsys) -> None:
    from minihymba.memory import cache_bytes

    real = HymbaConfig()
    right = 3 * 960 * 2
    grown = cache_bytes(real, 5001).total - cache_bytes(real, 5000).total
    assert right == grown == 5760
    _verdict(capsys, ex.check_cache_growth_per_token(right), True)
    assert "drops" in _verdict(capsys, ex.check_cache_growth_per_token(17 * 960 * 2), False)
    assert "which layers" in _verdict(capsys, ex.check_cache_growth_per_token(1), False)
    no_window = real.replace(sliding_window=None, kv_share_groups=())
    unwindowed = cache_bytes(no_window, 5001).total - cache_bytes(no_window, 5000).total
    _verdict(capsys, ex.check_cache_growth_per_token(unwindowed, no_window), True)
    assert ex.check_cache_growth_per_token(None) is False


def test_conv_inputs_read(capsys) -> None:
    assert "3 of the 4" in _verdict(capsys, ex.check_conv_inputs_read(3), True)
    assert "taps" in _verdict(capsys, ex.check_conv_inputs_read(4), False)
    assert "taps" in _verdict(capsys, ex.check_conv_inputs_read(1), False)
    assert ex.check_conv_inputs_read(None) is False


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


def test_decode_visible_keys(capsys) -> None:
    _verdict(capsys, ex.check_decode_visible_keys((25, 24), window=16, n_meta=8), True)
    assert "hub" in _verdict(capsys, ex.check_decode_visible_keys((25, 25), window=16, n_meta=8), False)
    _verdict(capsys, ex.check_decode_visible_keys((24, 23), window=16, n_meta=8), False)


def test_decode_visible_keys_matches_the_masks() -> None:
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


# --- notebook 01 ---
def test_per_key_ratio(capsys) -> None:
    assert ex.check_per_key_ratio(None, 0.3, 8, 15) is False
    assert "replace None" in capsys.readouterr().out
    _verdict(capsys, ex.check_per_key_ratio(0.5625, 0.3, 8, 15), True)  # (0.3 / 8) * 15
    assert "group" in _verdict(capsys, ex.check_per_key_ratio(4.5, 0.3, 8, 15), False)  # 0.3 * 15
    assert "then divide" in _verdict(capsys, ex.check_per_key_ratio(2.0, 0.3, 8, 15), False)
    with pytest.raises(ValueError):
        ex.check_per_key_ratio(1.0, 0.3, 20, 15)
