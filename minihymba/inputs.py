"""Checks on what a caller passes as tokens: one place, used by the forward pass and by generation.

A bad argument gets one error that names it and says what is expected; nothing is silently coerced. The
attention mask's values are checked before anything looks at them (a mask of -1s is refused, not read as
"no padding").

Shapes: input_ids, attention_mask (B, T).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ID_DTYPES", "WrongTypeError", "check_inputs", "check_left_padded", "generation_mask"]

# What nn.Embedding indexes with. uint8/bool tensors index as masks elsewhere in torch: refused.
ID_DTYPES = (torch.int64, torch.int32)


class WrongTypeError(TypeError, ValueError):
    """An argument of the wrong type. Also a ValueError, so code that caught the ValueError raised for
    some of these cases before keeps working."""


def check_inputs(input_ids: Tensor, attention_mask: Tensor | None, vocab_size: int) -> None:
    """Raise TypeError/ValueError unless ``input_ids`` (B, T) are in-vocabulary int64/int32 ids and
    ``attention_mask`` (B, T), if given, holds only 0 (padding) and 1 (token)."""
    if not isinstance(input_ids, Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor, got dtype {input_ids.dtype}")
    if input_ids.dtype not in ID_DTYPES:
        raise TypeError(
            f"input_ids must be an integer tensor of dtype torch.int64 or torch.int32, got {input_ids.dtype} "
            "(convert it with input_ids.long())"
        )
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, tokens), got {tuple(input_ids.shape)}")
    if input_ids.numel() == 0:
        raise ValueError(f"input_ids is empty (shape {tuple(input_ids.shape)}): give at least one token")
    if not input_ids.is_meta:
        low, high = torch.aminmax(input_ids)
        low, high = int(low), int(high)
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
        if attention_mask.device != input_ids.device:
            raise ValueError(
                f"attention_mask is on {attention_mask.device}, input_ids on {input_ids.device}: put both on "
                "the model's device"
            )
        if (
            attention_mask.dtype.is_floating_point
            or attention_mask.dtype.is_complex
            or not bool(((attention_mask == 0) | (attention_mask == 1)).all())
        ):
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token) integers or bools")


def check_left_padded(attention_mask: Tensor) -> None:
    """Raise ValueError unless every row is zeros then ones, with at least one token."""
    mask = attention_mask.long()
    if bool((mask[:, -1] == 0).any()):
        rows = torch.nonzero(mask[:, -1] == 0).flatten().tolist()
        raise ValueError(
            f"attention_mask rows {rows} end with padding: generate needs left padding (zeros on the "
            "left, every row ending with a real token)"
        )
    if bool((mask[:, 1:] < mask[:, :-1]).any()):
        rows = torch.nonzero((mask[:, 1:] < mask[:, :-1]).any(1)).flatten().tolist()
        raise ValueError(f"attention_mask rows {rows} have padding after a token: use left padding only")


def generation_mask(input_ids: Tensor, attention_mask: Tensor | None, vocab_size: int) -> Tensor | None:
    """Check a prompt for generation (:func:`check_inputs`, then left padding) and return the mask to
    use: None when nothing is padded. The values are validated before the "nothing padded" shortcut."""
    check_inputs(input_ids, attention_mask, vocab_size)
    if attention_mask is None:
        return None
    check_left_padded(attention_mask)
    return None if bool(attention_mask.bool().all()) else attention_mask
