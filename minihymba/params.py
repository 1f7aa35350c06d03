"""Where a Hymba model's parameters live, counted in closed form from its config.

:func:`parameter_groups` splits the parameters of :class:`~minihymba.model.HymbaForCausalLM` into the parts
a reader asks about. ``in_proj`` is one matrix feeding both branches, so it is split by its row blocks
(:meth:`~minihymba.config.HymbaConfig.in_proj_sizes`): its q rows and its k, v rows count as attention, its
x, z rows as SSM. The groups add up to ``HymbaForCausalLM(config).num_parameters()`` (the tests check this
against the model's named parameters).

:func:`attention_parameters` counts the attention weights alone -- the q, k, v rows of every ``in_proj``
-- and what they would be without each of the three things that keep them small: cross-layer KV sharing
(``kv_sharing=False``: every layer has k, v rows), grouped-query attention (``gqa=False``: H key/value
heads instead of Hkv) and the missing attention output projection (``output_projection=True``: a separate
I -> D matrix per layer, as a plain transformer has; Hymba's attention output goes through the ``out_proj``
it shares with the SSM branch).

Real Hymba-1.5B: 1,522,797,824 parameters; attention q rows 81,920,000 and k, v rows 26,112,000 (17 of 32
layers compute keys and values); without KV sharing the k, v rows would be 49,152,000.

Sizes use the glossary letters of :mod:`minihymba.config`.
"""

from __future__ import annotations

from .config import HymbaConfig

__all__ = ["GROUPS", "parameter_groups", "attention_parameters"]

GROUPS = (
    "embeddings",
    "meta tokens",
    "attention q",
    "attention k, v",
    "SSM",
    "out_proj + branch norms",
    "MLP",
    "layer norms",
)
"""The keys of :func:`parameter_groups`, in order. "embeddings" includes an untied LM head; "SSM" is the
x, z rows of ``in_proj`` plus conv1d, x_proj, dt_proj, A_log, D and the dt/B/C norms; "layer norms" are
every layer's input and pre-MLP norms and the final norm."""


def _rows_params(config: HymbaConfig, rows: int) -> int:
    """Parameters of ``rows`` rows of a D-wide projection (with its bias when the config has one)."""
    return rows * (config.hidden_size + (1 if config.proj_bias else 0))


def parameter_groups(config: HymbaConfig) -> dict[str, int]:
    """Parameters per group (keys: :data:`GROUPS`); the values sum to the model's parameter count."""
    d, inner, n, r = config.hidden_size, config.d_inner, config.ssm_state_size, config.dt_rank
    layers = range(config.num_layers)
    q_rows = config.num_heads * config.head_dim
    kv_rows = config.num_kv_heads * (config.head_dim + config.v_head_dim)
    owners = sum(config.owns_kv(i) for i in layers)
    ssm_per_layer = (
        _rows_params(config, 2 * inner)  # x, z rows of in_proj
        + inner * config.conv_kernel
        + (inner if config.conv_bias else 0)  # conv1d (depthwise)
        + (r + 2 * n) * inner  # x_proj -> dt, B, C
        + r * inner
        + inner  # dt_proj weight, bias
        + inner * n
        + inner  # A_log, D
        + ((r + 2 * n) if config.inner_layernorms else 0)  # dt, B, C RMSNorms
    )
    mlp_mats = 3 if config.mlp_act == "silu" else 2
    has_mlp = config.intermediate_size > 0
    embeddings = config.vocab_size * d * (1 if config.tie_word_embeddings else 2)
    return {
        "embeddings": embeddings,
        "meta tokens": config.num_meta_tokens * d,
        "attention q": config.num_layers * _rows_params(config, q_rows),
        "attention k, v": owners * _rows_params(config, kv_rows),
        "SSM": config.num_layers * ssm_per_layer,
        "out_proj + branch norms": config.num_layers
        * (inner * d + (d if config.proj_bias else 0) + 2 * inner),
        "MLP": config.num_layers * mlp_mats * d * config.intermediate_size,
        "layer norms": config.num_layers * d * (2 if has_mlp else 1) + d,
    }


def attention_parameters(
    config: HymbaConfig, *, kv_sharing: bool = True, gqa: bool = True, output_projection: bool = False
) -> int:
    """Attention weights of the whole model: the q, k, v rows of every layer's ``in_proj``.

    ``kv_sharing=False``: as if every layer computed its own k, v. ``gqa=False``: as if there were H
    key/value heads (one per query head) instead of Hkv. ``output_projection=True``: plus a separate
    attention output projection I -> D in every layer.
    """
    kv_heads = config.num_kv_heads if gqa else config.num_heads
    q_rows = config.num_heads * config.head_dim
    kv_rows = kv_heads * (config.head_dim + config.v_head_dim)
    with_kv = sum(config.owns_kv(i) for i in range(config.num_layers)) if kv_sharing else config.num_layers
    total = config.num_layers * _rows_params(config, q_rows) + with_kv * _rows_params(config, kv_rows)
    if output_projection:
        d = config.hidden_size
        total += config.num_layers * (config.d_inner * d + (d if config.proj_bias else 0))
    return total
