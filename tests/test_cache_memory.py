"""The closed-form cache size (minihymba.memory) equals what a real cache holds, sliding-window caches stay
bounded between steps, and the real 1.5B numbers quoted in the docs are right."""

from __future__ import annotations

import pytest
import torch

from minihymba import HymbaConfig, cache_bytes, cache_variants
from minihymba.generation import meta_prefix_cache
from minihymba.memory import LLAMA_3_2_1B, LLAMA_3_2_3B, element_size, kv_entries, llama_kv_bytes


@torch.no_grad()
def run_and_measure(
    model, batch: int, prompt_len: int, steps: int, use_meta_cache: bool, padded: bool = False
):
    """Prefill then decode one token at a time; yield (columns after meta, cache) after every call."""
    cfg = model.config
    ids = torch.randint(3, cfg.vocab_size, (batch, prompt_len), generator=torch.Generator().manual_seed(0))
    mask = None
    if padded and batch > 1:
        mask = torch.ones_like(ids)
        mask[1, : prompt_len // 2] = 0  # left padding still occupies cache columns
    cache = meta_prefix_cache(model, batch) if use_meta_cache else model.new_cache(batch)
    model(ids, mask, cache=cache, last_only=True)
    yield prompt_len, cache
    for step in range(steps):
        model(ids[:, -1:], cache=cache, last_only=True)
        yield prompt_len + step + 1, cache


@pytest.mark.parametrize("prompt_len", [1, 2, 5, 9, 20])
@pytest.mark.parametrize("use_meta_cache", [True, False])
def test_measured_bytes_equal_the_formula(tiny_model, prompt_len, use_meta_cache):
    cfg = tiny_model.config
    for batch in (1, 3):
        for columns, cache in run_and_measure(tiny_model, batch, prompt_len, 7, use_meta_cache, padded=True):
            expected = cache_bytes(cfg, columns, batch_size=batch, dtype=torch.float32)
            assert cache.nbytes() == expected.total, f"batch {batch}, {columns} columns"
            lengths = cache.kv_lengths()
            assert lengths == [kv_entries(cfg, i, columns) for i in range(cfg.num_layers)]


def test_measured_bytes_in_bfloat16(tiny_model):
    model = tiny_model.to(torch.bfloat16)
    cfg = model.config
    for columns, cache in run_and_measure(model, 2, 6, 4, use_meta_cache=True):
        assert cache.nbytes() == cache_bytes(cfg, columns, batch_size=2, dtype="bf16").total
        assert cache.nbytes() * 2 == cache_bytes(cfg, columns, batch_size=2, dtype=torch.float32).total


def test_sliding_window_caches_stay_bounded(tiny_model):
    cfg = tiny_model.config
    m, w = cfg.num_meta_tokens, cfg.sliding_window
    swa_owners = [i for i in range(cfg.num_layers) if cfg.owns_kv(i) and not cfg.is_global(i)]
    consumers = [i for i in range(cfg.num_layers) if not cfg.owns_kv(i)]
    assert swa_owners and consumers and any(cfg.is_global(i) for i in range(cfg.num_layers))
    for columns, cache in run_and_measure(tiny_model, 2, 4, 3 * (m + w), use_meta_cache=False):
        lengths = cache.kv_lengths()
        assert all(lengths[i] <= m + w for i in swa_owners), (columns, lengths)
        assert all(lengths[i] == 0 for i in consumers)
        assert lengths[0] == m + columns  # layer 0 is global: it keeps everything
        for i in swa_owners:  # the meta entries are pinned, the rest are the most recent columns
            positions = cache.kv[i].positions[0].tolist()
            n = lengths[i] - m
            assert positions == list(range(m)) + list(range(m + columns - n, m + columns))


def test_real_config_numbers(real_config_path):
    cfg = HymbaConfig.from_hf_config(real_config_path)
    size = cache_bytes(cfg, 8192, dtype=torch.bfloat16)
    assert size.kv_bytes == 78_888_960  # 3 global x 8320 + 14 producers x 1152 entries, 1920 B each
    assert size.state_bytes == 4_096_000  # 32 layers x 3200 x (4 + 16) x 2 B
    assert size.total == 82_984_960
    # per token once past the window: only the 3 global layers grow, 3 x 5 x (64 + 128) x 2 B
    assert cache_bytes(cfg, 8193).total - size.total == 5760
    variants = cache_variants(cfg, 8192)
    assert variants["hymba"] == size
    assert variants["no_swa"].kv_bytes == 17 * (128 + 8192) * 1920  # owners only, all full length
    assert variants["no_sharing"].kv_bytes == (3 * 8320 + 29 * 1152) * 1920
    assert variants["no_swa_no_sharing"].kv_bytes == 32 * 8320 * 1920
    assert {v.state_bytes for v in variants.values()} == {4_096_000}
    assert llama_kv_bytes(**LLAMA_3_2_1B, seq_len=8192) == 268_435_456
    assert llama_kv_bytes(**LLAMA_3_2_3B, seq_len=8192) == 939_524_096
    assert cache_bytes(cfg, 8192, batch_size=4, dtype="fp32").total == 4 * 2 * size.total


def test_formula_matches_a_meta_device_model_cache(real_config_path):
    """Build the real-size model on the meta device and count what its prefill would store."""
    cfg = HymbaConfig.from_hf_config(real_config_path).replace(
        num_layers=4, global_layers=(0,), kv_share_groups=((1, 2),)
    )
    from minihymba import HymbaForCausalLM

    with torch.device("meta"):
        model = HymbaForCausalLM(cfg).to(torch.bfloat16)
    cache = model.new_cache(1)
    with torch.no_grad():
        model(torch.zeros(1, 1100, dtype=torch.long, device="meta"), cache=cache, last_only=True)
    assert cache.nbytes() == cache_bytes(cfg, 1100).total


def test_bad_arguments():
    cfg = HymbaConfig()
    with pytest.raises(ValueError, match="seq_len"):
        cache_bytes(cfg, -1)
    with pytest.raises(ValueError, match="unknown dtype"):
        element_size("int3")
    assert element_size("bf16") == 2 and element_size(torch.float32) == 4
