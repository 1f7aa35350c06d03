"""One Hymba layer: a hybrid-head mixer (attention heads and SSM heads in parallel) and an MLP.

    u = RMSNorm(x)
    q, k, v, xs, z = in_proj(u)                  one projection feeds both branches
    a = attention(rope(q), rope(k), v)           sliding-window or global, GQA, no output projection
    y = ssm(silu(conv(xs))) * silu(z)            Mamba-1 selective scan with gate z
    x = x + out_proj((RMSNorm1(a) + RMSNorm2(y)) / 2)
    x = x + MLP(RMSNorm(x))

The two RMSNorm gains are the paper's beta_1 / beta_2: each branch is normalised and rescaled per channel
before the average, then one shared ``out_proj`` maps the I-wide result back to D.

KV sharing: layers that are consumers of a KV group have no k/v rows in ``in_proj``; they attend over the
producer's (rotated) keys and values, which the model hands them as ``shared_kv``.

Checkpoint names are kept verbatim so ``load_state_dict`` needs no renaming: the mixer is called ``mamba``
although it holds the attention too; ``x_proj``/``dt_proj``/``A_log``/``D`` are length-1 lists (hence the
``.0`` in the keys); the MLP sits in a one-expert ``moe`` wrapper.

Shapes: x, u (B, S, D); q (B, H, S, Dk); k (B, Hkv, S, Dk); v (B, Hkv, S, Dv); a, xs, z, y (B, S, I).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import attention
from .cache import HymbaCache, KVEntries
from .config import HymbaConfig
from .impl import FLEX_IMPLS, Impl, choose_attention, choose_conv, choose_scan
from .masks import LayerMasks, decode_window
from .norms import RMSNorm
from .rope import apply_rope, rope_cos_sin, rope_inv_freq
from .scans import causal_conv1d, selective_scan

__all__ = ["StepContext", "SSMInputs", "HybridMixer", "GatedMLP", "SingleExpertMoE", "HymbaDecoderLayer"]


@dataclass
class StepContext:
    """What every layer needs to know about the current forward call (built once, by :meth:`create`).

    positions (B, S) position ids of this call's columns; valid (B, S) False at padding (None: no padding);
    cos/sin (B, S, Dk) RoPE tables (None when RoPE is off); masks: the call's masks, built on demand;
    cache: decoding state or None; impl: the implementations to run; narrow_decode: NVIDIA's cached
    decoding (window W - 1 on a cache that already holds tokens, :func:`~minihymba.masks.decode_window`).
    """

    config: HymbaConfig
    positions: Tensor
    valid: Tensor | None
    cos: Tensor | None
    sin: Tensor | None
    masks: LayerMasks
    cache: HymbaCache | None = None
    impl: Impl = Impl()
    output_attentions: bool = False
    narrow_decode: bool = False

    @classmethod
    def create(
        cls,
        config: HymbaConfig,
        positions: Tensor,
        valid: Tensor | None = None,
        *,
        cache: HymbaCache | None = None,
        impl: Impl | None = None,
        output_attentions: bool = False,
        hub_compat: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> StepContext:
        """The context of a call over columns at ``positions`` (B, S) (RoPE tables in ``dtype``)."""
        cos = sin = None
        if config.rope:
            cos, sin = rope_cos_sin(rope_inv_freq(config, positions.device), positions, dtype)  # (B, S, Dk)
        return cls(
            config,
            positions,
            valid,
            cos,
            sin,
            LayerMasks(positions, valid, config.num_meta_tokens),
            cache=cache,
            impl=Impl() if impl is None else impl,
            output_attentions=output_attentions,
            narrow_decode=hub_compat and cache is not None and cache.has_tokens,
        )

    @classmethod
    def for_sequence(
        cls, config: HymbaConfig, length: int, *, impl: Impl | None = None, device: torch.device | str = "cpu"
    ) -> StepContext:
        """A fresh, unpadded, uncached sequence of ``length`` columns (meta tokens included)."""
        return cls.create(config, torch.arange(length, device=device)[None], impl=impl)

    def window(self, layer: int) -> int | None:
        """The sliding window of ``layer`` in this call (None for a global layer)."""
        return decode_window(self.config.window(layer), self.narrow_decode)

    def new_entries(self, keys: Tensor, values: Tensor) -> KVEntries:
        valid = self.valid if self.valid is not None else torch.ones_like(self.positions, dtype=torch.bool)
        return KVEntries(keys, values, self.positions, valid)


@dataclass
class SSMInputs:
    """What a layer's selective scan reads: conv output xc, step dt, decay A, B, C, skip D, gate z."""

    xc: Tensor  # (B, S, I) the convolution's output (SiLU applied)
    dt: Tensor  # (B, S, I) float32, after softplus
    A: Tensor  # (I, N) float32, negative
    B: Tensor  # (B, S, N)
    C: Tensor  # (B, S, N)
    D: Tensor  # (I,) float32
    z: Tensor  # (B, S, I) the gate


class HybridMixer(nn.Module):
    """Attention heads and SSM heads reading one ``in_proj`` and writing one ``out_proj``."""

    def __init__(self, config: HymbaConfig, layer: int) -> None:
        super().__init__()
        self.config, self.layer = config, layer
        self.owns_kv = config.owns_kv(layer)
        self.split_sizes = config.in_proj_sizes(layer)  # (q, k, v, x, z) or (q, x, z)
        d, inner, n, r = config.hidden_size, config.d_inner, config.ssm_state_size, config.dt_rank
        eps = config.rms_norm_eps
        self.in_proj = nn.Linear(d, sum(self.split_sizes), bias=config.proj_bias)
        self.conv1d = nn.Conv1d(
            inner,
            inner,
            config.conv_kernel,
            groups=inner,
            bias=config.conv_bias,
            padding=config.conv_kernel - 1,
        )
        self.x_proj = nn.ModuleList([nn.Linear(inner, r + 2 * n, bias=False)])
        self.dt_proj = nn.ModuleList([nn.Linear(r, inner, bias=True)])
        self.A_log = nn.ParameterList([nn.Parameter(torch.empty(inner, n))])
        self.D = nn.ParameterList([nn.Parameter(torch.empty(inner))])
        if config.inner_layernorms:
            self.dt_layernorm = RMSNorm(r, eps)
            self.B_layernorm = RMSNorm(n, eps)
            self.C_layernorm = RMSNorm(n, eps)
        self.pre_avg_layernorm1 = RMSNorm(inner, eps)  # beta_1: attention branch
        self.pre_avg_layernorm2 = RMSNorm(inner, eps)  # beta_2: SSM branch
        self.out_proj = nn.Linear(inner, d, bias=config.proj_bias)

    # ---------------------------------------------------------------- attention branch
    def attend(
        self, q: Tensor, k: Tensor | None, v: Tensor | None, ctx: StepContext, shared_kv: KVEntries | None
    ) -> tuple[Tensor, KVEntries, Tensor | None]:
        """Rotate, (cache and) attend. Returns the (B, S, I) output, the keys used, and probabilities."""
        cfg = self.config
        b, s, _ = q.shape
        q = q.view(b, s, cfg.num_heads, cfg.head_dim).transpose(1, 2)  # (B, H, S, Dk)
        if ctx.cos is not None:
            q = apply_rope(q, ctx.cos, ctx.sin)
        if self.owns_kv:
            k = k.view(b, s, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)  # (B, Hkv, S, Dk)
            v = v.view(b, s, cfg.num_kv_heads, cfg.v_head_dim).transpose(1, 2)  # (B, Hkv, S, Dv)
            if ctx.cos is not None:
                k = apply_rope(k, ctx.cos, ctx.sin)
            kv = ctx.new_entries(k, v)
            if ctx.cache is not None:
                kv = ctx.cache.extend_kv(self.layer, kv)
        else:
            if shared_kv is None:
                raise RuntimeError(f"layer {self.layer} reads shared keys/values but none were given")
            kv = shared_kv
        impl = choose_attention(ctx.impl, queries=s, device=q.device, need_probs=ctx.output_attentions)
        mask = ctx.masks.get(ctx.window(self.layer), kv.positions, kv.valid, block=impl in FLEX_IMPLS)
        out, probs = attention(
            q,
            kv.keys,
            kv.values,
            mask,
            scale=1.0 / math.sqrt(cfg.head_dim),
            impl=impl,
            return_probs=ctx.output_attentions,
        )
        return out.transpose(1, 2).reshape(b, s, cfg.d_inner), kv, probs  # (B, S, H*Dv) = (B, S, I)

    # ---------------------------------------------------------------- SSM branch
    def ssm_inputs(
        self,
        xs: Tensor,
        z: Tensor,
        *,
        valid: Tensor | None = None,
        conv_state: Tensor | None = None,
        conv_impl: str = "ref",
    ) -> tuple[SSMInputs, Tensor]:
        """Conv, then the input-dependent (dt, B, C) and A: everything the scan reads, and the new conv state.

        ``valid`` (B, S) marks real columns: padding is zeroed before the conv and gets dt = 0, so the
        state passes it unchanged. xs, z (B, S, I).
        """
        cfg = self.config
        if valid is not None:
            xs = xs.masked_fill(~valid[..., None], 0.0)  # padding must not enter the conv or the scan
        weight = self.conv1d.weight[:, 0, :]  # (I, K)
        xc, conv_state = causal_conv1d(xs, weight, self.conv1d.bias, conv_state, valid, impl=conv_impl)
        dt, B, C = self.x_proj[0](xc).split([cfg.dt_rank, cfg.ssm_state_size, cfg.ssm_state_size], dim=-1)
        if cfg.inner_layernorms:
            dt, B, C = self.dt_layernorm(dt), self.B_layernorm(B), self.C_layernorm(C)
        dt = F.linear(dt, self.dt_proj[0].weight)  # (B, S, I); bias added in float32 below
        dt = F.softplus(dt.float() + self.dt_proj[0].bias.float())
        if valid is not None:
            dt = dt.masked_fill(~valid[..., None], 0.0)  # dt = 0: the state passes padding unchanged
        A = -torch.exp(self.A_log[0].float())  # (I, N), negative: a decay
        return SSMInputs(xc, dt, A, B, C, self.D[0].float(), z), conv_state

    def ssm(self, xs: Tensor, z: Tensor, ctx: StepContext) -> Tensor:
        """Conv, input-dependent (dt, B, C), selective scan, gate. (B, S, I) -> (B, S, I)."""
        cache, layer = ctx.cache, self.layer
        s = xs.shape[1]
        conv_state = None if cache is None else cache.conv_states[layer]
        h0 = None if cache is None else cache.ssm_states[layer]
        conv_impl = choose_conv(
            ctx.impl,
            device=xs.device,
            length=s,
            has_state=conv_state is not None,
            padded=ctx.valid is not None,
        )
        inp, conv_state = self.ssm_inputs(xs, z, valid=ctx.valid, conv_state=conv_state, conv_impl=conv_impl)
        needs_grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (inp.xc, inp.dt, inp.A, inp.B, inp.C, inp.D, inp.z, h0)
        )
        scan_impl = choose_scan(
            ctx.impl, device=xs.device, length=s, has_state=h0 is not None, needs_grad=needs_grad
        )
        y, h = selective_scan(inp.xc, inp.dt, inp.A, inp.B, inp.C, inp.D, inp.z, h0, impl=scan_impl)
        if cache is not None:  # states are kept in the model dtype
            cache.set_ssm_states(layer, conv_state, h, xs.dtype)
        return y

    def forward(
        self, u: Tensor, ctx: StepContext, shared_kv: KVEntries | None = None
    ) -> tuple[Tensor, KVEntries, Tensor | None]:
        parts = self.in_proj(u).split(self.split_sizes, dim=-1)
        if self.owns_kv:
            q, k, v, xs, z = parts
        else:
            (q, xs, z), k, v = parts, None, None
        a, kv, probs = self.attend(q, k, v, ctx, shared_kv)
        y = self.ssm(xs, z, ctx)
        fused = (self.pre_avg_layernorm1(a) + self.pre_avg_layernorm2(y)) / 2  # (B, S, I)
        return self.out_proj(fused), kv, probs  # (B, S, D)


class GatedMLP(nn.Module):
    """down(silu(gate(x)) * up(x)); with ``relu2``: down(relu(up(x))**2) and no gate."""

    def __init__(self, config: HymbaConfig) -> None:
        super().__init__()
        d, f = config.hidden_size, config.intermediate_size
        self.act = config.mlp_act
        if self.act == "silu":
            self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, S, D) -> (B, S, D)
        if self.act == "silu":
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(torch.relu(self.up_proj(x)).square())


class SingleExpertMoE(nn.Module):
    """The hub's MoE container with one expert and no router: only here for the ``moe.experts.0`` keys."""

    def __init__(self, config: HymbaConfig) -> None:
        super().__init__()
        self.experts = nn.ModuleList([GatedMLP(config)])

    def forward(self, x: Tensor) -> Tensor:
        return self.experts[0](x)


class HymbaDecoderLayer(nn.Module):
    """Pre-norm residual block: hybrid mixer, then MLP."""

    def __init__(self, config: HymbaConfig, layer: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mamba = HybridMixer(config, layer)  # hub name for the hybrid mixer
        if config.intermediate_size > 0:
            self.pre_moe_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
            self.moe = SingleExpertMoE(config)

    def forward(
        self, x: Tensor, ctx: StepContext, shared_kv: KVEntries | None = None
    ) -> tuple[Tensor, KVEntries, Tensor | None]:
        mixed, kv, probs = self.mamba(self.input_layernorm(x), ctx, shared_kv)
        x = x + mixed
        if hasattr(self, "moe"):
            x = x + self.moe(self.pre_moe_layernorm(x))
        return x, kv, probs
