"""minihymba.params: the closed-form parameter groups equal the model's own parameters, name by name, and
the attention counterfactuals follow from the sizes."""

from __future__ import annotations

import pytest
import torch

from minihymba import HymbaConfig, HymbaForCausalLM
from minihymba.params import GROUPS, attention_parameters, parameter_groups

TINY = HymbaConfig(
    vocab_size=64,
    hidden_size=32,
    num_layers=5,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=48,
    ssm_state_size=4,
    dt_rank=4,
    num_meta_tokens=3,
    sliding_window=4,
    global_layers=(0, 4),
    kv_share_groups=((1, 2, 3),),
    max_position_embeddings=64,
    orig_max_position_embeddings=16,
)
VARIANTS = {
    "real": HymbaConfig(),
    "tiny": TINY,
    "switches": TINY.replace(
        proj_bias=True,
        conv_bias=False,
        inner_layernorms=False,
        mlp_act="relu2",
        tie_word_embeddings=False,
        num_meta_tokens=0,
    ),
    "no_mlp": TINY.replace(intermediate_size=0),
}


def _by_name(config: HymbaConfig) -> dict[str, int]:
    """The groups counted from the named parameters of a (meta-device) model."""
    with torch.device("meta"):
        model = HymbaForCausalLM(config)
    counts = dict.fromkeys(GROUPS, 0)
    for name, p in model.named_parameters():
        if "embed_tokens" in name or "lm_head" in name:
            counts["embeddings"] += p.numel()
        elif "memory_tokens" in name:
            counts["meta tokens"] += p.numel()
        elif "in_proj" in name:
            layer = int(name.split(".")[2])
            sizes = config.in_proj_sizes(layer)  # (q, k, v, x, z) or (q, x, z)
            per_row = p.numel() // sum(sizes)  # D for the weight, 1 for the bias
            counts["attention q"] += sizes[0] * per_row
            counts["attention k, v"] += sum(sizes[1:-2]) * per_row
            counts["SSM"] += sum(sizes[-2:]) * per_row
        elif "out_proj" in name or "pre_avg" in name:
            counts["out_proj + branch norms"] += p.numel()
        elif ".moe." in name:
            counts["MLP"] += p.numel()
        elif ".mamba." in name:
            counts["SSM"] += p.numel()
        else:
            assert "layernorm" in name, name
            counts["layer norms"] += p.numel()
    assert sum(counts.values()) == model.num_parameters()
    return counts


@pytest.mark.parametrize("name", list(VARIANTS))
def test_groups_match_the_model(name: str) -> None:
    config = VARIANTS[name]
    groups = parameter_groups(config)
    assert tuple(groups) == GROUPS
    assert groups == _by_name(config)


def test_real_numbers() -> None:
    real = HymbaConfig()
    groups = parameter_groups(real)
    assert sum(groups.values()) == 1_522_797_824
    assert (groups["attention q"], groups["attention k, v"]) == (81_920_000, 26_112_000)
    assert attention_parameters(real) == 108_032_000
    assert attention_parameters(real, kv_sharing=False) == 81_920_000 + 32 * 960 * 1600
    assert attention_parameters(real, gqa=False, kv_sharing=False) == 81_920_000 + 32 * 25 * 192 * 1600
    assert attention_parameters(real, output_projection=True) == 108_032_000 + 32 * 3200 * 1600


@pytest.mark.parametrize("name", list(VARIANTS))
def test_attention_is_the_q_kv_groups(name: str) -> None:
    config = VARIANTS[name]
    groups = parameter_groups(config)
    assert attention_parameters(config) == groups["attention q"] + groups["attention k, v"]
    unshared = attention_parameters(config, kv_sharing=False)
    assert unshared == attention_parameters(config.replace(kv_share_groups=()))
    no_gqa = config.replace(num_kv_heads=config.num_heads)
    assert attention_parameters(config, gqa=False) == attention_parameters(no_gqa)
