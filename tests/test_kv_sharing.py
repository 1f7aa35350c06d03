"""Cross-layer KV sharing in ``tiny_config``: groups (2, 3) and (4, 5, 6); layers 0, 7 global, 1 unshared.

Consumers have no k/v rows, attend over exactly their producer's keys and values, and their own weights
cannot change those keys.
"""

from __future__ import annotations

import pytest
import torch

PRODUCER_CONSUMERS = [(2, 3), (4, 5), (4, 6)]


def ids(cfg, n=13, seed=0) -> torch.Tensor:
    return torch.randint(3, cfg.vocab_size, (2, n), generator=torch.Generator().manual_seed(seed))


def q_rows(cfg) -> slice:
    return slice(0, cfg.num_heads * cfg.head_dim)


def k_rows(cfg) -> slice:
    q = cfg.num_heads * cfg.head_dim
    return slice(q, q + cfg.num_kv_heads * cfg.head_dim)


@torch.no_grad()
def cached_keys(model, x) -> list[torch.Tensor | None]:
    cache = model.new_cache(x.shape[0])
    model(x, cache=cache)
    return [None if e is None else e.keys.clone() for e in cache.kv]


def test_consumers_have_no_kv_rows(tiny_config, tiny_model):
    cfg = tiny_config
    for i, layer in enumerate(tiny_model.model.layers):
        rows = layer.mamba.in_proj.weight.shape[0]
        if cfg.owns_kv(i):
            kv_rows = cfg.num_kv_heads * (cfg.head_dim + cfg.v_head_dim)
            assert rows == cfg.num_heads * cfg.head_dim + kv_rows + 2 * cfg.d_inner
        else:
            assert rows == cfg.num_heads * cfg.head_dim + 2 * cfg.d_inner
    with torch.no_grad():
        cache = tiny_model.new_cache(2)
        tiny_model(ids(cfg), cache=cache)
    lengths = cache.kv_lengths()
    assert [n > 0 for n in lengths] == [cfg.owns_kv(i) for i in range(cfg.num_layers)]


@pytest.mark.parametrize(("producer", "consumer"), PRODUCER_CONSUMERS)
def test_consumer_attends_over_the_producers_keys(tiny_model, producer, consumer):
    seen = {}

    def grab(index):
        def hook(module, args, output):
            seen[index] = output[1]  # (out, KVEntries, probs)

        return hook

    handles = [tiny_model.model.layers[i].mamba.register_forward_hook(grab(i)) for i in (producer, consumer)]
    try:
        with torch.no_grad():
            tiny_model(ids(tiny_model.config))
    finally:
        for h in handles:
            h.remove()
    assert seen[consumer].keys is seen[producer].keys and seen[consumer].values is seen[producer].values


@pytest.mark.parametrize(("producer", "consumer"), PRODUCER_CONSUMERS)
def test_consumer_q_rows_do_not_change_producer_keys(tiny_config, tiny_model, producer, consumer):
    x = ids(tiny_config, seed=1)
    before = cached_keys(tiny_model, x)
    logits_before = tiny_model(x).logits.detach()
    with torch.no_grad():
        tiny_model.model.layers[consumer].mamba.in_proj.weight[q_rows(tiny_config)].normal_(0, 0.5)
    after = cached_keys(tiny_model, x)
    torch.testing.assert_close(after[producer], before[producer], atol=0, rtol=0)
    # the perturbation was real: it changes the logits and the keys of the global layer after it
    assert not torch.allclose(tiny_model(x).logits.detach(), logits_before, atol=1e-4)
    assert not torch.allclose(after[7], before[7], atol=1e-4)


@pytest.mark.parametrize(("producer", "consumer"), PRODUCER_CONSUMERS)
def test_zeroing_producer_k_rows_changes_the_consumer(tiny_config, tiny_model, producer, consumer):
    """The consumer's output changes through the shared keys alone (its input is pinned to the original)."""
    x = ids(tiny_config, seed=2)
    layer = tiny_model.model.layers[consumer]
    captured = {}

    def capture(module, args, output):
        captured["input"], captured["output"] = args[0].clone(), output[0].clone()

    handle = layer.register_forward_hook(capture)
    with torch.no_grad():
        tiny_model(x)
    handle.remove()

    def pin_input(module, args):
        return (captured["input"], *args[1:])

    def run_pinned() -> torch.Tensor:
        out = {}

        def grab_output(module, args, output):
            out["y"] = output[0].clone()

        pin = layer.register_forward_pre_hook(pin_input)
        grab = layer.register_forward_hook(grab_output)
        try:
            with torch.no_grad():
                tiny_model(x)
        finally:
            pin.remove()
            grab.remove()
        return out["y"]

    torch.testing.assert_close(run_pinned(), captured["output"], atol=0, rtol=0)  # pinning alone: no change
    with torch.no_grad():
        tiny_model.model.layers[producer].mamba.in_proj.weight[k_rows(tiny_config)] = 0
    changed = run_pinned()
    assert (changed - captured["output"]).abs().max() > 1e-3


def test_unshared_swa_layer_owns_its_keys(tiny_config, tiny_model):
    """Layer 1 (sliding window, no group) and the global layers keep their own keys."""
    x = ids(tiny_config, seed=3)
    before = cached_keys(tiny_model, x)
    with torch.no_grad():
        tiny_model.model.layers[1].mamba.in_proj.weight[k_rows(tiny_config)].mul_(2)
    after = cached_keys(tiny_model, x)
    torch.testing.assert_close(after[0], before[0], atol=0, rtol=0)  # earlier layer: untouched
    torch.testing.assert_close(after[1], 2 * before[1], atol=1e-5, rtol=1e-5)  # RoPE is linear in k
