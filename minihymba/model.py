"""The whole Hymba language model: meta tokens, a stack of hybrid layers, a tied LM head.

    x = [memory_tokens ; embed(ids)]                     M learnable meta tokens prepended (B, S, D)
    positions = 0 .. S-1                                 meta tokens take 0..M-1, text starts at M
    for each layer: x = layer(x)                         hybrid heads + MLP, KV shared inside groups
    logits = RMSNorm(x)[:, M:] @ embed.T                 meta positions dropped, head tied to embeddings

Padding (``attention_mask`` with zeros) is handled exactly: padded columns get no position, are never
attended to, are skipped by the convolution and leave the SSM state untouched, so each row of a padded
batch gives what it gives alone. With a :class:`~minihymba.cache.HymbaCache` the same forward runs
prefill (meta tokens prepended when the cache is empty) and single- or multi-token decode steps.

Shapes: input_ids (B, T); hidden states (B, S, D) with S = M + T (or just T on a non-empty cache);
logits (B, T, V) float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .cache import HymbaCache, KVEntries
from .config import HymbaConfig
from .hybrid_block import HybridMixer, HymbaDecoderLayer, StepContext
from .impl import Impl
from .inputs import check_inputs
from .norms import RMSNorm

__all__ = ["HymbaOutput", "HymbaModel", "HymbaForCausalLM"]


@dataclass
class HymbaOutput:
    """What :meth:`HymbaForCausalLM.forward` returns."""

    logits: Tensor  # (B, T, V) float32 -- real tokens only (or the last one with ``last_only``)
    hidden_states: tuple[Tensor, ...] | None = None  # n_layers + 1 tensors (B, S, D), meta included
    attentions: tuple[Tensor, ...] | None = None  # per layer (B, H, S, K) attention probabilities
    cache: HymbaCache | None = None


class HymbaModel(nn.Module):
    """Embeddings, meta tokens, decoder layers and the final norm (checkpoint prefix ``model.``)."""

    def __init__(self, config: HymbaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.num_meta_tokens > 0:
            self.memory_tokens = nn.Parameter(torch.empty(config.num_meta_tokens, config.hidden_size))
        self.layers = nn.ModuleList(HymbaDecoderLayer(config, i) for i in range(config.num_layers))
        self.final_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        cache: HymbaCache | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        impl: Impl | None = None,
        hub_compat: bool = False,
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """Returns (final-normed states (B, S, D), hidden states, attentions)."""
        cfg = self.config
        b, t = input_ids.shape
        x = self.embed_tokens(input_ids)  # (B, T, D)
        valid = None if attention_mask is None else attention_mask.bool()  # (B, T)
        prepend_meta = cfg.num_meta_tokens > 0 and (cache is None or cache.is_empty)
        if prepend_meta:
            meta = self.memory_tokens.to(x.dtype)[None].expand(b, -1, -1)  # (B, M, D)
            x = torch.cat([meta, x], dim=1)  # (B, S, D), S = M + T
            if valid is not None:
                valid = torch.cat([valid.new_ones(b, cfg.num_meta_tokens), valid], dim=1)
        s = x.shape[1]
        # Position ids: count real columns only, continuing from where the cache stopped.
        if cache is None or cache.next_position is None:
            start = x.new_zeros(b, dtype=torch.long)  # (B,)
        else:
            start = cache.next_position
        if valid is None:
            positions = start[:, None] + torch.arange(s, device=x.device)  # (B, S)
        else:
            positions = (start[:, None] + valid.long().cumsum(1) - 1).clamp(min=0)
        if valid is not None and bool(valid.all()):
            valid = None  # nothing is padded: skip the padding code paths
        ctx = StepContext.create(
            cfg,
            positions,
            valid,
            cache=cache,
            impl=impl,
            output_attentions=output_attentions,
            hub_compat=hub_compat,
            dtype=x.dtype,
        )

        hidden: list[Tensor] = []
        probs_per_layer: list[Tensor] = []
        produced: dict[int, KVEntries] = {}  # producer layer -> the keys/values its consumers read
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                hidden.append(x)
            x, kv, probs = layer(x, ctx, produced.get(cfg.kv_source(i)))
            if cfg.owns_kv(i):
                produced[i] = kv
            if output_attentions:
                probs_per_layer.append(probs)
        x = self.final_layernorm(x)
        if output_hidden_states:
            hidden.append(x)

        if cache is not None:
            next_position = positions[:, -1] + 1 if valid is None else start + valid.long().sum(1)  # (B,)
            cache.advance(next_position, s, has_tokens=t > 0)
        return (
            x,
            tuple(hidden) if output_hidden_states else None,
            tuple(probs_per_layer) if output_attentions else None,
        )


class HymbaForCausalLM(nn.Module):
    """Hymba with its language-model head; ``state_dict()`` keys are exactly the hub checkpoint's."""

    def __init__(self, config: HymbaConfig) -> None:
        super().__init__()
        self.config = config
        self.model = HymbaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, std: float = 0.02, seed: int | None = None) -> None:
        """Random initialisation (the hub's scheme: N(0, 0.02) matrices, Mamba's A init).

        Known deviation, kept on purpose: the dt bias drawn below (Mamba's log-uniform step sizes) is
        overwritten with zeros when ``modules()`` reaches the mixer's ``dt_proj`` Linear *after* the mixer
        itself, so every channel starts at dt = softplus(0) ~ 0.69. The shipped tiny models were trained
        from this initialisation; changing the order would change the random draws and so their
        reproduction from the documented commands. Training still learns the bias.
        """
        gen = None
        if seed is not None:
            gen = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Embedding)):
                if module.weight.is_meta:
                    continue
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            elif isinstance(module, RMSNorm) and not module.weight.is_meta:
                module.weight.fill_(1.0)
            if isinstance(module, HybridMixer) and hasattr(module, "A_log") and not module.A_log[0].is_meta:
                n = self.config.ssm_state_size
                module.A_log[0].copy_(
                    torch.log(torch.arange(1, n + 1, dtype=torch.float32)).expand_as(module.A_log[0])
                )
                module.D[0].fill_(1.0)
                # dt bias: softplus^-1 of a step size spread log-uniformly in [1e-3, 1e-1] (Mamba's init)
                u = torch.rand(module.dt_proj[0].bias.shape, generator=gen)
                dt = torch.exp(
                    u * (torch.log(torch.tensor(0.1)) - torch.log(torch.tensor(1e-3)))
                    + torch.log(torch.tensor(1e-3))
                )
                module.dt_proj[0].bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        meta = getattr(self.model, "memory_tokens", None)
        if meta is not None and not meta.is_meta:
            meta.copy_(torch.randn(meta.shape, generator=gen))

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    def num_parameters(self) -> int:
        """Unique parameters (the tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int = 1) -> HymbaCache:
        """An empty decoding cache for ``batch_size`` sequences."""
        return HymbaCache(self.config, batch_size)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        cache: HymbaCache | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        last_only: bool = False,
        hub_compat: bool = False,
        impl: Impl | None = None,
    ) -> HymbaOutput:
        """Logits for every real token of ``input_ids`` (B, T).

        ``attention_mask`` (B, T): 1 for tokens, 0 for padding. ``cache``: a :class:`HymbaCache` to read
        and update (prefill when empty, decode otherwise). ``last_only``: logits of the last column only.
        ``output_attentions``: also return (B, H, S, K) attention maps per layer (computed by the eager
        reference attention). ``hub_compat``: decode steps see one key fewer in sliding-window layers, as
        NVIDIA's cached generation does (see :mod:`minihymba.masks`). ``impl``: which implementations run
        (:class:`~minihymba.impl.Impl`; default ``Impl()``, the documented ``"auto"`` policy).
        """
        check_inputs(input_ids, attention_mask, self.config.vocab_size)
        if cache is not None and cache.batch_size != input_ids.shape[0]:
            raise ValueError(
                f"cache was made for batch size {cache.batch_size}, input_ids has {input_ids.shape[0]} rows"
            )
        x, hidden, attentions = self.model(
            input_ids,
            attention_mask,
            cache,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            impl=impl,
            hub_compat=hub_compat,
        )
        x = x[:, -input_ids.shape[1] :]  # drop the meta positions: (B, T, D)
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(x).float()  # (B, T, V)
        return HymbaOutput(logits, hidden, attentions, cache)

    def generate(self, input_ids: Tensor, **kwargs: Any) -> Tensor | tuple[Tensor, Tensor]:
        """Greedy or sampled continuation of ``input_ids`` (B, T) -> (B, T + max_new_tokens).

        Keyword arguments: ``attention_mask`` (left padding), ``max_new_tokens``, ``do_sample``,
        ``temperature``, ``top_k``, ``top_p``, ``eos_token_id``, ``pad_token_id``, ``generator``,
        ``hub_compat`` (NVIDIA's cached-decode window), ``streamer``, ``output_scores``, ``use_meta_cache``,
        ``impl``.
        A thin wrapper: see :func:`minihymba.generation.generate` for their meaning and the semantics.
        """
        from .generation import generate

        return generate(self, input_ids, **kwargs)
