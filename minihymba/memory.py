"""How big the decoding cache is, in closed form -- and what sliding windows and KV sharing save.

After the M meta tokens and T more columns (prompt + generated tokens, padding included) the cache holds,
per sequence:

    global layer                    M + T            key/value entries
    sliding-window KV producer      M + min(T, W)    entries   (meta pinned + the W most recent)
    KV consumer                     0                (reads its producer's entries)
    every layer                     conv state I x K  +  SSM state I x N   (constant in T)

with one entry = Hkv x (Dk + Dv) numbers. The entry counts are not restated here: they come from
:func:`minihymba.masks.keys_kept`, the mask rule evaluated (the cache trims by the same rule). Multiply
by the batch size and the element size of the model dtype. :func:`cache_bytes` is that formula;
:meth:`minihymba.cache.HymbaCache.nbytes` measures a real cache, and the tests check that the two agree.
:func:`cache_variants` applies the same formula to the same geometry with every layer global ("no_swa")
and/or every layer owning its keys ("no_sharing");
:func:`llama_kv_bytes` gives a plain transformer's KV cache for comparison.

Example (real Hymba-1.5B, bf16, T = 8192): 78,888,960 bytes of keys/values + 4,096,000 bytes of conv and
SSM state; Llama-3.2-1B would hold 268,435,456 bytes and Llama-3.2-3B 939,524,096.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import HymbaConfig
from .dtypes import as_dtype
from .masks import keys_kept

__all__ = [
    "CacheSize",
    "LLAMA_3_2_1B",
    "LLAMA_3_2_3B",
    "cache_bytes",
    "cache_variants",
    "element_size",
    "kv_entries",
    "llama_kv_bytes",
]

# (layers, KV heads, head dim) of two plain grouped-query-attention transformers, for comparison.
LLAMA_3_2_1B = {"num_layers": 16, "num_kv_heads": 8, "head_dim": 64}
LLAMA_3_2_3B = {"num_layers": 28, "num_kv_heads": 8, "head_dim": 128}


@dataclass(frozen=True)
class CacheSize:
    """Cache bytes split into the part that grows with the sequence and the constant SSM part."""

    kv_bytes: int  # keys + values of global layers and KV producers
    state_bytes: int  # conv + SSM states of every layer

    @property
    def total(self) -> int:
        return self.kv_bytes + self.state_bytes


def element_size(dtype: torch.dtype | str) -> int:
    """Bytes per number: 2 for bf16/fp16, 4 for fp32 (names such as "bf16" are accepted)."""
    return torch.empty((), dtype=as_dtype(dtype)).element_size()


def kv_entries(
    config: HymbaConfig, layer: int, seq_len: int, *, sliding_windows: bool = True, kv_sharing: bool = True
) -> int:
    """Key/value entries ``layer`` holds after the meta tokens and ``seq_len`` more columns.

    ``sliding_windows=False``: as if every layer were global; ``kv_sharing=False``: as if every layer
    kept its own keys/values.
    """
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    if kv_sharing and not config.owns_kv(layer):
        return 0
    return keys_kept(config.window(layer) if sliding_windows else None, config.num_meta_tokens, seq_len)


def cache_bytes(
    config: HymbaConfig,
    seq_len: int,
    *,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.bfloat16,
    sliding_windows: bool = True,
    kv_sharing: bool = True,
) -> CacheSize:
    """Closed-form size of a :class:`~minihymba.cache.HymbaCache` after meta + ``seq_len`` columns.

    ``sliding_windows`` / ``kv_sharing`` = False: the size the same geometry would need without them.
    """
    elem = element_size(dtype)
    entry = config.num_kv_heads * (config.head_dim + config.v_head_dim)  # numbers per key/value entry
    entries = sum(
        kv_entries(config, i, seq_len, sliding_windows=sliding_windows, kv_sharing=kv_sharing)
        for i in range(config.num_layers)
    )
    state = config.num_layers * config.d_inner * (config.conv_kernel + config.ssm_state_size)
    return CacheSize(kv_bytes=batch_size * entries * entry * elem, state_bytes=batch_size * state * elem)


def cache_variants(
    config: HymbaConfig, seq_len: int, *, batch_size: int = 1, dtype: torch.dtype | str = torch.bfloat16
) -> dict[str, CacheSize]:
    """The same geometry with and without its two savings.

    Keys: "hymba" (as configured), "no_swa" (every layer global), "no_sharing" (every layer keeps its own
    keys/values), "no_swa_no_sharing" (both: full attention with its own cache in every layer).
    """
    options = {
        "hymba": (True, True),
        "no_swa": (False, True),
        "no_sharing": (True, False),
        "no_swa_no_sharing": (False, False),
    }
    return {
        name: cache_bytes(
            config, seq_len, batch_size=batch_size, dtype=dtype, sliding_windows=swa, kv_sharing=sharing
        )
        for name, (swa, sharing) in options.items()
    }


def llama_kv_bytes(
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    seq_len: int,
    *,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.bfloat16,
) -> int:
    """KV cache of a plain GQA transformer: 2 (K and V) x layers x KV heads x head dim x tokens."""
    return 2 * num_layers * num_kv_heads * head_dim * seq_len * batch_size * element_size(dtype)
