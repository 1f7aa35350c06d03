"""Attention: the eager reference against a per-head loop, and SDPA against eager (GQA, Dv != Dk, masks)."""

from __future__ import annotations

import math

import pytest
import torch

from minihymba.attention import attention, attention_eager
from minihymba.masks import hymba_mask_mod, materialize


def per_head_reference(q, k, v, mask, scale):
    """Independent float64 attention: one head at a time, KV head h // (H / Hkv)."""
    b, h, n_q, _ = q.shape
    group = h // k.shape[1]
    out = torch.zeros(b, h, n_q, v.shape[-1], dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            scores = q[bi, hi].double() @ k[bi, hi // group].double().T * scale  # (Q, K)
            scores[~mask[bi]] = -math.inf
            out[bi, hi] = torch.softmax(scores, -1) @ v[bi, hi // group].double()
    return out


def make_inputs(b=2, h=6, h_kv=2, q_len=11, kv_len=11, dk=8, dv=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, q_len, dk, generator=gen)
    k = torch.randn(b, h_kv, kv_len, dk, generator=gen)
    v = torch.randn(b, h_kv, kv_len, dv, generator=gen)
    return q, k, v


MASKS = {
    "causal": lambda s: materialize(hymba_mask_mod(None, 0), s, batch=2),
    "window+meta": lambda s: materialize(hymba_mask_mod(3, 2), s, batch=2),
    "full": lambda s: torch.ones(2, s, s, dtype=torch.bool),
}


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize(("h", "h_kv", "dk", "dv"), [(6, 2, 8, 16), (4, 4, 8, 8), (5, 1, 16, 8)])
def test_eager_and_sdpa_match_reference(mask_name, h, h_kv, dk, dv):
    q, k, v = make_inputs(h=h, h_kv=h_kv, dk=dk, dv=dv)
    mask = MASKS[mask_name](11)
    scale = 1 / math.sqrt(dk)
    expected = per_head_reference(q, k, v, mask, scale).float()
    eager, probs = attention(q, k, v, mask, impl="eager", return_probs=True, scale=scale)
    sdpa, none = attention(q, k, v, mask, impl="sdpa", scale=scale)
    assert none is None and eager.shape == (2, h, 11, dv) and probs.shape == (2, h, 11, 11)
    torch.testing.assert_close(eager, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, h, 11), atol=1e-6, rtol=0)
    assert bool((probs[~mask[:, None].expand_as(probs)] == 0).all())


def test_decode_shaped_queries():
    """Fewer queries than keys (a decode step against a cache): the last rows of the full mask."""
    q, k, v = make_inputs(q_len=3, kv_len=12)
    mask = materialize(hymba_mask_mod(4, 2), 12, batch=2)[:, -3:]  # (B, 3, 12)
    eager, _ = attention(q, k, v, mask, impl="eager")
    sdpa, _ = attention(q, k, v, mask, impl="sdpa")
    torch.testing.assert_close(
        eager, per_head_reference(q, k, v, mask, 1 / math.sqrt(8)).float(), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=0)


def test_default_scale_uses_the_key_width():
    q, k, v = make_inputs(dk=8, dv=32)
    mask = MASKS["causal"](11)
    out, _ = attention_eager(q, k, v, mask)
    torch.testing.assert_close(
        out, per_head_reference(q, k, v, mask, 1 / math.sqrt(8)).float(), atol=1e-5, rtol=0
    )


def test_bf16_inputs_keep_dtype():
    q, k, v = (t.bfloat16() for t in make_inputs())
    mask = MASKS["window+meta"](11)
    eager, _ = attention(q, k, v, mask, impl="eager")
    sdpa, _ = attention(q, k, v, mask, impl="sdpa")
    assert eager.dtype == sdpa.dtype == torch.bfloat16
    torch.testing.assert_close(sdpa.float(), eager.float(), atol=2e-2, rtol=0)


def test_unknown_impl():
    q, k, v = make_inputs()
    with pytest.raises(ValueError, match="unknown attention impl 'nope'"):
        attention(q, k, v, MASKS["full"](11), impl="nope")


@pytest.mark.parametrize("impl", ["eager", "sdpa", "flex"])
def test_none_mask_is_plain_causal(impl):
    """mask=None means lower-triangular (SDPA's is_causal kernel): same output as the dense causal mask."""
    from minihymba.attention import causal_mask

    g = torch.Generator().manual_seed(3)
    q, k, v = (
        torch.randn(2, 4, 9, 8, generator=g),
        torch.randn(2, 2, 9, 8, generator=g),
        torch.randn(2, 2, 9, 16, generator=g),
    )
    dense = causal_mask(9, 9).expand(2, 9, 9)
    want, _ = attention(q, k, v, dense, impl="eager", scale=0.3)
    got, _ = attention(q, k, v, None, impl=impl, scale=0.3)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="as many queries as keys"):
        causal_mask(3, 4)


def test_layer_masks_know_when_a_mask_is_plain_causal(tiny_config):
    """Global layers and short sliding-window prefills are plain causal; padding or a cache history is not."""
    from minihymba.masks import LayerMasks

    m, w = tiny_config.num_meta_tokens, tiny_config.sliding_window
    ones = lambda n: torch.ones(1, n, dtype=torch.bool)  # noqa: E731

    def masks_and_keys(s, keys=None, valid=None):
        n = s if keys is None else keys
        return LayerMasks(torch.arange(s)[None], valid, m), torch.arange(n)[None], ones(n)

    masks, kv_pos, kv_valid = masks_and_keys(
        m + w + 1
    )  # the oldest real key is exactly W behind the last query
    assert masks.is_plain_causal(w, m + w + 1) and masks.get(w, kv_pos, kv_valid) is None
    masks, kv_pos, kv_valid = masks_and_keys(m + w + 2)  # one more: the first real key leaves the window
    assert not masks.is_plain_causal(w, m + w + 2) and masks.get(w, kv_pos, kv_valid) is not None
    assert masks.is_plain_causal(None, m + w + 2)  # a global layer
    masks, kv_pos, kv_valid = masks_and_keys(5, keys=7)  # keys from a cache history
    assert not masks.is_plain_causal(None, 7)
    masks, kv_pos, kv_valid = masks_and_keys(5, valid=torch.tensor([[False, True, True, True, True]]))
    assert not masks.is_plain_causal(None, 5)
    masks, kv_pos, kv_valid = masks_and_keys(5)
    assert masks.get(None, kv_pos, kv_valid, block=True) is not None  # flex always gets a BlockMask
    assert masks.get(None, kv_pos, kv_valid) is None
