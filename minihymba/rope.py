"""Rotary position embedding (RoPE) with Hymba's NTK-scaled base.

Hymba rotates queries and keys with the usual "rotate-half" RoPE, but its base is stretched once,
ahead of time, so the 2k-token training context extends to 8k ("ntk" in the config):

    base' = theta * (2 * max_pos / orig_max_pos - 1) ** (Dk / (Dk - 2))      (Python double)
    inv_freq[i] = 1 / base' ** (2i / Dk)                                      (float32), i < Dk/2
    angle[t, i] = pos_t * inv_freq[i]
    rope(x)     = x * cos(angle ++ angle) + rotate_half(x) * sin(angle ++ angle)

For Hymba-1.5B: theta=1e4, max_pos=8192, orig=2048, Dk=64, so base' = 1e4 * 7**(64/62) = 74534.83...
Meta tokens are ordinary positions 0..M-1; the first real token sits at position M.

Shapes: positions (B, S) int64; cos/sin (B, S, Dk); q/k (B, heads, S, Dk).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import HymbaConfig

__all__ = ["rope_base", "rope_inv_freq", "rope_cos_sin", "rotate_half", "apply_rope"]


def rope_base(config: HymbaConfig) -> float:
    """The (possibly NTK-scaled) RoPE base, computed in Python double precision."""
    if config.rope_type == "ntk":
        d = config.head_dim
        stretch = 2 * config.max_position_embeddings / config.orig_max_position_embeddings - 1
        return config.rope_theta * stretch ** (d / (d - 2))
    return config.rope_theta


def rope_inv_freq(config: HymbaConfig, device: torch.device | str | None = None) -> Tensor:
    """(Dk/2,) float32 inverse frequencies; the exact float32 expression the checkpoint was run with."""
    d = config.head_dim
    exponents = torch.arange(0, d, 2, dtype=torch.int64, device=device).float() / d
    return 1.0 / (rope_base(config) ** exponents)


def rope_cos_sin(inv_freq: Tensor, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos and sin tables (B, S, Dk) for integer ``positions`` (B, S), computed in float32."""
    angles = positions.float()[..., None] * inv_freq.float()  # (B, S, Dk/2)
    emb = torch.cat((angles, angles), dim=-1)  # (B, S, Dk)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension (non-interleaved RoPE)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` (B, heads, S, Dk) by the tables ``cos``/``sin`` (B, S, Dk)."""
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, S, Dk): broadcast over heads
    return x * cos + rotate_half(x) * sin
