"""The module tree matches the hub checkpoint: keys, shapes, parameter count, KV-sharing layout, tied head.

The real 1.5B model is built on the ``meta`` device (shapes only, no memory).
"""

from __future__ import annotations

import pytest
import torch

from minihymba import HymbaConfig, HymbaForCausalLM

REAL_PARAMS = 1_522_797_824


@pytest.fixture(scope="module")
def real_meta_model() -> HymbaForCausalLM:
    with torch.device("meta"):
        return HymbaForCausalLM(HymbaConfig())


def test_real_state_dict_keys_and_shapes(real_meta_model, real_shapes):
    assert len(real_shapes) == 612
    ours = {k: list(v.shape) for k, v in real_meta_model.state_dict().items()}
    assert set(ours) == set(real_shapes), (
        sorted(set(ours) - set(real_shapes)),
        sorted(set(real_shapes) - set(ours)),
    )
    wrong = {k: (ours[k], real_shapes[k]) for k in ours if ours[k] != real_shapes[k]}
    assert not wrong
    assert all(v.is_meta for v in real_meta_model.state_dict().values())


def test_real_parameter_count(real_meta_model, real_shapes):
    assert real_meta_model.num_parameters() == REAL_PARAMS
    assert sum(p.numel() for p in real_meta_model.parameters()) == REAL_PARAMS
    from minihymba.loading import param_count_from_shapes

    assert param_count_from_shapes(real_shapes) == REAL_PARAMS


def test_in_proj_rows(real_meta_model):
    cfg = real_meta_model.config
    for i, layer in enumerate(real_meta_model.model.layers):
        rows = layer.mamba.in_proj.weight.shape[0]
        assert rows == (8960 if cfg.owns_kv(i) else 8000), f"layer {i}"
        assert rows == sum(cfg.in_proj_sizes(i))


def test_tied_head_is_the_embedding(tiny_model):
    assert tiny_model.config.tie_word_embeddings
    assert tiny_model.lm_head.weight is tiny_model.model.embed_tokens.weight
    assert "lm_head.weight" in tiny_model.state_dict()
    n_unique = sum(p.numel() for p in tiny_model.parameters())
    n_keys = sum(v.numel() for v in tiny_model.state_dict().values())
    assert n_keys - n_unique == tiny_model.lm_head.weight.numel()


def test_untied_head_is_separate(tiny_config):
    model = HymbaForCausalLM(tiny_config.replace(tie_word_embeddings=False))
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    tied = HymbaForCausalLM(tiny_config)
    assert model.num_parameters() == tied.num_parameters() + tiny_config.vocab_size * tiny_config.hidden_size


def test_tiny_config_has_every_layer_kind(tiny_config, tiny_model):
    cfg = tiny_config
    roles = []
    for i in range(cfg.num_layers):
        if cfg.is_global(i):
            roles.append("global")
        elif not cfg.owns_kv(i):
            roles.append("consumer")
        elif any(g[0] == i for g in cfg.kv_share_groups):
            roles.append("producer")
        else:
            roles.append("swa")
    assert roles == ["global", "swa", "producer", "consumer", "producer", "consumer", "consumer", "global"]
    for i, layer in enumerate(tiny_model.model.layers):
        assert layer.mamba.in_proj.weight.shape == (sum(cfg.in_proj_sizes(i)), cfg.hidden_size)


def test_no_mlp_and_relu2_variants(tiny_config):
    no_mlp = HymbaForCausalLM(tiny_config.replace(intermediate_size=0))
    assert not any(".moe." in k for k in no_mlp.state_dict())
    relu2 = HymbaForCausalLM(tiny_config.replace(mlp_act="relu2"))
    assert not any("gate_proj" in k for k in relu2.state_dict())
    ids = torch.randint(0, tiny_config.vocab_size, (1, 5))
    for model in (no_mlp, relu2):
        with torch.no_grad():
            assert torch.isfinite(model(ids).logits).all()


def test_reset_parameters_is_seeded(tiny_config):
    a, b = HymbaForCausalLM(tiny_config), HymbaForCausalLM(tiny_config)
    a.reset_parameters(seed=3)
    b.reset_parameters(seed=3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, atol=0, rtol=0, msg=k)
    A = -torch.exp(a.model.layers[0].mamba.A_log[0])
    assert bool((A < 0).all())


def test_real_forward_shapes_on_meta(real_meta_model):
    """The full 1.5B forward runs shape-only on the meta device: (B, T, V) logits, M + T hidden columns."""
    ids = torch.zeros(2, 8, dtype=torch.long, device="meta")
    out = real_meta_model(ids, output_hidden_states=True)
    assert out.logits.shape == (2, 8, 32001) and out.logits.dtype == torch.float32
    assert len(out.hidden_states) == 33
    assert all(h.shape == (2, 128 + 8, 1600) for h in out.hidden_states)


def test_reset_parameters_leaves_dt_bias_at_zero_as_documented():
    """The documented, deliberate deviation from Mamba's dt init (see HymbaForCausalLM.reset_parameters):
    the shipped tiny models were trained from it, so a change here must be a deliberate one."""
    import minihymba

    model = minihymba.load_tiny()
    model.reset_parameters(seed=0)
    for layer in model.model.layers:
        assert torch.count_nonzero(layer.mamba.dt_proj[0].bias) == 0
        assert torch.equal(layer.mamba.D[0], torch.ones_like(layer.mamba.D[0]))
