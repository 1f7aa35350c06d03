"""Text generation: prefill the prompt once, then one token per step through the hybrid cache.

    cache  = meta_prefix_cache(model, B)            meta tokens' state: computed once per model, copied
    logits = model(prompt, cache)[:, -1]            prefill: the whole (left-padded) prompt in one call
    repeat max_new_tokens times:
        next   = pick(logits)                       argmax, or a sample after temperature / top-k / top-p
        logits = model(next, cache)[:, -1]          decode: one column; O(1) SSM step, windowed keys

Each decode step costs the same whatever the sequence length in the SSM and sliding-window layers; only
the few global layers read a growing key cache.

Two decoding semantics:

* default -- a decoded token sees exactly what it would see in a full forward over the whole sequence
  (sliding window ``q - k <= W`` in the meta-inclusive index, meta tokens always visible). Cached greedy
  decoding therefore equals a greedy loop that re-runs the full sequence every step.
* ``hub_compat=True`` -- NVIDIA's cached decoding: once the cache holds tokens, a sliding-window layer
  keeps the meta tokens plus only the last W-1 cached keys before appending the new one, so a decoded
  token sees one key fewer than in the full forward. Use it to reproduce the hub model's generations.

Left padding: give ``attention_mask`` with zeros on the left. Each row then generates exactly what it
generates alone. A row stops after it emits ``eos_token_id``; the rest of that row is filled with the pad
id, so the result is always (B, T + max_new_tokens).

Shapes: input_ids, attention_mask (B, T); step logits (B, V); result (B, T + N); scores (B, N, V).
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .cache import HymbaCache
from .config import HymbaConfig
from .impl import Impl
from .inputs import WrongTypeError, check_left_padded, generation_mask

__all__ = [
    "CausalLM",
    "FROM_CONFIG",
    "Streamer",
    "meta_prefix_cache",
    "clear_meta_cache",
    "check_generate_arguments",
    "check_left_padded",
    "left_pad",
    "filter_logits",
    "pick_next_token",
    "generate",
]


class _FromConfig:
    """Sentinel default: take the value from the model's config."""

    def __repr__(self) -> str:
        return "FROM_CONFIG"


FROM_CONFIG = _FromConfig()


@runtime_checkable
class Streamer(Protocol):
    """Receives each step's new token ids (B,) with ``put`` and is told the end with ``end``.

    A plain callable ``fn(ids)`` works as well (it gets only the ``put`` calls).
    """

    def put(self, ids: Tensor) -> None: ...

    def end(self) -> None: ...


class CausalLM(Protocol):
    """What generation needs of a model (:class:`minihymba.model.HymbaForCausalLM` has it).

    ``model(input_ids, attention_mask, cache=..., last_only=..., hub_compat=..., impl=...)`` returns an
    object with ``.logits`` (B, T, V); ``model.model(input_ids, attention_mask, cache, impl=...)`` runs the
    layer stack alone (used to push the meta tokens, which have no input ids, through a cache).
    """

    config: HymbaConfig
    model: nn.Module

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def new_cache(self, batch_size: int = 1) -> HymbaCache: ...

    def parameters(self) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


# model -> (key, cache): the meta tokens' decoding state, computed once per model (see meta_prefix_cache).
_META_MEMO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _meta_memo_key(model: CausalLM, impl: Impl) -> tuple:
    """Changes whenever the meta-prefix state could: any parameter replaced or updated in place."""
    params = tuple((p.data_ptr(), p._version) for p in model.parameters())
    return (model.device, model.dtype, impl, params)


@torch.no_grad()
def meta_prefix_cache(model: CausalLM, batch_size: int = 1, impl: Impl | None = None) -> HymbaCache:
    """A fresh cache that already holds the meta tokens' keys/values, conv and SSM states.

    The meta tokens are the same for every input, so their state is computed once (batch 1) and memoised
    per model; the memo is keyed on device, dtype, implementations and every parameter's storage and
    version counter, so loading weights, ``.to()`` or an optimizer step recomputes it. Each call returns an
    independent copy repeated to ``batch_size`` rows. The cache does not count as holding tokens
    (``has_tokens`` is False): the next call is the prompt's prefill.
    """
    impl = Impl() if impl is None else impl
    key = _meta_memo_key(model, impl)
    memo = _META_MEMO.get(model)
    if memo is None or memo[0] != key:
        cache = model.new_cache(1)
        if model.config.num_meta_tokens > 0:
            no_tokens = torch.zeros(1, 0, dtype=torch.long, device=model.device)  # (1, 0)
            model.model(no_tokens, None, cache, impl=impl)
        memo = (key, cache)
        _META_MEMO[model] = memo
    return memo[1].repeat_rows(batch_size)


def clear_meta_cache(model: CausalLM) -> None:
    """Forget ``model``'s memoised meta-prefix state (it is also recomputed automatically when stale)."""
    _META_MEMO.pop(model, None)


def left_pad(
    rows: Sequence[Sequence[int] | Tensor], pad_id: int = 0, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """Stack token rows of different lengths, padded on the left: ``(input_ids, attention_mask)``, (B, T).

    The layout :func:`generate` and the forward pass expect for a batch of prompts of different lengths.
    """
    if not rows or min(len(row) for row in rows) == 0:
        raise ValueError("left_pad needs at least one row and no empty rows")
    t = max(len(row) for row in rows)
    ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, t - len(row) :] = torch.as_tensor(row, dtype=torch.long)
        mask[i, t - len(row) :] = 1
    return ids.to(device), mask.to(device)


def filter_logits(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Scale by 1/temperature, then set everything outside the top-k / the top-p nucleus to -inf.

    The nucleus is the smallest set of most likely tokens whose probability sums to at least ``top_p``
    (the most likely token is always kept). (B, V) -> (B, V) float32.
    """
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(-1)
        mass_before = probs.cumsum(-1) - probs  # probability of the tokens ranked above each one
        drop_sorted = mass_before >= top_p  # rank 0 has mass_before 0 < top_p: always kept
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def pick_next_token(
    logits: Tensor,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The next token of every row: argmax, or a sample from the filtered distribution. (B, V) -> (B,)."""
    if not do_sample:
        return logits.argmax(-1)
    probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_generate_arguments(
    max_new_tokens: int, do_sample: bool, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    """Raise TypeError (a :class:`~minihymba.inputs.WrongTypeError`, also a ValueError) for an argument
    of the wrong type and ValueError for one out of range, naming the argument."""
    if not _is_int(max_new_tokens):
        raise WrongTypeError(
            f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r} "
            f"({type(max_new_tokens).__name__})"
        )
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if not isinstance(do_sample, bool):
        raise WrongTypeError(
            f"do_sample must be True or False, got {do_sample!r} ({type(do_sample).__name__})"
        )
    if not _is_real(temperature):
        raise WrongTypeError(
            f"temperature must be a number, got {temperature!r} ({type(temperature).__name__})"
        )
    if not math.isfinite(temperature):
        raise ValueError(f"temperature must be finite, got {temperature!r}")
    if do_sample and not temperature > 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature!r} (use do_sample=False)")
    if top_k is not None and not _is_int(top_k):
        raise WrongTypeError(f"top_k must be an integer >= 1 or None, got {top_k!r} ({type(top_k).__name__})")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1 or None, got {top_k!r}")
    if top_p is not None and not _is_real(top_p):
        raise WrongTypeError(
            f"top_p must be a number in (0, 1] or None, got {top_p!r} ({type(top_p).__name__})"
        )
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def _check_token_id(name: str, value: object, vocab_size: int | None) -> None:
    """TypeError unless ``value`` is a Python int; ValueError if negative or (given ``vocab_size``) not in
    the vocabulary."""
    if not _is_int(value):
        raise WrongTypeError(
            f"{name} must be a token id (a Python int) or None, got {value!r} ({type(value).__name__})"
        )
    assert isinstance(value, int)
    if value < 0 or (vocab_size is not None and value >= vocab_size):
        vocab = f"[0, {vocab_size})" if vocab_size is not None else "(ids are >= 0)"
        raise ValueError(f"{name} {value} is outside the vocabulary {vocab}")


def _eos_ids(eos_token_id: object, vocab_size: int, device: torch.device) -> Tensor | None:
    """The stop ids as a tensor (None: never stop); TypeError/ValueError naming ``eos_token_id``."""
    if eos_token_id is None:
        return None
    if isinstance(eos_token_id, (list, tuple)):
        ids = list(eos_token_id)
    elif _is_int(eos_token_id):
        ids = [eos_token_id]
    else:
        raise WrongTypeError(
            "eos_token_id must be a token id (a Python int), a list or tuple of them, or None, got "
            f"{eos_token_id!r} ({type(eos_token_id).__name__})"
        )
    for value in ids:
        _check_token_id("eos_token_id", value, None)
    if ids and all(value >= vocab_size for value in ids):
        raise ValueError(
            f"eos_token_id {eos_token_id!r} lies outside the vocabulary [0, {vocab_size}): no row could ever "
            "stop; pass an id of the vocabulary, or None for no stopping"
        )
    return torch.tensor(ids, dtype=torch.long, device=device) if ids else None


def _emit(streamer: Streamer | Callable[[Tensor], object] | None, ids: Tensor) -> None:
    if streamer is None:
        return
    if isinstance(streamer, Streamer):
        streamer.put(ids)
    else:
        streamer(ids)


@torch.no_grad()
def generate(
    model: CausalLM,
    input_ids: Tensor,
    *,
    attention_mask: Tensor | None = None,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | Sequence[int] | None | _FromConfig = FROM_CONFIG,
    pad_token_id: int | None | _FromConfig = FROM_CONFIG,
    generator: torch.Generator | None = None,
    hub_compat: bool = False,
    streamer: Streamer | Callable[[Tensor], object] | None = None,
    output_scores: bool = False,
    use_meta_cache: bool = True,
    impl: Impl | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Continue every row of ``input_ids`` (B, T) by up to ``max_new_tokens`` tokens -> (B, T + N).

    * Greedy by default; ``do_sample=True`` samples after ``temperature``, ``top_k`` and ``top_p``
      (nucleus) filtering, drawing from ``generator`` (a ``torch.Generator`` on the model's device; seed
      it for reproducible samples).
    * ``attention_mask`` (B, T): left padding only (zeros on the left); each row generates what it would
      generate alone.
    * ``eos_token_id`` (an id, several ids, or None for no stopping; default: the config's): a row that
      emits it stops, the rest of the row is filled with ``pad_token_id`` (default: the config's, or 0).
      Generation ends early when every row has stopped; the result keeps the full width.
    * ``hub_compat``: False (default) decodes exactly like the full forward; True reproduces NVIDIA's
      cached decoding (window W-1 during decode) -- see the module docstring.
    * ``streamer``: called with each step's new ids (B,) -- either a callable or an object with
      ``put(ids)`` and ``end()`` (``end`` is called once at the end).
    * ``output_scores``: also return the raw next-token logits of every step, (B, steps, V) float32
      (steps < N when all rows stopped early; rows that had stopped hold logits of pad tokens).
    * ``use_meta_cache``: start from :func:`meta_prefix_cache` (same numbers as running the meta tokens
      with the prompt; set False to recompute them).
    * ``impl``: which implementations run (:class:`~minihymba.impl.Impl`; default: the ``"auto"`` policy).
    """
    check_generate_arguments(max_new_tokens, do_sample, temperature, top_k, top_p)
    cfg = model.config
    if isinstance(eos_token_id, _FromConfig):
        eos_token_id = cfg.eos_token_id
    if isinstance(pad_token_id, _FromConfig):
        pad_token_id = cfg.pad_token_id
    if pad_token_id is not None:
        _check_token_id("pad_token_id", pad_token_id, cfg.vocab_size)
    pad = 0 if pad_token_id is None else pad_token_id
    attention_mask = generation_mask(input_ids, attention_mask, cfg.vocab_size)  # None: nothing padded
    b, t = input_ids.shape
    device = input_ids.device
    eos = _eos_ids(eos_token_id, cfg.vocab_size, device)
    if t > cfg.max_position_embeddings:
        warnings.warn(
            f"the prompt has {t} tokens, more than the model's max_position_embeddings "
            f"({cfg.max_position_embeddings}): positions past it were never trained and the output may be "
            "poor; shorten the prompt",
            stacklevel=2,
        )

    chosen: list[Tensor] = []  # one (B,) tensor per step: the output grows as it is generated
    scores: list[Tensor] = []
    if max_new_tokens > 0:
        cache = meta_prefix_cache(model, b, impl) if use_meta_cache else model.new_cache(b)
        logits = model(
            input_ids, attention_mask, cache=cache, last_only=True, hub_compat=hub_compat, impl=impl
        ).logits
        logits = logits[:, -1]  # (B, V)
        finished = torch.zeros(b, dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            if not bool(torch.isfinite(logits).all()):
                rows = torch.nonzero(~torch.isfinite(logits).all(-1)).flatten().tolist()
                raise FloatingPointError(
                    f"generate: the next-token logits of step {step} (rows {rows}) hold NaN or inf; the "
                    "weights hold non-finite values or the activations overflowed (float16?). Load with "
                    "load_pretrained (it checks the weights) and run in float32 or bfloat16"
                )
            if output_scores:
                scores.append(logits)
            choice = pick_next_token(
                logits,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
            choice = choice.masked_fill(finished, pad)  # (B,)
            chosen.append(choice)
            _emit(streamer, choice)
            if eos is not None:
                finished |= torch.isin(choice, eos)
            if step == max_new_tokens - 1 or bool(finished.all()):
                break
            step_out = model(choice[:, None], cache=cache, last_only=True, hub_compat=hub_compat, impl=impl)
            logits = step_out.logits[:, -1]
    if isinstance(streamer, Streamer):
        streamer.end()
    try:
        rest = torch.full((b, max_new_tokens - len(chosen)), pad, dtype=torch.long, device=device)
        ids = torch.cat([input_ids, *(c[:, None] for c in chosen), rest], dim=1)  # (B, T + N)
    except RuntimeError as err:  # includes torch.OutOfMemoryError
        raise MemoryError(
            f"generate: the result keeps the full width (batch {b}, prompt {t} + max_new_tokens "
            f"{max_new_tokens}) but that does not fit in memory ({len(chosen)} tokens were generated before "
            f"every row stopped): pass a smaller max_new_tokens. {err}"
        ) from err
    if output_scores:
        v = cfg.vocab_size
        stacked = torch.stack(scores, 1) if scores else torch.zeros(b, 0, v, device=device)  # (B, steps, V)
        return ids, stacked
    return ids
