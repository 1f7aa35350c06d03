"""Fast attention paths (FlexAttention) and bfloat16 inference against the float32 references.

Tolerances: flex vs eager attention, both float32: atol/rtol 1e-5 (same arithmetic, different order).
Whole-model logits (a few units after 8 layers): atol 5e-5. bf16 vs fp32 logits: see the bf16 test.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from minihymba.attention import attention, attention_eager, attention_flex
from minihymba.impl import ATTENTION_IMPLS, Impl
from minihymba.masks import materialize, positional_mask_mod, to_block_mask

TOL = dict(atol=1e-5, rtol=1e-5)
MODEL_TOL = dict(atol=5e-5, rtol=1e-5)

pytestmark = pytest.mark.filterwarnings("ignore:.*materializes the full scores matrix.*")  # eager flex on CPU


def _qkv(b=2, h=4, h_kv=2, q_len=19, kv_len=19, dk=8, dv=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, q_len, dk, generator=g)
    k = torch.randn(b, h_kv, kv_len, dk, generator=g)
    v = torch.randn(b, h_kv, kv_len, dv, generator=g)
    return q, k, v


def _padded_mod(b: int, q_len: int, kv_len: int, window: int | None, n_pad: int = 4):
    """Row 1 left-padded by ``n_pad``; positions count real tokens only (as the model builds them)."""
    valid = torch.ones(b, kv_len, dtype=torch.bool)
    valid[1, :n_pad] = False
    kv_pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
    q_valid, q_pos = valid[:, kv_len - q_len :], kv_pos[:, kv_len - q_len :]
    return positional_mask_mod(q_pos, kv_pos, valid, window, 3, q_valid=q_valid, q_offset=kv_len - q_len)


@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize(("q_len", "kv_len"), [(19, 19), (4, 19), (1, 19)])  # prefill, chunk, decode step
def test_flex_equals_eager_with_padding(window, q_len, kv_len):
    q, k, v = _qkv(q_len=q_len, kv_len=kv_len)
    mod = _padded_mod(2, q_len, kv_len, window)
    dense = materialize(mod, q_len, kv_len, 2)
    ref, _ = attention_eager(q, k, v, dense, scale=0.3)
    with torch.no_grad():
        by_block = attention_flex(q, k, v, to_block_mask(mod, q_len, kv_len, 2), scale=0.3)
        by_dense = attention_flex(q, k, v, dense, scale=0.3)  # a dense mask is wrapped in a mask_mod
        by_dispatch, _ = attention(q, k, v, dense, scale=0.3, impl="flex")
    torch.testing.assert_close(by_block, ref, **TOL)
    torch.testing.assert_close(by_dense, ref, **TOL)
    torch.testing.assert_close(by_dispatch, ref, **TOL)


def test_flex_without_grad_mode_guard_raises_clearly():
    q, k, v = _qkv()
    q.requires_grad_(True)
    with pytest.raises(RuntimeError, match="no backward on CPU"):
        attention_flex(q, k, v, torch.ones(2, 19, 19, dtype=torch.bool))


def test_flex_is_registered():
    assert {"eager", "sdpa", "flex", "flex_compiled"} <= set(ATTENTION_IMPLS)


def _ids_and_mask(vocab: int, seed: int = 0):
    ids = torch.randint(1, vocab, (2, 12), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, :4] = False  # left padding in row 1
    return ids, mask


def _run_all(model, ids, mask, impl):
    """Full forward, then cached prefill, a 3-token chunk and one decode step."""
    full = model(ids, mask, impl=impl).logits
    cache = model.new_cache(2)
    pre = model(ids[:, :8], mask[:, :8], cache=cache, impl=impl).logits
    chunk = model(ids[:, 8:11], mask[:, 8:11], cache=cache, impl=impl).logits
    step = model(ids[:, 11:], mask[:, 11:], cache=cache, impl=impl).logits
    return full, pre, chunk, step


def test_model_flex_matches_eager(tiny_model):
    ids, mask = _ids_and_mask(tiny_model.config.vocab_size)
    with torch.no_grad():
        refs = _run_all(tiny_model, ids, mask, Impl(attention="eager"))
        outs = _run_all(tiny_model, ids, mask, Impl(attention="flex"))
    for out, ref in zip(outs, refs, strict=True):
        torch.testing.assert_close(out, ref, **MODEL_TOL)


def _record_attention_calls(monkeypatch) -> list[tuple[str, str]]:
    """Patch the three attention implementations to log (name, mask type) on every call."""
    import minihymba.attention as attention_module

    seen: list[tuple[str, str]] = []
    for name in ("attention_flex", "attention_eager", "attention_sdpa"):
        real = getattr(attention_module, name)

        def spy(*a, _real=real, _name=name, **k):
            seen.append((_name.removeprefix("attention_"), type(a[3]).__name__))
            return _real(*a, **k)

        monkeypatch.setattr(attention_module, name, spy)
    return seen


@pytest.mark.parametrize(
    ("impl", "prefill_runs", "decode_runs"),
    [
        (Impl(attention="flex"), {("flex", "BlockMask")}, {("flex", "BlockMask")}),  # explicit: always flex
        (Impl(attention="sdpa"), {("sdpa", "Tensor")}, {("sdpa", "Tensor")}),  # explicit: always sdpa
        (Impl(), {("sdpa", "Tensor")}, {("eager", "Tensor")}),  # auto on CPU: one query -> eager
    ],
    ids=["flex", "sdpa", "auto"],
)
def test_the_implementation_asked_for_is_the_one_that_runs(
    tiny_model, monkeypatch, impl, prefill_runs, decode_runs
):
    seen = _record_attention_calls(monkeypatch)
    ids, mask = _ids_and_mask(tiny_model.config.vocab_size)
    with torch.no_grad():
        cache = tiny_model.new_cache(2)
        tiny_model(ids[:, :11], mask[:, :11], cache=cache, impl=impl)
        n_prefill = len(seen)
        tiny_model(ids[:, 11:], mask[:, 11:], cache=cache, impl=impl)
    assert n_prefill == tiny_model.config.num_layers
    assert set(seen[:n_prefill]) == prefill_runs
    assert set(seen[n_prefill:]) == decode_runs


@pytest.mark.slow  # compiling flex_attention on CPU takes 20-30 s with a cold inductor cache
def test_model_compiled_flex_matches_eager(tiny_model):
    ids, mask = _ids_and_mask(tiny_model.config.vocab_size, seed=1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = tiny_model(ids, mask, impl=Impl(attention="eager")).logits
        out = tiny_model(ids, mask, impl=Impl(attention="flex_compiled")).logits
    torch.testing.assert_close(out, ref, **MODEL_TOL)


def test_bf16_end_to_end_close_to_fp32(fixture_model, fixture_inputs):
    """bf16 weights and activations on CPU (norms, RoPE tables, softplus, scan, conv sums in fp32 inside).

    Measured on the fixture (logits up to ~16, std ~4): max |bf16 - fp32| = 0.97, mean ~0.1, greedy
    argmax agreement 96.9 %. Asserted loosely: max <= 1.5, mean <= 0.25, agreement >= 90 %.
    """
    ids = torch.tensor(fixture_inputs["input_ids"])
    model16 = copy.deepcopy(fixture_model).to(torch.bfloat16)
    with torch.no_grad():
        fp32 = fixture_model(ids).logits
        bf16 = model16(ids).logits
        cache = model16.new_cache(ids.shape[0])
        cached = torch.cat(
            [model16(ids[:, :40], cache=cache).logits, model16(ids[:, 40:], cache=cache).logits], 1
        )
    assert bf16.dtype == torch.float32  # logits are returned in float32
    assert model16.lm_head.weight.dtype == torch.bfloat16
    assert all(s.dtype == torch.bfloat16 for s in cache.ssm_states if s is not None)  # states in model dtype
    diff = (bf16 - fp32).abs()
    assert diff.max() <= 1.5 and diff.mean() <= 0.25, (diff.max(), diff.mean())
    assert (bf16.argmax(-1) == fp32.argmax(-1)).float().mean() >= 0.9
    assert (cached - fp32).abs().max() <= 1.5
    assert torch.isfinite(bf16).all()
