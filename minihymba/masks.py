"""Hymba's attention masks, written as FlexAttention ``mask_mod`` functions.

A mask function answers one question: may query ``q_idx`` look at key ``kv_idx``?  It has the
FlexAttention signature ``mask_mod(b, h, q_idx, kv_idx) -> bool tensor`` and uses only elementwise tensor
ops, so the *same* function drives

* :func:`materialize` -- a dense (B, Q, K) bool mask by broadcasting (CPU attention, tests, plots);
* :func:`to_block_mask` -- a FlexAttention ``BlockMask`` (GPU, or compiled CPU inference).

Hymba has two kinds of layers (indices in the meta-inclusive sequence, M meta tokens first):

    global layers (0, 15, 31 in the 1.5B):  k <= q
    sliding-window layers (all others):     k <= q  and  (q - k <= W  or  k < M)

so in a sliding-window layer a token sees every meta token plus the W+1 most recent positions
(itself included). M=2 meta tokens, W=2 (rows are queries, columns keys)::

    1 . . . . . .
    1 1 . . . . .
    1 1 1 . . . .
    1 1 1 1 . . .
    1 1 1 1 1 . .
    1 1 . 1 1 1 .
    1 1 . . 1 1 1

:func:`positional_mask_mod` is the general form the model runs: it compares *position ids* rather than
indices, knows which keys are padding, and works when queries and keys come from different places
(a decode step against a KV cache). With no padding and no cache it equals :func:`hymba_mask_mod`
(tested).

Shapes: q_pos (B, Q) and kv_pos (B, K) int64; kv_valid (B, K) bool; dense masks (B, Q, K) bool.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .config import HymbaConfig

__all__ = [
    "MaskMod",
    "causal",
    "sliding_window",
    "meta_prefix",
    "and_masks",
    "or_masks",
    "hymba_mask_mod",
    "layer_mask_mod",
    "positional_mask_mod",
    "materialize",
    "to_block_mask",
]

MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
    """A query sees itself and everything before it."""
    return q_idx >= kv_idx


def sliding_window(window: int) -> MaskMod:
    """Keys at most ``window`` positions behind the query (so window + 1 keys including itself)."""

    def in_window(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return q_idx - kv_idx <= window

    return in_window


def meta_prefix(n_meta: int) -> MaskMod:
    """The first ``n_meta`` positions (the meta tokens) are always visible."""

    def is_meta(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return kv_idx < n_meta

    return is_meta


def and_masks(*mods: MaskMod) -> MaskMod:
    """Visible only where every mask allows it."""

    def both(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        out = mods[0](b, h, q_idx, kv_idx)
        for mod in mods[1:]:
            out = out & mod(b, h, q_idx, kv_idx)
        return out

    return both


def or_masks(*mods: MaskMod) -> MaskMod:
    """Visible where any mask allows it."""

    def either(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        out = mods[0](b, h, q_idx, kv_idx)
        for mod in mods[1:]:
            out = out | mod(b, h, q_idx, kv_idx)
        return out

    return either


def hymba_mask_mod(window: int | None, n_meta: int) -> MaskMod:
    """causal AND (sliding_window(W) OR meta_prefix(M)); plain causal for a global layer (window None)."""
    if window is None:
        return causal
    return and_masks(causal, or_masks(sliding_window(window), meta_prefix(n_meta)))


def layer_mask_mod(config: HymbaConfig, layer: int) -> MaskMod:
    """The index-based mask of ``layer`` for an unpadded full forward."""
    window = None if config.is_global(layer) else config.sliding_window
    return hymba_mask_mod(window, config.num_meta_tokens)


def positional_mask_mod(
    q_pos: Tensor,
    kv_pos: Tensor,
    kv_valid: Tensor,
    window: int | None,
    n_meta: int,
    q_valid: Tensor | None = None,
    q_offset: int = 0,
) -> MaskMod:
    """The mask the model runs, stated on position ids instead of indices.

    A valid key is visible when ``kv_pos <= q_pos`` and (for a sliding-window layer)
    ``q_pos - kv_pos <= window or kv_pos < n_meta``. Padding keys (``kv_valid`` False) are never
    visible. A padding query (``q_valid`` False) sees only itself -- its key sits at index
    ``q_idx + q_offset`` -- so that no softmax row is empty (an empty row gives NaN, and 0 * NaN leaks).
    """

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        qp = q_pos[b, q_idx]
        kp = kv_pos[b, kv_idx]
        ok = kv_valid[b, kv_idx] & (kp <= qp)
        if window is not None:
            ok = ok & ((qp - kp <= window) | (kp < n_meta))
        if q_valid is not None:
            is_real = q_valid[b, q_idx]
            ok = (ok & is_real) | (~is_real & (kv_idx == q_idx + q_offset))
        return ok

    return mod


def materialize(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    batch: int = 1,
    device: torch.device | str | None = None,
) -> Tensor:
    """Evaluate ``mask_mod`` on every (b, q, kv) triple at once: a dense (batch, q_len, kv_len) bool mask."""
    kv_len = q_len if kv_len is None else kv_len
    b = torch.arange(batch, device=device)[:, None, None]  # (B, 1, 1)
    q = torch.arange(q_len, device=device)[None, :, None]  # (1, Q, 1)
    kv = torch.arange(kv_len, device=device)[None, None, :]  # (1, 1, K)
    h = torch.zeros((), dtype=torch.long, device=device)
    return mask_mod(b, h, q, kv).expand(batch, q_len, kv_len)


def to_block_mask(
    mask_mod: MaskMod,
    q_len: int,
    kv_len: int | None = None,
    batch: int | None = None,
    device: torch.device | str = "cpu",
    block_size: int = 128,
):
    """A FlexAttention ``BlockMask`` for ``mask_mod`` (blocks that are fully masked are skipped)."""
    from torch.nn.attention.flex_attention import create_block_mask

    kv_len = q_len if kv_len is None else kv_len
    return create_block_mask(
        mask_mod, B=batch, H=None, Q_LEN=q_len, KV_LEN=kv_len, device=device, BLOCK_SIZE=block_size
    )
