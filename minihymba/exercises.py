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
    "check_attention_without_sharing",
    "check_kv_sources",
    "check_visible_keys",
    "check_visited_tiles",
    "check_kv_head",
    "check_kv_cache_bytes",
    "check_cache_growth_per_token",
    "check_conv_inputs_read",
    "check_decay_steps",
    "check_conv_state_reads",
    "check_chance_levels",
    "check_weakest_link",
    "check_decode_visible_keys",
    "check_top_p_kept",
    "check_per_key_ratio",
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


# --- notebooks 00, 03, 05 ---


def check_attention_without_sharing(
    answer: int | None, config: HymbaConfig | dict[str, Any] | None = None
) -> bool:
    """How many attention parameters (the q, k, v rows of every ``in_proj``) would the model hold if every
    layer computed its own keys and values (no cross-layer KV sharing)? Default: the real Hymba-1.5B."""
    if answer is None:
        return _unanswered()
    from .params import attention_parameters

    cfg = _config(config)
    expected = attention_parameters(cfg, kv_sharing=False)
    shared = attention_parameters(cfg)
    if answer == expected:
        right = (
            f"{expected:,}: sharing saves {expected - shared:,} of them "
            f"({100 * (expected - shared) / expected:.1f}%)."
        )
        return _report(True, right, "")
    if answer == shared:
        return _report(False, "", "that is the count *with* sharing. Which layers lack k, v rows today?")
    if answer == attention_parameters(cfg, kv_sharing=False, gqa=False):
        return _report(False, "", "keys and values have Hkv heads, not H (grouped-query attention).")
    hint = (
        "every layer has q rows (H x Dk of them); without sharing every layer also has k rows (Hkv x Dk) and "
        "v rows (Hkv x Dv). Each row holds D weights."
    )
    return _report(False, "", hint)


def check_kv_sources(
    answer: dict[int, int] | None, config: HymbaConfig | dict[str, Any] | None = None
) -> bool:
    """For every KV consumer layer, the layer whose keys and values it reads: ``{consumer: producer}``."""
    if answer is None:
        return _unanswered()
    cfg = _config(config)
    expected = {i: cfg.kv_source(i) for i in range(cfg.num_layers) if not cfg.owns_kv(i)}
    got = {int(k): int(v) for k, v in dict(answer).items()}
    if got == expected:
        far = {c: p for c, p in expected.items() if p != c - 1}
        note = f" Not always the left neighbour: {far}." if far else ""
        return _report(True, f"{len(expected)} consumers.{note}", "")
    if set(got) != set(expected):
        hint = (
            "the keys must be exactly the consumer layers: those with no k, v rows "
            "(HymbaConfig.owns_kv(i) is False)."
        )
        return _report(False, "", hint)
    hint = (
        "a consumer reads the *first* layer of its group in kv_share_groups, which is not always the layer "
        "just before it."
    )
    return _report(False, "", hint)


def check_visible_keys(answer: int | None, query: int, window: int | None, n_meta: int) -> bool:
    """How many keys does query ``query`` (an index in the meta-inclusive sequence) see in a layer with
    sliding window ``window`` (None: a global layer) and ``n_meta`` meta tokens?"""
    if answer is None:
        return _unanswered()
    keys = range(query + 1)
    expected = sum(window is None or query - k <= window or k < n_meta for k in keys)
    if answer == expected:
        return _report(True, f"{expected} keys.", "")
    if window is not None and answer == expected - 1 and query >= window:
        return _report(False, "", "the window is inclusive: q - k <= W, and the query sees itself too.")
    if window is not None and answer == min(query + 1, window + 1):
        return _report(False, "", "the meta tokens stay visible even when they are outside the window.")
    hint = "count the keys k <= q with q - k <= W, then add the meta keys k < M that are not among them."
    return _report(False, "", hint)


def _tile_visited(q_lo: int, q_hi: int, k_lo: int, k_hi: int, window: int | None, n_meta: int) -> bool:
    """Does any (q, k) with q in [q_lo, q_hi], k in [k_lo, k_hi] (inclusive) pass the Hymba mask?"""
    if k_lo > q_hi:  # every key is in the future of every query
        return False
    if window is None or k_lo < n_meta:
        return True
    nearest = max(q_lo - k_hi, 0)  # the smallest q - k >= 0 the tile holds
    return nearest <= window


def _visited_tiles(window: int | None, n_meta: int, seq_len: int, block_size: int) -> int:
    """How many (block_size x block_size) tiles of a (seq_len x seq_len) Hymba mask hold a visible entry."""
    blocks = -(-seq_len // block_size)
    edges = [(b * block_size, min((b + 1) * block_size, seq_len) - 1) for b in range(blocks)]
    return sum(_tile_visited(*q, *k, window, n_meta) for q in edges for k in edges)


def check_visited_tiles(
    answer: int | None, window: int | None, n_meta: int, seq_len: int, block_size: int = 128
) -> bool:
    """How many of the ``block_size`` x ``block_size`` tiles of the (seq_len x seq_len) mask does
    FlexAttention visit (the tiles with at least one visible entry)? ``seq_len`` counts the meta tokens."""
    if answer is None:
        return _unanswered()
    expected = _visited_tiles(window, n_meta, seq_len, block_size)
    blocks = -(-seq_len // block_size)
    if answer == expected:
        right = f"{expected} of {blocks * blocks} tiles: {1 - expected / blocks**2:.1%} skipped."
        return _report(True, right, "")
    if answer == blocks * blocks - expected:
        return _report(
            False, "", "that is the number of *skipped* tiles; the question asks for visited ones."
        )
    if answer == _visited_tiles(None, n_meta, seq_len, block_size):
        return _report(False, "", "that is a global layer's count. Which tiles does the window empty?")
    if window is not None and answer == _visited_tiles(window, 0, seq_len, block_size):
        return _report(False, "", "the meta tokens' column of tiles is visited by every query tile.")
    hint = (
        "go row of tiles by row: a query tile visits the meta tile(s), the tiles on and just before the "
        "diagonal that the window reaches, and nothing in the future."
    )
    return _report(False, "", hint)


def check_kv_head(
    answer: int | None, query_head: int, config: HymbaConfig | dict[str, Any] | None = None
) -> bool:
    """Which key/value head does query head ``query_head`` read (grouped-query attention)?"""
    if answer is None:
        return _unanswered()
    cfg = _config(config)
    if not 0 <= query_head < cfg.num_heads:
        raise ValueError(f"query_head must be in [0, {cfg.num_heads}), got {query_head}")
    expected = query_head // cfg.num_kv_groups
    if answer == expected:
        return _report(True, f"KV head {expected}: query heads come in groups of {cfg.num_kv_groups}.", "")
    if answer == query_head % cfg.num_kv_heads:
        hint = "the query heads of one KV head are neighbours (h // group size), not interleaved (h % Hkv)."
        return _report(False, "", hint)
    return _report(False, "", "how many query heads share one KV head (H / Hkv)?")


def check_kv_cache_bytes(
    answer: int | None, seq_len: int = 8192, config: HymbaConfig | dict[str, Any] | None = None
) -> bool:
    """Bytes of keys and values (bfloat16; the SSM and conv states not included) the cache holds after the
    meta tokens and ``seq_len`` more tokens, batch 1. Default: the real Hymba-1.5B."""
    if answer is None:
        return _unanswered()
    from .memory import cache_variants

    variants = cache_variants(_config(config), seq_len)
    expected = variants["hymba"].kv_bytes
    if answer == expected:
        return _report(True, f"{expected:,} bytes = {expected / 1e6:.1f} MB.", "")
    if answer == variants["hymba"].total:
        return _report(False, "", "only keys and values: leave out the conv and SSM states.")
    if answer == variants["no_sharing"].kv_bytes:
        return _report(False, "", "a KV consumer stores nothing: it reads its producer's entries.")
    if answer == variants["no_swa"].kv_bytes:
        return _report(False, "", "a sliding-window producer keeps only M + W entries.")
    if answer == expected // 2:
        return _report(False, "", "one number in bfloat16 takes 2 bytes.")
    if answer * 1000 < expected:
        return _report(False, "", "the answer is in bytes, not megabytes.")
    hint = (
        "count the entries first -- global layers M + T, window producers M + W, consumers 0 -- then "
        "multiply by the numbers per entry, Hkv x (Dk + Dv), and by 2 bytes."
    )
    return _report(False, "", hint)


def check_cache_growth_per_token(
    answer: int | None, config: HymbaConfig | dict[str, Any] | None = None
) -> bool:
    """Once the text is longer than the window, by how many bytes (bfloat16, batch 1) does the cache grow
    with each further token? Default: the real Hymba-1.5B."""
    if answer is None:
        return _unanswered()
    cfg = _config(config)
    entry = cfg.num_kv_heads * (cfg.head_dim + cfg.v_head_dim) * 2
    growing = sum(cfg.owns_kv(i) and cfg.window(i) is None for i in range(cfg.num_layers))
    expected = growing * entry
    if answer == expected:
        return _report(True, f"{expected:,} bytes per token: only the global layers still grow.", "")
    owners = sum(cfg.owns_kv(i) for i in range(cfg.num_layers))
    if answer == owners * entry:
        return _report(
            False, "", "past the window a sliding-window producer drops one entry for each it adds."
        )
    if answer == growing * entry + cfg.num_layers * cfg.d_inner * (cfg.conv_kernel + cfg.ssm_state_size) * 2:
        return _report(False, "", "the conv and SSM states do not grow with the length.")
    return _report(False, "", "which layers still add an entry per token, and how many bytes is one entry?")


def check_conv_inputs_read(answer: int | None, config: HymbaConfig | dict[str, Any] | None = None) -> bool:
    """The cache keeps the last K inputs of each layer's convolution. How many of them does the next
    decode step's convolution output read?"""
    if answer is None:
        return _unanswered()
    k = _config(config).conv_kernel
    if answer == k - 1:
        right = (
            f"{k - 1} of the {k}: the new input joins them and the oldest stored one falls out of the K taps."
        )
        return _report(True, right, "")
    if answer == k:
        return _report(False, "", "the conv has K taps, and one of them reads the new token's own input.")
    return _report(False, "", "the K taps read the new input and the inputs just before it.")


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


def check_decode_visible_keys(answer: tuple[int, int] | None, window: int, n_meta: int) -> bool:
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


# --- notebook 01 ---


def check_per_key_ratio(answer: float | None, total_mass: float, group_keys: int, visible_keys: int) -> bool:
    """A head puts ``total_mass`` (0..1) of a query's attention on a group of ``group_keys`` keys, out of
    ``visible_keys`` keys the query may see. What is that mass *per key*, relative to the share uniform
    attention would give one key? (1.0: no preference; above 1: the head prefers the group.)"""
    if answer is None:
        return _unanswered()
    if not (0 <= total_mass <= 1 and 0 < group_keys <= visible_keys):
        raise ValueError("need 0 <= total_mass <= 1 and 0 < group_keys <= visible_keys")
    expected = (total_mass / group_keys) / (1 / visible_keys)
    if abs(float(answer) - expected) <= 0.01 * max(1.0, expected):
        verdict = "more" if expected > 1 else "less"
        right = f"{expected:.2f}: each key of the group gets {verdict} than a uniform head would give it."
        return _report(True, right, "")
    if abs(float(answer) - total_mass * visible_keys) <= 0.01 * max(1.0, total_mass * visible_keys):
        return _report(False, "", "that compares the whole group with one key: split its mass per key.")
    return _report(False, "", "per key: total / group size; uniform: 1 / visible keys; then divide.")
