"""Masked multi-head attention with grouped KV heads, in two interchangeable implementations.

``impl="eager"`` is the reference: scores, mask, softmax and the weighted sum written out, in float32,
and the only one that can return the attention probabilities (for the attention-map plots).
``impl="sdpa"`` calls ``torch.nn.functional.scaled_dot_product_attention``. Hymba's value heads (Dv=128)
are twice as wide as its query/key heads (Dk=64), which pushes SDPA on CPU onto its slow unfused path; zero
padding q and k up to Dv leaves every score unchanged (the extra products are 0) and lets the fused kernel
run, so the sdpa path does that and passes the 1/sqrt(Dk) scale explicitly.

GQA: query head h reads KV head h // (H / Hkv).

Shapes:
    q (B, H, Q, Dk)    k (B, Hkv, K, Dk)    v (B, Hkv, K, Dv)    mask (B, Q, K) bool, True = visible
    out (B, H, Q, Dv)  probs (B, H, Q, K)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ATTENTION_IMPLS", "attention", "attention_eager", "attention_sdpa"]


def attention_eager(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float | None = None
) -> tuple[Tensor, Tensor]:
    """Reference attention: returns (output, probabilities), computed in float32."""
    b, h, q_len, dk = q.shape
    h_kv = k.shape[1]
    scale = 1.0 / math.sqrt(dk) if scale is None else scale
    qg = q.float().view(b, h_kv, h // h_kv, q_len, dk)  # (B, Hkv, G, Q, Dk): G query heads per KV head
    scores = torch.einsum("bngqd,bnkd->bngqk", qg, k.float()) * scale  # (B, Hkv, G, Q, K)
    scores = scores.masked_fill(~mask[:, None, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = torch.einsum("bngqk,bnkd->bngqd", probs, v.float())  # (B, Hkv, G, Q, Dv)
    out = out.reshape(b, h, q_len, v.shape[-1]).to(q.dtype)
    return out, probs.reshape(b, h, q_len, k.shape[2])


def attention_sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float | None = None) -> Tensor:
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
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=scale)


ATTENTION_IMPLS = ("eager", "sdpa")


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor,
    *,
    scale: float | None = None,
    impl: str = "sdpa",
    return_probs: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Dispatch to an implementation; ``return_probs`` forces the eager reference."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"unknown attention impl {impl!r}; choose one of {ATTENTION_IMPLS}")
    if return_probs or impl == "eager":
        out, probs = attention_eager(q, k, v, mask, scale)
        return out, (probs if return_probs else None)
    return attention_sdpa(q, k, v, mask, scale), None
