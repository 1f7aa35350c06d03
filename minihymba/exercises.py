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

from collections.abc import Iterable
from typing import Any

from .config import HymbaConfig

__all__ = ["check_meta_token_reach", "check_layer_parameters", "check_own_kv_rows"]


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
