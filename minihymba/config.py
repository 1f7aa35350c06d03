"""HymbaConfig: every size and switch of a Hymba model, validated, in one frozen dataclass.

The hub's ``config.json`` uses its own field names (``num_memory_tokens``, ``kv_reuse_group``,
``mamba_d_state`` ...). :meth:`HymbaConfig.from_hf_config` is the only place those names appear; the rest
of minihymba speaks in the names below.

Glossary (used in shape comments across the package)
    B   batch size                      D    hidden_size (residual width)
    T   real tokens                     I    d_inner = mamba_expand * D (SSM width = attention output width)
    M   num_meta_tokens                 N    ssm_state_size
    S   M + T (meta-inclusive length)   R    dt_rank
    H   num_heads (query heads)         Dk   head_dim (q/k head width) = D / H
    Hkv num_kv_heads                    Dv   v_head_dim = I / H
    W   sliding_window                  K    conv_kernel

Reading ``config.json`` is strict: every field must have its JSON type (an integer must be a JSON integer,
``64.7`` and ``"64"`` are refused; a switch must be ``true``/``false``, not ``"false"`` or ``1``) and lie in
its range (``rope_theta`` and ``rms_norm_eps`` finite and > 0, ``orig_max_position_embeddings`` at most
``max_position_embeddings``, token ids inside the vocabulary ...). A bad field raises ``ValueError`` naming
it; nothing is coerced.

A field missing from ``config.json`` means what it means to NVIDIA's configuration class (the
``HymbaConfig`` in the hub's ``configuration_hymba.py``), or the file is refused, naming the field --
never another default:

================================= ================================ =========================================
hub field                         NVIDIA's default when missing    minihymba when missing
================================= ================================ =========================================
vocab_size                        65536                            refused (a size of another model)
hidden_size                       4096                             refused (a size of another model)
num_hidden_layers                 32                               refused (a size of another model)
num_attention_heads               32                               refused (a size of another model)
num_key_value_heads               8 (``null``: one per head)       refused; ``null``: num_attention_heads
intermediate_size                 14336                            refused (a size of another model)
mlp_hidden_act                    none (its MLP reads the field)   refused
hidden_act                        "silu"                           "silu"
mamba_expand                      2                                2
mamba_d_state                     16                               16
mamba_d_conv                      4                                4
mamba_dt_rank                     "auto" = ceil(hidden_size / 16)  "auto"
mamba_conv_bias                   true                             true
mamba_proj_bias                   false                            false
mamba_inner_layernorms            true                             true
num_memory_tokens                 0 (no meta tokens)               0
memory_tokens_interspersed_every  0                                0
sliding_window                    null (every layer global)        null
global_attn_idx                   null                             null without a sliding_window; refused
                                                                   with one (NVIDIA's attention paths then
                                                                   disagree about which layers are global)
kv_reuse_group                    null (no sharing)                null
kv_reuse_every_i_layer            -1 (no sharing)                  -1
kv_weight_reuse                   false                            false
rope                              false (no rotary embedding)      false
rope_type                         null (plain RoPE)                "default" (plain RoPE)
rope_theta                        10000.0                          10000.0
max_position_embeddings           262144                           262144
orig_max_position_embeddings      null                             null
rms_norm_eps                      1e-6                             1e-6
tie_word_embeddings               false (a separate lm_head)       false
bos_token_id                      1                                1
eos_token_id                      2                                2
pad_token_id                      0                                0
num_experts                       16 (a mixture of experts)        refused (minihymba has one dense MLP)
kq_norm                           null (none)                      null
attn_hidden_size, kq_head_dim     -1                               -1
layer_type                        ignored (every layer hybrid)     every layer hybrid ("h")
model_type                        "hymba"                          "hymba"
torch_dtype                       null                             null (informational only)
================================= ================================ =========================================

:data:`HUB_DEFAULTS` holds the right-hand column (``REFUSED`` marks the refusals).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HUB_DEFAULTS", "REFUSED", "HymbaConfig"]


class _Refused:
    """Marks a hub field that minihymba refuses to guess when ``config.json`` leaves it out."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"REFUSED({self.why!r})"


REFUSED = _Refused("no default")
_OTHER_MODEL = _Refused("NVIDIA's default is a size of another model")

# What a field missing from config.json becomes (see the table in the module docstring).
HUB_DEFAULTS: dict[str, Any] = {
    "vocab_size": _OTHER_MODEL,
    "hidden_size": _OTHER_MODEL,
    "num_hidden_layers": _OTHER_MODEL,
    "num_attention_heads": _OTHER_MODEL,
    "num_key_value_heads": _Refused("NVIDIA's default is 8 key/value heads, a size of another model"),
    "intermediate_size": _OTHER_MODEL,
    "mlp_hidden_act": _Refused("NVIDIA's configuration class has no default for it"),
    "hidden_act": "silu",
    "mamba_expand": 2,
    "mamba_d_state": 16,
    "mamba_d_conv": 4,
    "mamba_dt_rank": "auto",
    "mamba_conv_bias": True,
    "mamba_proj_bias": False,
    "mamba_inner_layernorms": True,
    "num_memory_tokens": 0,
    "memory_tokens_interspersed_every": 0,
    "sliding_window": None,
    "global_attn_idx": None,
    "kv_reuse_group": None,
    "kv_reuse_every_i_layer": -1,
    "kv_weight_reuse": False,
    "rope": False,
    "rope_type": None,
    "rope_theta": 10000.0,
    "max_position_embeddings": 262144,
    "orig_max_position_embeddings": None,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "num_experts": _Refused("NVIDIA's default is 16 experts; minihymba implements one dense MLP"),
    "kq_norm": None,
    "attn_hidden_size": -1,
    "kq_head_dim": -1,
    "layer_type": None,
    "model_type": "hymba",
    "torch_dtype": None,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _HubFields:
    """Typed, range-checked reads of a hub ``config.json`` dict (each error names the field)."""

    def __init__(self, hf: dict[str, Any]) -> None:
        self.hf = hf

    def bad(self, key: str, expected: str) -> ValueError:
        value = self.hf[key]
        return ValueError(
            f"config.json field {key!r} must be {expected}, got {value!r} (a JSON {_json_type(value)})"
        )

    def get(self, key: str) -> Any:
        """The field's value, or its default from :data:`HUB_DEFAULTS` (ValueError if that is a refusal)."""
        if key in self.hf:
            return self.hf[key]
        default = HUB_DEFAULTS[key]
        if isinstance(default, _Refused):
            raise ValueError(
                f"config.json is missing the required field {key!r} ({default.why}); add it to config.json"
            )
        return default

    def integer(self, key: str, minimum: int | None = None, nullable: bool = False) -> int | None:
        value = self.get(key)
        if value is None and nullable:
            return None
        if not _is_int(value) or (minimum is not None and value < minimum):
            what = "a JSON integer" + (f" >= {minimum}" if minimum is not None else "")
            raise self.bad(key, what + (" or null" if nullable else ""))
        return value

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.bad(key, "a JSON boolean (true or false)")
        return value

    def positive_float(self, key: str) -> float:
        value = self.get(key)
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise self.bad(key, "a finite number > 0")
        return float(value)

    def choice(self, key: str, allowed: tuple[Any, ...]) -> Any:
        """The value if it is one of ``allowed`` (compared with its JSON type: 1 is not true)."""
        value = self.get(key)
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise ValueError(
                f"config.json field {key!r} = {value!r} is not supported by minihymba "
                f"(supported: {' or '.join(repr(a) for a in allowed)})"
            )
        return value

    def int_list(self, key: str) -> list[int] | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(_is_int(i) for i in value):
            raise self.bad(key, "a JSON array of integers or null")
        return value

    def int_lists(self, key: str) -> list[list[int]] | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(
            isinstance(g, list) and all(_is_int(i) for i in g) for g in value
        ):
            raise self.bad(key, "a JSON array of arrays of integers, or null")
        return value


@dataclass(frozen=True)
class HymbaConfig:
    """Sizes and switches of a Hymba model (defaults: the real Hymba-1.5B)."""

    vocab_size: int = 32001
    hidden_size: int = 1600
    num_layers: int = 32
    num_heads: int = 25
    num_kv_heads: int = 5
    intermediate_size: int = 5504  # MLP width; 0 means "no MLP sub-block"
    mlp_act: str = "silu"  # "silu": down(silu(gate(x)) * up(x)); "relu2": down(relu(up(x))**2)
    # --- SSM (Mamba-1) branch ---
    mamba_expand: int = 2
    ssm_state_size: int = 16
    conv_kernel: int = 4
    dt_rank: int = 100
    conv_bias: bool = True
    proj_bias: bool = False  # bias on in_proj and out_proj
    inner_layernorms: bool = True  # RMSNorm on dt, B, C
    # --- meta tokens, attention pattern, KV sharing ---
    num_meta_tokens: int = 128
    sliding_window: int | None = 1024  # None: every layer attends globally
    global_layers: tuple[int, ...] = (0, 15, 31)
    # Each group is (producer, *consumers): consumers read the producer's keys and values.
    kv_share_groups: tuple[tuple[int, ...], ...] = (
        (1, 2),
        (3, 4),
        (5, 6),
        (7, 8),
        (9, 10),
        (11, 12),
        (13, 14),
        (16, 17, 18),
        (19, 20),
        (21, 22),
        (23, 24),
        (25, 26),
        (27, 28),
        (29, 30),
    )
    # --- rotary position embedding ---
    rope: bool = True
    rope_type: str = "ntk"  # "ntk" (NTK-scaled base, the checkpoint's) or "default"
    rope_theta: float = 10000.0
    max_position_embeddings: int = 8192
    orig_max_position_embeddings: int | None = 2048
    # --- misc ---
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    pad_token_id: int | None = 0
    torch_dtype: str | None = "bfloat16"  # dtype the checkpoint is stored in (informational)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        # Normalise list-like fields to tuples so the config is hashable and immutable (no coercion:
        # every layer index must already be an integer).
        try:
            layers = tuple(self.global_layers)
            groups = tuple(tuple(g) for g in self.kv_share_groups)
        except TypeError as err:
            raise ValueError(
                "HymbaConfig.global_layers must be a sequence of layer indices and "
                f"HymbaConfig.kv_share_groups a sequence of sequences of them: {err}"
            ) from err
        if not all(_is_int(i) for i in layers):
            raise ValueError(f"HymbaConfig.global_layers must hold integer layer indices, got {layers!r}")
        if not all(_is_int(i) for g in groups for i in g):
            raise ValueError(f"HymbaConfig.kv_share_groups must hold integer layer indices, got {groups!r}")
        object.__setattr__(self, "global_layers", layers)
        object.__setattr__(self, "kv_share_groups", groups)
        for name in ("conv_bias", "proj_bias", "inner_layernorms", "rope", "tie_word_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"HymbaConfig.{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("rope_theta", "rms_norm_eps"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"HymbaConfig.{name} must be a finite number > 0, got {value!r}")
        positive = (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "mamba_expand",
            "ssm_state_size",
            "conv_kernel",
            "dt_rank",
            "max_position_embeddings",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"HymbaConfig.{name} must be a positive integer, got {value!r}")
        for name in ("intermediate_size", "num_meta_tokens"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ValueError(f"HymbaConfig.{name} must be a non-negative integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"HymbaConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_heads ({self.num_heads})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"HymbaConfig.num_heads ({self.num_heads}) must be divisible by "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.d_inner % self.num_heads:
            raise ValueError(
                f"HymbaConfig.mamba_expand * hidden_size ({self.d_inner}) must be divisible by "
                f"num_heads ({self.num_heads}): it is split into value heads"
            )
        if self.sliding_window is not None and (not _is_int(self.sliding_window) or self.sliding_window <= 0):
            raise ValueError(
                f"HymbaConfig.sliding_window must be a positive integer or None, got {self.sliding_window!r}"
            )
        if self.mlp_act not in ("silu", "relu2"):
            raise ValueError(f"HymbaConfig.mlp_act must be 'silu' or 'relu2', got {self.mlp_act!r}")
        if self.rope_type not in ("ntk", "default"):
            raise ValueError(f"HymbaConfig.rope_type must be 'ntk' or 'default', got {self.rope_type!r}")
        orig = self.orig_max_position_embeddings
        if orig is not None and (not _is_int(orig) or not 0 < orig <= self.max_position_embeddings):
            raise ValueError(
                "HymbaConfig.orig_max_position_embeddings must be None or an integer in "
                f"[1, max_position_embeddings={self.max_position_embeddings}], got {orig!r}"
            )
        if self.rope and self.rope_type == "ntk" and orig is None:
            raise ValueError("HymbaConfig.orig_max_position_embeddings is required when rope_type='ntk'")
        if self.rope and self.head_dim % 2:
            raise ValueError(f"HymbaConfig: RoPE needs an even head_dim, got {self.head_dim}")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or not 0 <= value < self.vocab_size):
                raise ValueError(
                    f"HymbaConfig.{name} must be None or a token id in [0, vocab_size={self.vocab_size}), "
                    f"got {value!r}"
                )
        if self.torch_dtype is not None and not isinstance(self.torch_dtype, str):
            raise ValueError(
                f"HymbaConfig.torch_dtype must be None or a dtype name, got {self.torch_dtype!r}"
            )
        if not isinstance(self.extra, dict):
            raise ValueError(f"HymbaConfig.extra must be a dict, got {type(self.extra).__name__}")
        n = self.num_layers
        for i in self.global_layers:
            if not 0 <= i < n:
                raise ValueError(f"HymbaConfig.global_layers: layer {i} is out of range [0, {n})")
        if len(set(self.global_layers)) != len(self.global_layers):
            raise ValueError(f"HymbaConfig.global_layers has duplicates: {self.global_layers}")
        seen: set[int] = set()
        for group in self.kv_share_groups:
            if len(group) < 2:
                raise ValueError(
                    f"HymbaConfig.kv_share_groups: group {group} needs a producer and at least one consumer"
                )
            for i in group:
                if not 0 <= i < n:
                    raise ValueError(f"HymbaConfig.kv_share_groups: layer {i} is out of range [0, {n})")
                if i in seen:
                    raise ValueError(f"HymbaConfig.kv_share_groups: layer {i} appears in more than one group")
                seen.add(i)
            if list(group) != sorted(group):
                raise ValueError(
                    f"HymbaConfig.kv_share_groups: group {group} must be increasing (producer first)"
                )
            for consumer in group[1:]:
                if self.is_global(consumer) != self.is_global(group[0]):
                    raise ValueError(
                        f"HymbaConfig.kv_share_groups: group {group} mixes global and sliding-window "
                        f"layers (layer {consumer} cannot read the keys of layer {group[0]})"
                    )
                if self.is_global(consumer):
                    raise ValueError(
                        f"HymbaConfig.kv_share_groups: consumer layer {consumer} is a global layer; "
                        "KV sharing is only supported between sliding-window layers"
                    )

    # ------------------------------------------------------------------ derived sizes
    @property
    def head_dim(self) -> int:
        """Dk: width of one query/key head."""
        return self.hidden_size // self.num_heads

    @property
    def d_inner(self) -> int:
        """I: SSM inner width, also the attention output width (H * Dv)."""
        return self.mamba_expand * self.hidden_size

    @property
    def v_head_dim(self) -> int:
        """Dv: width of one value head (128 in Hymba-1.5B, twice the q/k head width)."""
        return self.d_inner // self.num_heads

    @property
    def num_kv_groups(self) -> int:
        """Query heads per KV head (GQA)."""
        return self.num_heads // self.num_kv_heads

    # ------------------------------------------------------------------ layer roles
    def is_global(self, layer: int) -> bool:
        """True if ``layer`` attends to every earlier position (no sliding window)."""
        return self.sliding_window is None or layer in self.global_layers

    def window(self, layer: int) -> int | None:
        """The sliding window W of ``layer``, or None for a global layer (the rule: minihymba.masks)."""
        return None if self.is_global(layer) else self.sliding_window

    def kv_source(self, layer: int) -> int:
        """The layer whose keys/values ``layer`` attends over (itself unless it is a consumer)."""
        for group in self.kv_share_groups:
            if layer in group[1:]:
                return group[0]
        return layer

    def owns_kv(self, layer: int) -> bool:
        """True if ``layer`` computes its own keys/values (global layers, producers, unshared layers)."""
        return self.kv_source(layer) == layer

    def in_proj_sizes(self, layer: int) -> tuple[int, ...]:
        """Row blocks of ``in_proj``: (q, k, v, x, z) for own-KV layers, (q, x, z) for consumers."""
        q = self.num_heads * self.head_dim
        if self.owns_kv(layer):
            k = self.num_kv_heads * self.head_dim
            v = self.num_kv_heads * self.v_head_dim
            return (q, k, v, self.d_inner, self.d_inner)
        return (q, self.d_inner, self.d_inner)

    # ------------------------------------------------------------------ hub format
    @classmethod
    def from_hf_config(cls, source: dict[str, Any] | str | os.PathLike) -> HymbaConfig:
        """Build from a hub ``config.json`` (a dict, a path to the file, or its directory).

        Strict: every field is read with its JSON type and range, and a missing field takes NVIDIA's
        default or is refused (the table in the module docstring). Raises ``ValueError`` naming the field.
        """
        if not isinstance(source, dict):
            path = Path(source)
            if path.is_dir():
                path = path / "config.json"
            if not path.is_file():
                raise FileNotFoundError(f"no config.json at {path}")
            try:
                source = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"{path} is not valid JSON: {err}") from err
            if not isinstance(source, dict):
                raise ValueError(f"{path} must hold a JSON object, got a JSON {_json_type(source)}")
        try:
            return cls._from_hub_fields(_HubFields(dict(source)))
        except (TypeError, ValueError) as err:
            raise ValueError(f"bad Hymba config.json: {err}") from err

    @classmethod
    def _from_hub_fields(cls, f: _HubFields) -> HymbaConfig:
        hf = f.hf
        f.choice("model_type", ("hymba",))
        # Fields the hub code reads but whose other values minihymba does not implement.
        f.choice("memory_tokens_interspersed_every", (0, None))
        f.choice("kq_norm", ("none", None))
        f.choice("hidden_act", ("silu",))
        f.choice("num_experts", (1,))
        f.choice("kv_weight_reuse", (False, None))
        hidden = f.integer("hidden_size", minimum=1)
        heads = f.integer("num_attention_heads", minimum=1)
        assert hidden is not None and heads is not None
        if f.get("attn_hidden_size") not in (-1, None, hidden) or isinstance(f.get("attn_hidden_size"), bool):
            raise ValueError(
                f"config.json field 'attn_hidden_size' = {hf['attn_hidden_size']!r} is not supported "
                f"(the checkpoint layout needs -1 or hidden_size={hidden})"
            )
        if f.get("kq_head_dim") not in (-1, None, hidden // heads) or isinstance(f.get("kq_head_dim"), bool):
            raise ValueError(
                f"config.json field 'kq_head_dim' = {hf['kq_head_dim']!r} is not supported "
                f"(the checkpoint layout needs -1 or hidden_size/num_attention_heads={hidden // heads})"
            )
        n_layers = f.integer("num_hidden_layers", minimum=1)
        assert n_layers is not None
        layer_type = f.get("layer_type")
        if layer_type is not None and (
            not isinstance(layer_type, list)
            or len(layer_type) != n_layers
            or any(t != "h" for t in layer_type)
        ):
            raise ValueError(
                f"config.json field 'layer_type' must be {n_layers} times 'h' (every layer hybrid), "
                f"got {layer_type!r}"
            )
        kv_heads = f.integer("num_key_value_heads", minimum=1, nullable=True)
        groups = f.int_lists("kv_reuse_group")
        every = f.integer("kv_reuse_every_i_layer", nullable=True)
        if (
            groups is None and every is not None and every > 0
        ):  # the hub's older "share with the previous i-1 layers" form
            groups = [list(range(s, min(s + every, n_layers))) for s in range(0, n_layers, every)]
            groups = [g for g in groups if len(g) > 1]
        dt_rank = f.get("mamba_dt_rank")
        if dt_rank == "auto":
            dt_rank = -(-hidden // 16)
        elif not _is_int(dt_rank) or dt_rank < 1:
            raise f.bad("mamba_dt_rank", 'a JSON integer >= 1 or "auto"')
        window = f.integer("sliding_window", minimum=1, nullable=True)
        global_layers = f.int_list("global_attn_idx")
        if global_layers is None and window is not None:
            raise ValueError(
                "config.json field 'global_attn_idx' is missing or null while 'sliding_window' is set: "
                "NVIDIA's attention paths disagree on which layers are then global. List the global "
                "layers ([] for none)"
            )
        rope_type = f.get("rope_type")
        if rope_type is not None and not isinstance(rope_type, str):
            raise f.bad("rope_type", 'a JSON string ("ntk" or "default") or null')
        mlp_act = f.get("mlp_hidden_act")
        if not isinstance(mlp_act, str):
            raise f.bad("mlp_hidden_act", 'a JSON string ("silu" or "relu2")')
        torch_dtype = f.get("torch_dtype")
        if torch_dtype is not None and not isinstance(torch_dtype, str):
            raise f.bad("torch_dtype", "a JSON string or null")
        vocab = f.integer("vocab_size", minimum=1)
        assert vocab is not None
        token_ids = {}
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = f.get(key)
            if value is not None and (not _is_int(value) or not 0 <= value < vocab):
                raise f.bad(key, f"null or a JSON integer token id in [0, vocab_size={vocab})")
            token_ids[key] = value
        max_pos = f.integer("max_position_embeddings", minimum=1)
        assert max_pos is not None
        orig = f.integer("orig_max_position_embeddings", minimum=1, nullable=True)
        if orig is not None and orig > max_pos:
            raise f.bad(
                "orig_max_position_embeddings", f"at most max_position_embeddings ({max_pos}), or null"
            )
        known = {*HUB_DEFAULTS} - {
            "hidden_act",
            "num_experts",
            "kq_norm",
            "attn_hidden_size",
            "kq_head_dim",
            "layer_type",
            "model_type",
            "memory_tokens_interspersed_every",
            "kv_reuse_every_i_layer",
            "kv_weight_reuse",
        }
        return cls(
            vocab_size=vocab,
            hidden_size=hidden,
            num_layers=n_layers,
            num_heads=heads,
            num_kv_heads=heads if kv_heads is None else kv_heads,
            intermediate_size=f.integer("intermediate_size", minimum=0),
            mlp_act=mlp_act,
            mamba_expand=f.integer("mamba_expand", minimum=1),
            ssm_state_size=f.integer("mamba_d_state", minimum=1),
            conv_kernel=f.integer("mamba_d_conv", minimum=1),
            dt_rank=dt_rank,
            conv_bias=f.boolean("mamba_conv_bias"),
            proj_bias=f.boolean("mamba_proj_bias"),
            inner_layernorms=f.boolean("mamba_inner_layernorms"),
            num_meta_tokens=f.integer("num_memory_tokens", minimum=0),
            sliding_window=window,
            global_layers=tuple(global_layers or ()),
            kv_share_groups=tuple(tuple(g) for g in (groups or ())),
            rope=f.boolean("rope"),
            rope_type=rope_type or "default",
            rope_theta=f.positive_float("rope_theta"),
            max_position_embeddings=max_pos,
            orig_max_position_embeddings=orig,
            rms_norm_eps=f.positive_float("rms_norm_eps"),
            tie_word_embeddings=f.boolean("tie_word_embeddings"),
            torch_dtype=torch_dtype,
            extra={k: v for k, v in hf.items() if k not in known},
            **token_ids,
        )

    def to_hf_config(self) -> dict[str, Any]:
        """The hub ``config.json`` dict for this config (inverse of :meth:`from_hf_config`)."""
        hf: dict[str, Any] = {
            "architectures": ["HymbaForCausalLM"],
            "model_type": "hymba",
            "attn_hidden_size": -1,
            "kq_head_dim": -1,
            "v_head_dim": self.v_head_dim,
            "kq_norm": "none",
            "hidden_act": "silu",
            "num_experts": 1,
            "num_experts_per_tok": 1,
            "num_mamba": 1,
            "kv_reuse_every_i_layer": -1,
            "kv_weight_reuse": False,
            "memory_tokens_interspersed_every": 0,
            "layer_type": ["h"] * self.num_layers,
            "conv_dim": {str(i): self.d_inner for i in range(self.num_layers)},
            "attn_implementation": "flex",
            "attn_implementation_new": "flex",
            "use_cache": False,
            "calc_logits_for_entire_prompt": False,
        }
        per_layer = ("layer_type", "conv_dim")  # sized by num_layers: a replace() may have changed it
        hf.update({k: v for k, v in self.extra.items() if k not in per_layer})
        hf.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            intermediate_size=self.intermediate_size,
            mlp_hidden_act=self.mlp_act,
            mamba_expand=self.mamba_expand,
            mamba_d_state=self.ssm_state_size,
            mamba_d_conv=self.conv_kernel,
            mamba_dt_rank=self.dt_rank,
            mamba_conv_bias=self.conv_bias,
            mamba_proj_bias=self.proj_bias,
            mamba_inner_layernorms=self.inner_layernorms,
            num_memory_tokens=self.num_meta_tokens,
            sliding_window=self.sliding_window,
            global_attn_idx=list(self.global_layers),
            kv_reuse_group=[list(g) for g in self.kv_share_groups] or None,
            rope=self.rope,
            rope_type=self.rope_type,
            rope_theta=self.rope_theta,
            max_position_embeddings=self.max_position_embeddings,
            orig_max_position_embeddings=self.orig_max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            tie_word_embeddings=self.tie_word_embeddings,
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            torch_dtype=self.torch_dtype,
        )
        return hf

    def replace(self, **changes: Any) -> HymbaConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def tiny(cls, **changes: Any) -> HymbaConfig:
        """A small config with every layer kind, for tests, notebooks and benchmarks.

        8 layers: 0 and 7 global; 1 sliding-window with its own unshared KV; KV groups (2, 3) and
        (4, 5, 6). D=32, H=4, Hkv=2 (Dk=8, Dv=16: value heads twice as wide, as in the 1.5B), I=64, N=4,
        K=4, R=2, M=3 meta tokens, W=5, vocabulary 61, MLP 48, NTK RoPE (orig 64 of 256 positions).
        """
        base = cls(
            vocab_size=61,
            hidden_size=32,
            num_layers=8,
            num_heads=4,
            num_kv_heads=2,
            intermediate_size=48,
            mamba_expand=2,
            ssm_state_size=4,
            conv_kernel=4,
            dt_rank=2,
            num_meta_tokens=3,
            sliding_window=5,
            global_layers=(0, 7),
            kv_share_groups=((2, 3), (4, 5, 6)),
            max_position_embeddings=256,
            orig_max_position_embeddings=64,
            torch_dtype="float32",
        )
        return base.replace(**changes) if changes else base
