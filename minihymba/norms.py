"""RMSNorm, exactly as the Hymba checkpoint computes it.

    RMSNorm(v) = w * (v / sqrt(mean(v**2) + eps))

The statistics are computed in float32; the normalised value is cast back to the input dtype *before*
the multiplication by the weight (so in bfloat16 the product is a bfloat16 product, as in the hub code).

Shapes: any (..., C) tensor, normalised over the last dimension C.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RMSNorm", "rms_normalize"]


def rms_normalize(x: Tensor, eps: float) -> Tensor:
    """x / sqrt(mean(x**2) + eps) over the last dim, computed in float32, returned in x's dtype."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return x32.to(x.dtype)


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain (no bias, no mean subtraction)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:  # (..., C) -> (..., C)
        return self.weight * rms_normalize(x, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
