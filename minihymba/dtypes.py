"""Dtype names accepted wherever a dtype is given as a string ("bf16", "float32", ...)."""

from __future__ import annotations

import torch

__all__ = ["DTYPE_NAMES", "as_dtype"]

DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``dtype`` itself, or the torch dtype a name stands for (ValueError listing the names otherwise)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPE_NAMES)} or a torch.dtype")
    return DTYPE_NAMES[dtype]
