"""Answer checks for the notebooks' exercises.

An exercise cell ends with a call such as ``check_meta_token_reach(answer)``. The check prints whether the
answer is right and returns True or False; when it is wrong it prints a hint that points at the idea without
giving the answer away. Checks are pure functions of their arguments: no files, no state, no randomness, so
a notebook cell that calls one prints the same thing on every run.

Adding a check (for any notebook): write ``check_<name>(answer, ...) -> bool`` with a docstring that states
the question, compute the expected answer from the arguments, return ``_unanswered()`` when ``answer`` is
None (the placeholder an exercise cell starts with), else ``_report(answer == expected, right, hint)``,
and add a right-answer and a wrong-answer test to ``tests/test_exercises.py``.

Sizes use the glossary letters of :mod:`minihymba.config` (D, I, N, R, H, Hkv, Dk, Dv, K, ...).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .config import HymbaConfig

__all__ = [
    "check_meta_token_reach",
    "check_layer_parameters",
    "check_own_kv_rows",
    "check_decay_steps",
    "check_conv_state_reads",
    "check_chance_levels",
    "check_weakest_link",
    "check_visible_keys",
    "check_top_p_kept",
]


def _report(ok: bool, right: str, hint: str) -> bool:
    """Print the verdict -- ``right`` when ``ok``, else ``hint`` -- and return ``ok``."""
    print(f"Right! {right}" if ok else f"Not yet. Hint: {hint}")
    return ok


def _unanswered() -> bool:
    print("No answer yet: replace None with your answer and run the cell again.")
    return False


def _config(config: HymbaConfig | dict[str, Any] | None) -> HymbaConfig:
    """A HymbaConfig from a HymbaConfig, a hub ``config.json`` dict, or None (the real Hymba-1.5B)."""
    if config is None:
        return HymbaConfig()
    return config if isinstance(config, HymbaConfig) else HymbaConfig.from_hf_config(config)


def check_meta_token_reach(answer: Iterable[int] | None, num_layers: int = 6) -> bool:
    """Which hidden states change at the *text* positions when the meta tokens are removed?

    ``answer``: the indices i of ``hidden_states.{i}`` (0 = the embeddings entering layer 0, ..., i =
    ``num_layers`` = the output of the final norm) whose text-position rows change.
    """
    if answer is None:
        return _unanswered()
    picked = {int(i) for i in answer}
    expected = set(range(1, num_layers + 1))
    if not picked <= set(range(num_layers + 1)):
        return _report(False, "", f"the hidden states are numbered 0..{num_layers}.")
    if 0 in picked:
        hint = (
            "hidden_states.0 holds the embeddings that enter layer 0. Does looking up a token's embedding "
            "read any other position?"
        )
        return _report(False, "", hint)
    if picked != expected:
        hint = (
            "follow one text token through layer 0: which of its two branches read earlier positions -- the "
            "attention keys? the convolution and the scan's state? And once a layer's output has changed, "
            "what do the layers after it receive?"
        )
        return _report(False, "", hint)
    right = (
        "The embeddings do not see the meta tokens, but every layer does: the attention of every "
        "layer keeps the meta keys visible, and the SSM state and conv window start from the meta tokens."
    )
    return _report(True, right, "")


def _layer_parameters(cfg: HymbaConfig, layer: int) -> int:
    """Parameters of one decoder layer, counted tensor by tensor from the sizes."""
    d, inner, n, r = cfg.hidden_size, cfg.d_inner, cfg.ssm_state_size, cfg.dt_rank
    rows = sum(cfg.in_proj_sizes(layer))
    bias = rows + d if cfg.proj_bias else 0  # in_proj and out_proj biases (none in the 1.5B)
    mixer = (
        rows * d  # in_proj
        + inner * cfg.conv_kernel
        + (inner if cfg.conv_bias else 0)  # conv1d
        + (r + 2 * n) * inner  # x_proj
        + r * inner
        + inner  # dt_proj weight and bias
        + inner * n
        + inner  # A_log, D
        + ((r + 2 * n) if cfg.inner_layernorms else 0)  # dt, B, C RMSNorms
        + 2 * inner  # the two pre-average RMSNorms (beta1, beta2)
        + inner * d  # out_proj
        + bias
    )
    n_mlp = 3 if cfg.mlp_act == "silu" else 2
    mlp = n_mlp * d * cfg.intermediate_size + d if cfg.intermediate_size else 0  # + pre_moe_layernorm
    return mixer + mlp + d  # + input_layernorm


def check_layer_parameters(
    answer: int | None, layer: int = 1, config: HymbaConfig | dict[str, Any] | None = None
) -> bool:
    """How many parameters does decoder layer ``layer`` hold (default: layer 1 of the real Hymba-1.5B)?"""
    if answer is None:
        return _unanswered()
    cfg = _config(config)
    expected = _layer_parameters(cfg, layer)
    role = "a KV consumer" if not cfg.owns_kv(layer) else "a layer that computes its own k and v"
    if answer == expected:
        return _report(True, f"{expected:,} parameters in layer {layer} ({role}).", "")
    if abs(answer - expected) <= 2 * cfg.d_inner + 2 * cfg.hidden_size + cfg.dt_rank + 2 * cfg.ssm_state_size:
        hint = (
            "close: you are off by about the size of a few vectors. Did you count every RMSNorm gain "
            "(input, pre-MLP, the two pre-average ones, dt, B, C), the conv bias, the dt bias, D?"
        )
        return _report(False, "", hint)
    hint = (
        f"layer {layer} is {role}. List its checkpoint tensors: in_proj (one row block per q, k, v, x, z "
        "it produces), conv1d weight and bias, x_proj, dt_proj weight and bias, A_log, D, the dt/B/C norms, "
        "the two pre-average norms, out_proj, the MLP's gate/up/down, and the two layer norms -- then "
        "multiply out each shape."
    )
    return _report(False, "", hint)


def check_own_kv_rows(answer: int | None, config: HymbaConfig | dict[str, Any] | None, layer: int) -> bool:
    """``layer`` is a KV consumer. Made its own producer, how many rows would its ``in_proj.weight`` have?

    ``config``: a HymbaConfig, a hub ``config.json`` dict, or None for the real Hymba-1.5B.
    """
    if answer is None:
        return _unanswered()
    cfg = _config(config)
    if cfg.owns_kv(layer):
        raise ValueError(f"layer {layer} already computes its own keys and values: pick a KV consumer")
    now = sum(cfg.in_proj_sizes(layer))
    k_rows = cfg.num_kv_heads * cfg.head_dim
    expected = now + k_rows + cfg.num_kv_heads * cfg.v_head_dim
    if answer == expected:
        right = (
            f"{now} + {expected - now} = {expected} rows: the same tensor name, with k and v row blocks "
            "inserted after q. No other tensor changes shape."
        )
        return _report(True, right, "")
    if answer == now:
        return _report(False, "", "that is what the consumer has today. Which row blocks does it lack?")
    if answer == now + 2 * k_rows:
        return _report(False, "", "keys and values do not have the same head width in Hymba.")
    if answer in (now + k_rows + cfg.num_heads * cfg.v_head_dim, now + cfg.num_heads * cfg.head_dim * 2):
        return _report(False, "", "how many heads do keys and values have, compared with queries (GQA)?")
    hint = (
        "a producer's in_proj rows are (q, k, v, x, z), a consumer's (q, x, z). How many KV heads are there, "
        "and how wide is one key head, one value head?"
    )
    return _report(False, "", hint)


# --- notebooks 02, 04, 06 ---


def check_decay_steps(answer: int | None, dt: float, a: float, fraction: float = 0.01) -> bool:
    """With step size ``dt`` on every token and decay rate ``a`` < 0 (nothing new written), after how many
    tokens k has the state first fallen below ``fraction`` of its value (``exp(k * dt * a) < fraction``)?"""
    if answer is None:
        return _unanswered()
    if dt <= 0 or a >= 0 or not 0 < fraction < 1:
        raise ValueError("need dt > 0, a < 0 and 0 < fraction < 1")
    kept, expected = 1.0, 0
    while kept >= fraction:  # the recurrence itself: one factor exp(dt * a) per token
        kept, expected = kept * math.exp(dt * a), expected + 1
    if answer == expected:
        return _report(
            True, f"{expected} tokens: each one keeps exp(dt * A) = {math.exp(dt * a):.3f} of the state.", ""
        )
    hint = (
        "one token multiplies the state by exp(dt * A). After k tokens it is exp(k * dt * A); find the "
        "smallest whole k that brings this below the fraction (a logarithm, then round up)."
    )
    return _report(False, "", hint)


def check_conv_state_reads(answer: int | None, conv_kernel: int = 4) -> bool:
    """The conv state stores the last K inputs. How many of them does the output of the next token read?"""
    if answer is None:
        return _unanswered()
    expected = conv_kernel - 1
    if answer == expected:
        right = f"{expected}: the kernel spans K = {conv_kernel} inputs and the new token is one of them."
        return _report(True, right, "")
    if answer == conv_kernel:
        return _report(False, "", "the kernel spans K inputs in all. Is the new token one of them?")
    return _report(False, "", "write out y_t = sum_j w[j] * x_(t-K+1+j): which inputs before t appear?")


def check_chance_levels(answer: tuple[float, float] | None, vocab_size: int = 32, num_pairs: int = 4) -> bool:
    """Two baselines for MQAR recall, as ``(uniform, stored)``: the accuracy of guessing uniformly among all
    value tokens of the vocabulary, and of guessing among the ``num_pairs`` stored values (one slot each).

    The vocabulary layout is :mod:`minihymba.tasks`'s: 4 special tokens, then keys, then values."""
    if answer is None:
        return _unanswered()
    num_keys = (vocab_size - 4) // 2
    uniform, stored = 1 / (vocab_size - 4 - num_keys), 1 / num_pairs
    got = tuple(float(x) for x in answer)
    if (
        len(got) == 2
        and math.isclose(got[0], uniform, abs_tol=5e-3)
        and math.isclose(got[1], stored, abs_tol=5e-3)
    ):
        right = (
            f"1/{vocab_size - 4 - num_keys} = {uniform:.3f} for a guess among all values, "
            f"1/{num_pairs} = {stored:.2f} for a guess among the stored ones."
        )
        return _report(True, right, "")
    return _report(
        False,
        "",
        "how many value tokens does the vocabulary have (tasks.vocab_ranges), and how many values does one "
        "sequence store?",
    )


def check_weakest_link(answer: str | None, accuracies: dict[str, float]) -> bool:
    """Given the measured accuracy after each knockout (name -> accuracy), which knockout hurts the most?"""
    if answer is None:
        return _unanswered()
    if not accuracies:
        raise ValueError("give at least one measured accuracy")
    expected = min(accuracies, key=accuracies.__getitem__)
    if answer == expected:
        return _report(
            True, f"{expected}: accuracy {accuracies[expected]:.3f}, the lowest of the knockouts.", ""
        )
    if answer not in accuracies:
        return _report(False, "", f"answer with one of the knockout names: {sorted(accuracies)}.")
    return _report(
        False, "", "run each knockout and compare the accuracies: the one that hurts most is lowest."
    )


def check_visible_keys(answer: tuple[int, int] | None, window: int, n_meta: int) -> bool:
    """A query deep inside a long sequence, in a sliding-window layer of window ``window`` with ``n_meta``
    meta tokens: how many keys does it see ``(in the full forward pass, in NVIDIA's cached decode step)``?"""
    if answer is None:
        return _unanswered()
    expected = (n_meta + window + 1, n_meta + window)
    got = tuple(int(x) for x in answer)
    if got == expected:
        right = (
            f"{expected[0]} and {expected[1]}: the meta tokens, plus itself and the W = {window} before it "
            f"in the full pass; the hub's decode keeps only W - 1 cached tokens before the new one."
        )
        return _report(True, right, "")
    if len(got) == 2 and got[0] == expected[0]:
        return _report(
            False, "", "the full pass is right. How many cached tokens does the hub keep before appending?"
        )
    return _report(
        False, "", "the rule is q - k <= W, or k a meta token: count itself, the W before it, the meta."
    )


def check_top_p_kept(answer: int | None, probs: Iterable[float], top_p: float) -> bool:
    """How many tokens does top-p (nucleus) filtering keep: the smallest set of most likely tokens whose
    probability sums to at least ``top_p`` (the most likely token is always kept)?"""
    if answer is None:
        return _unanswered()
    ranked = sorted((float(x) for x in probs), reverse=True)
    expected, total = 0, 0.0
    for p in ranked:
        if expected and total >= top_p:
            break
        expected, total = expected + 1, total + p
    if answer == expected:
        return _report(True, f"{expected} tokens, holding {total:.3f} of the probability.", "")
    hint = (
        "sort the probabilities, add them from the largest down, and stop as soon as the sum reaches top_p."
    )
    return _report(False, "", hint)
