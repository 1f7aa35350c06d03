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

:func:`hymba_mask_mod` is the only place this rule is written. Everything else evaluates it:

* :func:`positional_mask_mod` -- the form the model runs: the same rule applied to *position ids* rather
  than indices (:func:`on_positions`), plus padding, so it works when queries and keys come from different
  places (a decode step against a KV cache). With no padding and no cache it equals the index form;
* :func:`still_visible` -- which cached keys a *future* query can still see: the cache keeps exactly
  those (:meth:`minihymba.cache.HymbaCache.trim`), so a sliding-window layer holds M + W entries;
* :func:`keys_kept` -- how many that is after a given length (:mod:`minihymba.memory`'s formula);
* :func:`decode_window` -- NVIDIA's cached decoding sees one key fewer (W - 1) once the cache holds tokens.

Counting: a window of W means a query sees W + 1 positions (itself and the W before it) plus the M meta
tokens; the cache keeps M + W entries (the next query adds itself); the hub's cached decode sees M + W.
:class:`LayerMasks` builds each distinct mask of one forward call once and shares it between layers.

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
    "decode_window",
    "on_positions",
    "positional_mask_mod",
    "still_visible",
    "keys_kept",
    "LayerMasks",
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
    return hymba_mask_mod(config.window(layer), config.num_meta_tokens)


def decode_window(window: int | None, hub_compat: bool) -> int | None:
    """The window a cached decode step uses: W, or W - 1 in NVIDIA's cached decoding (``hub_compat``).

    The hub code keeps the meta keys and the last W - 1 cached keys, then appends the new one, so a decoded
    token sees one key fewer than in the full forward. Global layers (None) are unchanged.
    """
    return window - 1 if hub_compat and window is not None else window


def on_positions(
    mask_mod: MaskMod,
    q_pos: Tensor,
    kv_pos: Tensor,
    kv_valid: Tensor,
    q_valid: Tensor | None = None,
    q_offset: int = 0,
) -> MaskMod:
    """``mask_mod`` evaluated on position ids instead of indices, with padding.

    Query ``q_idx`` of row ``b`` has position ``q_pos[b, q_idx]``, key ``kv_idx`` position
    ``kv_pos[b, kv_idx]``. Padding keys (``kv_valid`` False) are never visible. A padding query
    (``q_valid`` False) sees only its own column -- its key sits at index ``q_idx + q_offset`` -- so that
    no softmax row is empty (an empty row gives NaN, and 0 * NaN leaks into real rows).
    """

    def mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        ok = kv_valid[b, kv_idx] & mask_mod(b, h, q_pos[b, q_idx], kv_pos[b, kv_idx])
        if q_valid is not None:
            is_real = q_valid[b, q_idx]
            ok = (ok & is_real) | (~is_real & (kv_idx == q_idx + q_offset))
        return ok

    return mod


def positional_mask_mod(
    q_pos: Tensor,
    kv_pos: Tensor,
    kv_valid: Tensor,
    window: int | None,
    n_meta: int,
    q_valid: Tensor | None = None,
    q_offset: int = 0,
) -> MaskMod:
    """The mask the model runs: :func:`hymba_mask_mod` on position ids, with padding (:func:`on_positions`).

    Shapes: q_pos, q_valid (B, Q); kv_pos, kv_valid (B, K).
    """
    return on_positions(hymba_mask_mod(window, n_meta), q_pos, kv_pos, kv_valid, q_valid, q_offset)


def still_visible(num_keys: int, window: int | None, n_meta: int) -> Tensor:
    """(K,) bool: which of a layer's ``num_keys`` cached keys the *next* query -- or any later one -- can see.

    A cache holds the M meta keys first, then the most recent columns in order, so key ``j`` is
    ``num_keys - j`` columns behind the next query: the rule can be evaluated on indices, with the next
    query at index ``num_keys``. Under :func:`hymba_mask_mod` a key that query cannot see (neither a meta
    token nor within the window) is invisible to every later query too, so these are exactly the entries a
    cache must keep: M + min(T, W) in a sliding-window layer, everything in a global one.
    """
    zero = torch.zeros((), dtype=torch.long)
    next_query = torch.tensor(num_keys)
    return hymba_mask_mod(window, n_meta)(zero, zero, next_query, torch.arange(num_keys))


def keys_kept(window: int | None, n_meta: int, seq_len: int) -> int:
    """How many key/value entries a layer keeps after the meta tokens and ``seq_len`` more columns."""
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    return int(still_visible(n_meta + seq_len, window, n_meta).sum())


class LayerMasks:
    """The masks of one forward call, each built once and shared by every layer that needs it.

    Queries are this call's columns (positions ``q_pos`` (B, S), padding ``q_valid`` or None). A layer asks
    for its mask over the keys it attends to; two layers with the same window and the same keys get the
    same mask (every layer that owns keys has seen the same history and is trimmed by the same rule).
    """

    def __init__(self, q_pos: Tensor, q_valid: Tensor | None, n_meta: int) -> None:
        self.q_pos, self.q_valid, self.n_meta = q_pos, q_valid, n_meta
        self._built: dict[tuple[int | None, int, bool], object] = {}

    def is_plain_causal(self, window: int | None, kv_len: int) -> bool:
        """True when the mask is exactly lower-triangular: the keys are this call's own columns (a fresh
        prefill), nothing is padded, and no key is old enough to leave the window (S - M - 1 <= W; meta
        keys never leave it). Attention can then run a causal kernel with no mask tensor."""
        s = self.q_pos.shape[1]
        if self.q_valid is not None or kv_len != s:
            return False
        return window is None or s - self.n_meta - 1 <= window

    def get(self, window: int | None, kv_pos: Tensor, kv_valid: Tensor, block: bool = False):
        """Dense (B, S, K) bool mask over keys at ``kv_pos`` -- or with ``block`` a FlexAttention BlockMask
        of the same rule. Dense only: None when the mask is plain causal (:meth:`is_plain_causal`)."""
        kv_len = kv_pos.shape[1]
        if not block and self.is_plain_causal(window, kv_len):
            return None
        key = (window, kv_len, block)
        if key not in self._built:
            b, s = self.q_pos.shape
            mod = positional_mask_mod(
                self.q_pos, kv_pos, kv_valid, window, self.n_meta, q_valid=self.q_valid, q_offset=kv_len - s
            )
            build = to_block_mask if block else materialize
            self._built[key] = build(mod, s, kv_len, b, self.q_pos.device)
        return self._built[key]


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
