"""Masked multi-head attention with grouped KV heads: the reference and three faster implementations.

``impl="eager"`` is the reference: scores, mask, softmax and the weighted sum written out, in float32,
and the only one that can return the attention probabilities (for the attention-map plots).
``impl="sdpa"`` calls ``torch.nn.functional.scaled_dot_product_attention``. Hymba's value heads (Dv=128)
are twice as wide as its query/key heads (Dk=64), which pushes SDPA on CPU onto its slow unfused path; zero
padding q and k up to Dv leaves every score unchanged (the extra products are 0) and lets the fused kernel
run, so the sdpa path does that and passes the 1/sqrt(Dk) scale explicitly.

``impl="flex"`` runs ``torch.nn.attention.flex_attention`` over a ``BlockMask`` built from the same
mask_mod as the dense mask (see :mod:`minihymba.masks`); fully masked 128x128 blocks are skipped, which
pays off for sliding windows on long sequences. ``"flex"`` runs it eagerly (unfused, 10-30x slower than
SDPA on CPU: a correctness path); ``"flex_compiled"`` compiles it with ``torch.compile`` (5-30 s the first
time; on CPU inference only, no backward). Flex also accepts a dense bool mask (it wraps it in a mask_mod).

Each name runs exactly that implementation; which one a model call uses is chosen in
:mod:`minihymba.impl` (explicitly, or by its documented ``"auto"`` policy).

GQA: query head h reads KV head h // (H / Hkv).

Shapes:
    q (B, H, Q, Dk)    k (B, Hkv, K, Dk)    v (B, Hkv, K, Dv)    mask (B, Q, K) bool, True = visible
    (or a BlockMask over (B, ., Q, K) for flex; or None: plain causal, Q == K, which lets SDPA run its
    causal kernel -- it skips the upper triangle, ~1.5x faster than a dense mask at 640 tokens)
    out (B, H, Q, Dv)  probs (B, H, Q, K)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .impl import ATTENTION_IMPLS, FLEX_IMPLS

__all__ = [
    "causal_mask",
    "attention",
    "attention_eager",
    "attention_sdpa",
    "attention_flex",
]


def _check_plain_causal(q_len: int, k_len: int) -> None:
    if q_len != k_len:
        raise ValueError(f"a plain causal mask needs as many queries as keys, got {q_len} and {k_len}")


def causal_mask(q_len: int, k_len: int, device: torch.device | str | None = None) -> Tensor:
    """The plain causal mask (1, Q, K) for a fresh sequence (Q == K): query i sees keys 0..i."""
    _check_plain_causal(q_len, k_len)
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril()[None]


def attention_eager(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None = None
) -> tuple[Tensor, Tensor]:
    """Reference attention: returns (output, probabilities), computed in float32."""
    b, h, q_len, dk = q.shape
    h_kv = k.shape[1]
    scale = 1.0 / math.sqrt(dk) if scale is None else scale
    mask = causal_mask(q_len, k.shape[2], q.device) if mask is None else mask
    qg = q.float().view(b, h_kv, h // h_kv, q_len, dk)  # (B, Hkv, G, Q, Dk): G query heads per KV head
    scores = torch.einsum("bngqd,bnkd->bngqk", qg, k.float()) * scale  # (B, Hkv, G, Q, K)
    scores = scores.masked_fill(~mask[:, None, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = torch.einsum("bngqk,bnkd->bngqd", probs, v.float())  # (B, Hkv, G, Q, Dv)
    out = out.reshape(b, h, q_len, v.shape[-1]).to(q.dtype)
    return out, probs.reshape(b, h, q_len, k.shape[2])


def attention_sdpa(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None = None
) -> Tensor:
    """PyTorch SDPA with q/k zero-padded to the value width so the fused CPU kernel applies."""
    dk, dv = q.shape[-1], v.shape[-1]
    scale = 1.0 / math.sqrt(dk) if scale is None else scale
    if dv > dk:
        q = F.pad(q, (0, dv - dk))  # (B, H, Q, Dv); the extra zeros add nothing to q . k
        k = F.pad(k, (0, dv - dk))
    h, h_kv = q.shape[1], k.shape[1]
    if h != h_kv:  # expand KV heads explicitly: enable_gqa is not taken by every backend
        k = k.repeat_interleave(h // h_kv, dim=1)
        v = v.repeat_interleave(h // h_kv, dim=1)
    if mask is None:  # plain causal: the kernel's own triangle, no mask tensor to read
        _check_plain_causal(q.shape[2], k.shape[2])
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=scale)


_compiled_flex: list = []  # the torch.compile'd flex_attention, created on first use


def _flex_function(compiled: bool):
    from torch.nn.attention.flex_attention import flex_attention

    if not compiled:
        return flex_attention
    if not _compiled_flex:
        _compiled_flex.append(torch.compile(flex_attention))  # dynamic after the first new shape
    return _compiled_flex[0]


def attention_flex(
    q: Tensor, k: Tensor, v: Tensor, mask, scale: float | None = None, compiled: bool = False
) -> Tensor:
    """FlexAttention over a BlockMask (or a dense (B, Q, K) bool mask); ``compiled``: torch.compile'd."""
    if q.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad:
        raise RuntimeError("FlexAttention has no backward on CPU: use torch.no_grad() or impl='sdpa'")
    if mask is None or isinstance(mask, Tensor):
        dense = (
            causal_mask(q.shape[2], k.shape[2], q.device).expand(q.shape[0], -1, -1) if mask is None else mask
        )

        def from_dense(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return dense[b, q_idx, kv_idx]

        from .masks import to_block_mask

        mask = to_block_mask(from_dense, q.shape[2], k.shape[2], q.shape[0], q.device)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    flex = _flex_function(compiled)
    return flex(q, k, v, block_mask=mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask,
    *,
    scale: float | None = None,
    impl: str = "sdpa",
    return_probs: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Run the implementation ``impl``; ``return_probs`` (attention maps) needs ``impl="eager"``."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"unknown attention impl {impl!r}; choose one of {ATTENTION_IMPLS}")
    if impl == "eager":
        out, probs = attention_eager(q, k, v, mask, scale)
        return out, (probs if return_probs else None)
    if return_probs:
        raise ValueError(f"attention maps come only from impl='eager', not {impl!r}")
    if impl in FLEX_IMPLS:
        return attention_flex(q, k, v, mask, scale, compiled=impl == "flex_compiled"), None
    return attention_sdpa(q, k, v, mask, scale), None
