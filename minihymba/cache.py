"""The hybrid decoding cache: keys/values where Hymba needs them, plus constant-size SSM state.

Per layer the cache holds

* keys/values -- only for layers that compute their own (global layers and KV-group producers).
  Consumers keep nothing: they attend over their producer's entries. At the end of every forward (right
  after the prefill too) each layer keeps only the entries a future query can still see
  (:func:`minihymba.masks.still_visible`, the mask rule itself): global layers grow with the sequence,
  sliding-window layers keep the M meta entries plus the W most recent columns -- at most M + W;
* the conv state -- the last K inputs of the depthwise convolution (Bt, I, K);
* the SSM state -- h after the last position (Bt, I, N).

The model changes a cache only through its methods: :meth:`HymbaCache.extend_kv` (a layer's new keys),
:meth:`HymbaCache.set_ssm_states` (a layer's new conv and SSM state) and :meth:`HymbaCache.advance` (the
end of a forward: trim, next position, length).

States are stored in the model dtype (as the hub code does: in bfloat16 the float32 scan state is rounded
after every call). Every key/value entry also carries its position id and a padding flag (B, L) so that
masks can be built from positions; that bookkeeping is not counted in :meth:`HymbaCache.nbytes`.

Shapes: keys (B, Hkv, L, Dk); values (B, Hkv, L, Dv); positions (B, L) int64; valid (B, L) bool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import HymbaConfig
from .masks import still_visible

__all__ = ["KVEntries", "HymbaCache"]


@dataclass
class KVEntries:
    """Keys and values of one layer with the position id and padding flag of every entry."""

    keys: Tensor  # (B, Hkv, L, Dk)
    values: Tensor  # (B, Hkv, L, Dv)
    positions: Tensor  # (B, L) int64
    valid: Tensor  # (B, L) bool

    def __len__(self) -> int:
        return self.keys.shape[2]

    def cat(self, other: KVEntries) -> KVEntries:
        return KVEntries(
            torch.cat([self.keys, other.keys], dim=2),
            torch.cat([self.values, other.values], dim=2),
            torch.cat([self.positions, other.positions], dim=1),
            torch.cat([self.valid, other.valid], dim=1),
        )

    def keep(self, index: Tensor) -> KVEntries:
        """Entries at sequence indices ``index`` (1-D, shared by the batch)."""
        return KVEntries(
            self.keys[:, :, index], self.values[:, :, index], self.positions[:, index], self.valid[:, index]
        )

    def map_rows(self, fn: Callable[[Tensor], Tensor]) -> KVEntries:
        """Apply ``fn`` (batch-dim tensor op, e.g. clone or index_select) to all four tensors."""
        return KVEntries(fn(self.keys), fn(self.values), fn(self.positions), fn(self.valid))


class HymbaCache:
    """Decoding state of a :class:`~minihymba.model.HymbaForCausalLM` for a batch of B sequences."""

    def __init__(self, config: HymbaConfig, batch_size: int) -> None:
        self.config = config
        self.batch_size = batch_size
        n = config.num_layers
        self.kv: list[KVEntries | None] = [None] * n
        self.conv_states: list[Tensor | None] = [None] * n
        self.ssm_states: list[Tensor | None] = [None] * n
        self.next_position: Tensor | None = None  # (B,) position id the next real token gets
        self.length = 0  # columns processed so far (meta and padding included)
        self.has_tokens = False  # True once input tokens (not only meta tokens) went through

    @property
    def is_empty(self) -> bool:
        return self.length == 0

    def extend_kv(self, layer: int, new: KVEntries) -> KVEntries:
        """Append this step's entries of ``layer`` and return everything it can attend over."""
        old = self.kv[layer]
        merged = new if old is None else old.cat(new)
        self.kv[layer] = merged
        return merged

    def set_ssm_states(self, layer: int, conv_state: Tensor, ssm_state: Tensor, dtype: torch.dtype) -> None:
        """Store ``layer``'s conv state (B, I, K) and SSM state (B, I, N), rounded to ``dtype``."""
        self.conv_states[layer] = conv_state.to(dtype)
        self.ssm_states[layer] = ssm_state.to(dtype)

    def advance(self, next_position: Tensor, columns: int, has_tokens: bool) -> None:
        """End of a forward over ``columns`` columns: trim, then record where the next token starts.

        ``next_position`` (B,): the position id the next real token of each row gets; ``has_tokens``:
        whether this call carried input tokens (a meta-only prefill does not).
        """
        self.next_position = next_position
        self.trim()
        self.length += columns
        self.has_tokens = self.has_tokens or has_tokens

    def trim(self) -> None:
        """Drop the key/value entries no future query can see (:func:`~minihymba.masks.still_visible`)."""
        for layer, entries in enumerate(self.kv):
            window = self.config.window(layer)
            if entries is None or window is None:
                continue
            keep = still_visible(len(entries), window, self.config.num_meta_tokens)  # (K,) bool, on the CPU
            if not bool(keep.all()):
                self.kv[layer] = entries.keep(keep.nonzero().flatten().to(entries.keys.device))

    def _map_rows(self, fn: Callable[[Tensor], Tensor], batch_size: int) -> HymbaCache:
        out = HymbaCache(self.config, batch_size)
        out.kv = [None if e is None else e.map_rows(fn) for e in self.kv]
        out.conv_states = [None if s is None else fn(s) for s in self.conv_states]
        out.ssm_states = [None if s is None else fn(s) for s in self.ssm_states]
        out.next_position = None if self.next_position is None else fn(self.next_position)
        out.length, out.has_tokens = self.length, self.has_tokens
        return out

    def clone(self) -> HymbaCache:
        """An independent copy (tensors cloned): decoding from it leaves this cache untouched."""
        return self._map_rows(torch.clone, self.batch_size)

    def select_rows(self, index: Tensor | list[int]) -> HymbaCache:
        """A new cache holding batch rows ``index`` (in that order; repeats allowed)."""
        index = torch.as_tensor(index, dtype=torch.long)
        if index.dim() != 1:
            raise ValueError(f"index must be 1-D, got shape {tuple(index.shape)}")
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= self.batch_size):
            raise ValueError(f"row index out of range for a cache of batch size {self.batch_size}")
        return self._map_rows(lambda t: t.index_select(0, index.to(t.device)), len(index))

    def repeat_rows(self, batch_size: int) -> HymbaCache:
        """A batch-``batch_size`` cache whose every row is a copy of row 0 (e.g. of a meta-prefix cache)."""
        return self.select_rows([0] * batch_size)

    def kv_lengths(self) -> list[int]:
        """Number of cached key/value entries per layer (0 for consumers)."""
        return [0 if e is None else len(e) for e in self.kv]

    def nbytes(self) -> int:
        """Bytes of keys, values, conv and SSM states (position/padding bookkeeping excluded)."""
        total = 0
        for entries in self.kv:
            if entries is not None:
                total += entries.keys.nbytes + entries.values.nbytes
        for state in (*self.conv_states, *self.ssm_states):
            if state is not None:
                total += state.nbytes
        return total
