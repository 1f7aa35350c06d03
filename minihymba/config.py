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
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HymbaConfig"]


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
        # Normalise list-like fields to tuples so the config is hashable and immutable.
        object.__setattr__(self, "global_layers", tuple(int(i) for i in self.global_layers))
        object.__setattr__(
            self, "kv_share_groups", tuple(tuple(int(i) for i in g) for g in self.kv_share_groups)
        )
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
            if not isinstance(value, int) or value < 0:
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
        if self.sliding_window is not None and (
            not isinstance(self.sliding_window, int) or self.sliding_window <= 0
        ):
            raise ValueError(
                f"HymbaConfig.sliding_window must be a positive integer or None, got {self.sliding_window!r}"
            )
        if self.mlp_act not in ("silu", "relu2"):
            raise ValueError(f"HymbaConfig.mlp_act must be 'silu' or 'relu2', got {self.mlp_act!r}")
        if self.rope_type not in ("ntk", "default"):
            raise ValueError(f"HymbaConfig.rope_type must be 'ntk' or 'default', got {self.rope_type!r}")
        if self.rope and self.rope_type == "ntk" and not self.orig_max_position_embeddings:
            raise ValueError("HymbaConfig.orig_max_position_embeddings is required when rope_type='ntk'")
        if self.rope and self.head_dim % 2:
            raise ValueError(f"HymbaConfig: RoPE needs an even head_dim, got {self.head_dim}")
        if not (self.rms_norm_eps > 0):
            raise ValueError(f"HymbaConfig.rms_norm_eps must be > 0, got {self.rms_norm_eps!r}")
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
        """Build from a hub ``config.json`` (a dict, a path to the file, or its directory)."""
        if not isinstance(source, dict):
            path = Path(source)
            if path.is_dir():
                path = path / "config.json"
            if not path.is_file():
                raise FileNotFoundError(f"no config.json at {path}")
            try:
                source = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON: {err}") from err
        hf = dict(source)
        if hf.get("model_type", "hymba") != "hymba":
            raise ValueError(f"config.json model_type is {hf.get('model_type')!r}, expected 'hymba'")

        def need(key: str) -> Any:
            if key not in hf:
                raise ValueError(f"config.json is missing the required field {key!r}")
            return hf[key]

        # Fields the hub code reads but whose other values minihymba does not implement.
        unsupported = {
            "memory_tokens_interspersed_every": (0, None),
            "kq_norm": ("none", None),
            "hidden_act": ("silu", None),
            "num_experts": (1, None),
            "kv_weight_reuse": (False, None),
        }
        for key, allowed in unsupported.items():
            if hf.get(key, allowed[0]) not in allowed:
                raise ValueError(
                    f"config.json field {key!r} = {hf[key]!r} is not supported by minihymba "
                    f"(supported: {allowed[0]!r})"
                )
        hidden = int(need("hidden_size"))
        heads = int(need("num_attention_heads"))
        if hf.get("attn_hidden_size", -1) not in (-1, None, hidden):
            raise ValueError(
                f"config.json field 'attn_hidden_size' = {hf['attn_hidden_size']!r} is not supported "
                f"(the checkpoint layout needs -1 or hidden_size={hidden})"
            )
        if heads > 0 and hf.get("kq_head_dim", -1) not in (-1, None, hidden // heads):
            raise ValueError(
                f"config.json field 'kq_head_dim' = {hf['kq_head_dim']!r} is not supported "
                f"(the checkpoint layout needs -1 or hidden_size/num_attention_heads={hidden // heads})"
            )
        n_layers = int(need("num_hidden_layers"))
        layer_type = hf.get("layer_type")
        if layer_type is not None and any(t != "h" for t in layer_type):
            raise ValueError(f"config.json field 'layer_type' must be all 'h' (hybrid), got {layer_type!r}")
        groups = hf.get("kv_reuse_group")
        every = int(hf.get("kv_reuse_every_i_layer", -1) or -1)
        if groups is None and every > 0:  # the hub's older "share with the previous i-1 layers" form
            groups = [list(range(s, min(s + every, n_layers))) for s in range(0, n_layers, every)]
            groups = [g for g in groups if len(g) > 1]
        dt_rank = hf.get("mamba_dt_rank", "auto")
        if dt_rank == "auto":
            dt_rank = -(-hidden // 16)
        window = hf.get("sliding_window")
        known = {
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "intermediate_size",
            "mlp_hidden_act",
            "mamba_expand",
            "mamba_d_state",
            "mamba_d_conv",
            "mamba_dt_rank",
            "mamba_conv_bias",
            "mamba_proj_bias",
            "mamba_inner_layernorms",
            "num_memory_tokens",
            "sliding_window",
            "global_attn_idx",
            "kv_reuse_group",
            "rope",
            "rope_type",
            "rope_theta",
            "max_position_embeddings",
            "orig_max_position_embeddings",
            "rms_norm_eps",
            "tie_word_embeddings",
            "bos_token_id",
            "eos_token_id",
            "pad_token_id",
            "torch_dtype",
        }
        try:
            return cls(
                vocab_size=int(need("vocab_size")),
                hidden_size=hidden,
                num_layers=n_layers,
                num_heads=heads,
                num_kv_heads=int(hf.get("num_key_value_heads") or heads),
                intermediate_size=int(need("intermediate_size")),
                mlp_act=hf.get("mlp_hidden_act", "silu"),
                mamba_expand=int(hf.get("mamba_expand", 2)),
                ssm_state_size=int(hf.get("mamba_d_state", 16)),
                conv_kernel=int(hf.get("mamba_d_conv", 4)),
                dt_rank=int(dt_rank),
                conv_bias=bool(hf.get("mamba_conv_bias", True)),
                proj_bias=bool(hf.get("mamba_proj_bias", False)),
                inner_layernorms=bool(hf.get("mamba_inner_layernorms", True)),
                num_meta_tokens=int(hf.get("num_memory_tokens", 0) or 0),
                sliding_window=None if window is None else int(window),
                global_layers=tuple(hf.get("global_attn_idx") or ()),
                kv_share_groups=tuple(tuple(g) for g in (groups or ())),
                rope=bool(hf.get("rope", True)),
                rope_type=hf.get("rope_type") or "default",
                rope_theta=float(hf.get("rope_theta", 10000.0)),
                max_position_embeddings=int(hf.get("max_position_embeddings", 8192)),
                orig_max_position_embeddings=hf.get("orig_max_position_embeddings"),
                rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
                bos_token_id=hf.get("bos_token_id"),
                eos_token_id=hf.get("eos_token_id"),
                pad_token_id=hf.get("pad_token_id"),
                torch_dtype=hf.get("torch_dtype"),
                extra={k: v for k, v in hf.items() if k not in known},
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"bad Hymba config.json: {err}") from err

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
        hf.update(self.extra)
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
