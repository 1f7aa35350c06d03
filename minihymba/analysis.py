"""Measurements on attention maps: where the attention goes, per key and against the uniform baseline.

A reading such as "this head is an attention sink" or "this head looks at the previous token" is a claim
about numbers; these functions compute them so that a notebook can assert them. Every score is compared
with what *uniform* attention over the same visible keys would give: a query that may see ``v`` keys gives
each ``1 / v`` under uniform attention, so a key group of ``g`` keys gets ``g / v``.

Inputs are attention probabilities ``probs`` (B, H, S, K) of one layer over a fresh sequence (K = S; meta
tokens at indices 0..M-1, the first real token -- BOS for a text model -- at index M), and the layer's
dense mask ``mask`` (S, S) bool (:func:`minihymba.masks.materialize` of
:func:`minihymba.masks.layer_mask_mod`), which gives the visible-key counts.

* :func:`sink_mass` -- mass on the meta tokens and on the first real token, in total and *per key*
  relative to the uniform share (1.0 = no preference; > 1 = more than uniform);
* :func:`previous_token_score` -- mass on the key right before each query;
* :func:`induction_score` -- on a sequence ``[BOS] + R + R`` (R random tokens), the mass each query of the
  second copy puts on the token *after* the previous occurrence of its own token (the induction pattern);
* :func:`offset_profile` -- mean mass by relative offset q - k (a positional head peaks at one offset);
* :func:`kind_mass` -- at chosen query rows, the mass on each kind of key (e.g. key / value / separator
  tokens of a recall task) next to the share uniform attention would give that kind;
* :func:`layer_sinks` and :func:`head_scores` -- the same statistics for every layer of a model at once
  (a model call with ``output_attentions=True``), as notebooks 01 and 07 use them.

Scores average over the batch and over the real queries that can see the keys in question; each returns a
(H,) tensor (one score per head) together with the same statistic for uniform attention.

Shapes: probs (B, H, S, K); mask (S, K) bool; scores (H,).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .config import HymbaConfig
from .masks import layer_mask_mod, materialize

if TYPE_CHECKING:
    from .model import HymbaForCausalLM

__all__ = [
    "SinkMass",
    "sink_mass",
    "previous_token_score",
    "induction_score",
    "offset_profile",
    "kind_mass",
    "layer_masks",
    "layer_sinks",
    "HeadScores",
    "head_scores",
]


def _check(probs: Tensor, mask: Tensor) -> None:
    if probs.dim() != 4 or mask.shape != probs.shape[-2:]:
        raise ValueError(
            f"probs must be (B, H, S, K) and mask (S, K); got {tuple(probs.shape)} and {tuple(mask.shape)}"
        )


@dataclass
class SinkMass:
    """Attention on the meta tokens and on the first real token, per head (all (H,) tensors).

    ``meta`` / ``first``: mean total mass (0..1); ``meta_per_key`` / ``first_per_key``: that mass per key
    divided by the uniform share per key (1.0 = as much as uniform attention would give; a sink is >> 1);
    ``uniform_meta`` / ``uniform_first``: the mean mass uniform attention would put there. The first-token
    statistics average over the queries that can see it (in a sliding-window layer it leaves the window
    after W positions; the meta tokens never do).
    """

    meta: Tensor
    first: Tensor
    meta_per_key: Tensor
    first_per_key: Tensor
    uniform_meta: Tensor
    uniform_first: Tensor


def sink_mass(probs: Tensor, mask: Tensor, n_meta: int) -> SinkMass:
    """Where each head's attention goes: the meta tokens vs the first real token (queries after it)."""
    _check(probs, mask)
    s = probs.shape[-2]
    queries = torch.arange(n_meta + 1, s)  # real queries after the first real token
    if len(queries) == 0:
        raise ValueError(f"need at least two real tokens after the {n_meta} meta tokens")
    p = probs[:, :, queries].float()  # (B, H, Q, K)
    visible = mask[queries].sum(-1).float()  # (Q,): keys each query may see (meta included)
    heads = probs.shape[1]
    meta = p[..., :n_meta].sum(-1)  # (B, H, Q)
    sees_first = mask[queries, n_meta]  # (Q,)
    first = p[:, :, sees_first, n_meta]  # (B, H, Q') queries that can see the first real token
    if n_meta:
        meta_per_key = (meta / n_meta * visible).mean((0, 2))
    else:
        meta_per_key = torch.zeros(heads)
    return SinkMass(
        meta=meta.mean((0, 2)),
        first=first.mean((0, 2)),
        meta_per_key=meta_per_key,
        first_per_key=(first * visible[sees_first]).mean((0, 2)),
        uniform_meta=(n_meta / visible).mean().expand(heads).clone(),
        uniform_first=(1.0 / visible[sees_first]).mean().expand(heads).clone(),
    )


def previous_token_score(probs: Tensor, mask: Tensor, n_meta: int) -> tuple[Tensor, Tensor]:
    """(score (H,), uniform (H,)): mean mass on key q - 1, over real queries q >= M + 1."""
    _check(probs, mask)
    s = probs.shape[-2]
    queries = torch.arange(n_meta + 1, s)
    score = probs[:, :, queries, queries - 1].float().mean((0, 2))  # (H,)
    uniform = (1.0 / mask[queries].sum(-1).float()).mean()
    return score, uniform.expand_as(score).clone()


def induction_score(probs: Tensor, mask: Tensor, n_meta: int, repeat_len: int) -> tuple[Tensor, Tensor]:
    """(score (H,), uniform (H,)) on ``[M meta] + [BOS] + R + R`` with ``len(R) = repeat_len``.

    The j-th token of the second copy (index ``q = M + 1 + repeat_len + j``) repeats index
    ``M + 1 + j``; the induction target is the key right after it, ``M + 2 + j`` (j = 0 .. repeat_len - 2,
    and only where the mask lets the query see that key).
    """
    _check(probs, mask)
    first_copy = n_meta + 1
    if probs.shape[-2] != first_copy + 2 * repeat_len:
        raise ValueError(
            f"expected S = M + 1 + 2 * repeat_len = {first_copy + 2 * repeat_len}, got {probs.shape[-2]}"
        )
    j = torch.arange(repeat_len - 1)
    queries, targets = first_copy + repeat_len + j, first_copy + 1 + j
    seen = mask[queries, targets]
    if not bool(seen.any()):
        raise ValueError("no induction target is visible to its query (the window is too short)")
    queries, targets = queries[seen], targets[seen]
    score = probs[:, :, queries, targets].float().mean((0, 2))
    uniform = (1.0 / mask[queries].sum(-1).float()).mean()
    return score, uniform.expand_as(score).clone()


def offset_profile(probs: Tensor, mask: Tensor, n_meta: int, max_offset: int) -> tuple[Tensor, Tensor]:
    """(profile (H, max_offset + 1), uniform (max_offset + 1,)): mean mass on the key ``o`` positions back.

    Over real queries that can see offset ``o`` (the key at q - o is a real token and visible). A head
    that always reads a fixed distance back peaks at that offset whatever the content.
    """
    _check(probs, mask)
    s = probs.shape[-2]
    profile = torch.zeros(probs.shape[1], max_offset + 1)
    uniform = torch.zeros(max_offset + 1)
    for o in range(max_offset + 1):
        queries = torch.arange(n_meta + o, s)
        queries = queries[mask[queries, queries - o]]
        if len(queries):
            profile[:, o] = probs[:, :, queries, queries - o].float().mean((0, 2))
            uniform[o] = (1.0 / mask[queries].sum(-1).float()).mean()
    return profile, uniform


def kind_mass(
    probs: Tensor, mask: Tensor, kinds: Sequence[str], queries: Sequence[int]
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """(mass, uniform): per kind of key, the mean mass (H,) the query rows ``queries`` put on keys of that
    kind, and the mean share uniform attention over the visible keys would give them.

    ``kinds`` names every key index (len K), e.g. ``["meta"] * M + ["BOS", "key", "value", ...]``. Averages
    over the batch and the given queries; kinds no given query can see get mass 0 and uniform share 0.
    """
    _check(probs, mask)
    if len(kinds) != probs.shape[-1]:
        raise ValueError(f"kinds names {len(kinds)} keys, probs has {probs.shape[-1]}")
    rows = torch.as_tensor(list(queries), dtype=torch.long)
    p = probs[:, :, rows].float()  # (B, H, Q, K)
    visible = mask[rows].float()  # (Q, K)
    mass, uniform = {}, {}
    for kind in dict.fromkeys(kinds):
        cols = torch.tensor([i for i, k in enumerate(kinds) if k == kind])
        mass[kind] = p[..., cols].sum(-1).mean((0, 2))  # (H,)
        uniform[kind] = float((visible[:, cols].sum(-1) / visible.sum(-1)).mean())
    return mass, uniform


def layer_masks(config: HymbaConfig, seq_len: int) -> list[Tensor]:
    """The dense (S, S) bool mask of every layer for a fresh sequence of ``seq_len`` real tokens (S = M+T)."""
    s = config.num_meta_tokens + seq_len
    return [materialize(layer_mask_mod(config, i), s)[0] for i in range(config.num_layers)]


@torch.no_grad()
def layer_sinks(model: HymbaForCausalLM, input_ids: Tensor) -> list[SinkMass]:
    """:func:`sink_mass` of every layer of ``model`` on ``input_ids`` (B, T), which start with BOS."""
    attentions = model(input_ids, output_attentions=True).attentions
    masks = layer_masks(model.config, input_ids.shape[1])
    n_meta = model.config.num_meta_tokens
    return [sink_mass(p, m, n_meta) for p, m in zip(attentions, masks, strict=True)]


@dataclass
class HeadScores:
    """Per layer and head (all (L, H) tensors): previous-token and induction scores with their uniform
    baselines (what a head spreading its mass evenly over the visible keys would score)."""

    previous: Tensor
    previous_uniform: Tensor
    induction: Tensor
    induction_uniform: Tensor


@torch.no_grad()
def head_scores(
    model: HymbaForCausalLM, text_ids: Tensor, repeat_len: int, num_repeats: int = 32, seed: int = 0
) -> HeadScores:
    """Score every head of ``model``: previous-token on ``text_ids`` (B, T) (real text starting with BOS), and
    induction on ``num_repeats`` sequences ``[BOS] + R + R`` of ``repeat_len`` random non-special tokens.

    Random R cannot be predicted from the language, so mass on the token after R's earlier occurrence is
    copying from context, not knowledge of text.
    """
    cfg, n_meta = model.config, model.config.num_meta_tokens
    prev, prev_u = [], []
    masks = layer_masks(cfg, text_ids.shape[1])
    for p, m in zip(model(text_ids, output_attentions=True).attentions, masks, strict=True):
        score, uniform = previous_token_score(p, m, n_meta)
        prev.append(score)
        prev_u.append(uniform)
    generator = torch.Generator().manual_seed(seed)
    first = 3  # the ids below are special (pad, bos, eos) in minihymba's tokenizers
    r = torch.randint(first, cfg.vocab_size, (num_repeats, repeat_len), generator=generator)
    bos = text_ids[:1, :1].expand(num_repeats, 1)
    repeated = torch.cat([bos, r, r], dim=1)  # (num_repeats, 1 + 2 * repeat_len)
    ind, ind_u = [], []
    masks = layer_masks(cfg, repeated.shape[1])
    for p, m in zip(model(repeated, output_attentions=True).attentions, masks, strict=True):
        score, uniform = induction_score(p, m, n_meta, repeat_len)
        ind.append(score)
        ind_u.append(uniform)
    return HeadScores(torch.stack(prev), torch.stack(prev_u), torch.stack(ind), torch.stack(ind_u))
