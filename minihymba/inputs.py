"""Checks on what a caller passes as tokens: one place, used by the forward pass and by generation.

A bad argument gets one error that names it and says what is expected; nothing is silently coerced.

Shapes: input_ids, attention_mask (B, T).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_inputs"]


def check_inputs(input_ids: Tensor, attention_mask: Tensor | None, vocab_size: int) -> None:
    """Raise TypeError/ValueError unless ``input_ids`` (B, T) are in-vocabulary integer ids and
    ``attention_mask`` (B, T), if given, holds only 0 (padding) and 1 (token)."""
    if not isinstance(input_ids, Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor, got dtype {input_ids.dtype}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, tokens), got {tuple(input_ids.shape)}")
    if input_ids.numel() == 0:
        raise ValueError(f"input_ids is empty (shape {tuple(input_ids.shape)}): give at least one token")
    if not input_ids.is_meta:
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"input_ids contains token id {bad}, outside the vocabulary [0, {vocab_size})")
    if attention_mask is not None:
        if not isinstance(attention_mask, Tensor):
            raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids shape "
                f"{tuple(input_ids.shape)}"
            )
        if attention_mask.dtype.is_floating_point or not bool(
            ((attention_mask == 0) | (attention_mask == 1)).all()
        ):
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token) integers or bools")
