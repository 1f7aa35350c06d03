"""Hidden attention (Ali et al. 2024): the SSM branch as an implicit lower-triangular matrix per channel.

Parity: alpha @ x + D x, gated, equals the layer's own SSM branch output (``HybridMixer.ssm``, reference
scan) within 1e-5 (fp32 scan vs float64 matrix) on the fixture model and a random tiny model, with and
without meta tokens.
"""

from __future__ import annotations

import pytest
import torch

from minihymba import HymbaConfig, HymbaForCausalLM
from minihymba.hidden_attention import (
    hidden_attention,
    hidden_attention_matrix,
    segment_sum,
    ssm_branch_output,
    ssm_inputs,
    ssm_output_from_attention,
)
from minihymba.ssm import selective_scan_ref


def _ids(vocab: int, batch: int = 2, length: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def _random_model(config: HymbaConfig, meta: int) -> HymbaForCausalLM:
    model = HymbaForCausalLM(config.replace(num_meta_tokens=meta))
    model.reset_parameters(std=0.1, seed=1)
    return model.eval()


def _check_reproduces(model: HymbaForCausalLM, ids: torch.Tensor) -> None:
    for layer in range(model.config.num_layers):
        inp = ssm_inputs(model, ids, layer)
        alpha = hidden_attention(model, ids, layer)
        y = ssm_output_from_attention(alpha, inp.xc, inp.D, inp.z)
        expected = ssm_branch_output(model, ids, layer)
        assert expected.abs().max() > 0.1  # a non-trivial branch output
        torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5, msg=f"layer {layer}")


def test_reproduces_ssm_branch_on_fixture(fixture_model):
    ids = _ids(fixture_model.config.vocab_size, length=12)
    _check_reproduces(fixture_model, ids)


@pytest.mark.parametrize("meta", [0, 3])
def test_reproduces_ssm_branch_on_random_model(tiny_config, meta):
    model = _random_model(tiny_config, meta)
    ids = _ids(model.config.vocab_size)
    _check_reproduces(model, ids)
    alpha = hidden_attention(model, ids, 0)
    assert alpha.shape == (2, model.config.d_inner, meta + 10, meta + 10)


def test_lower_triangular_and_averaged_view(fixture_model):
    ids = _ids(fixture_model.config.vocab_size)
    alpha = hidden_attention(fixture_model, ids, 1)  # (B, I, S, S)
    s = fixture_model.config.num_meta_tokens + ids.shape[1]
    assert alpha.shape == (2, fixture_model.config.d_inner, s, s)
    assert torch.equal(torch.triu(alpha, diagonal=1), torch.zeros_like(alpha))  # exact zeros above
    assert torch.diagonal(alpha, dim1=-2, dim2=-1).abs().min() > 0  # the diagonal is C_t . dt_t B_t
    view = hidden_attention(fixture_model, ids, 1, average=True)
    torch.testing.assert_close(view, alpha.mean(dim=1), atol=0, rtol=0)


def test_matrix_matches_scan_on_random_inputs():
    gen = torch.Generator().manual_seed(3)
    bt, s, i, n = 2, 7, 5, 3
    x, z = torch.randn(bt, s, i, generator=gen), torch.randn(bt, s, i, generator=gen)
    dt = torch.rand(bt, s, i, generator=gen) + 0.1
    A = -torch.rand(i, n, generator=gen) - 0.5
    B, C = torch.randn(bt, s, n, generator=gen), torch.randn(bt, s, n, generator=gen)
    D = torch.randn(i, generator=gen)
    y_ref, _ = selective_scan_ref(x, dt, A, B, C, D, z)
    y = ssm_output_from_attention(hidden_attention_matrix(dt, A, B, C), x, D, z)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)


def test_segment_sum():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    seg = segment_sum(a)
    assert seg[3, 0] == 2 + 3 + 4 and seg[2, 1] == 3 and seg[1, 1] == 0
    assert torch.isinf(seg[0, 1]) and seg[0, 1] < 0


def test_bad_layer(fixture_model):
    with pytest.raises(ValueError, match="out of range"):
        hidden_attention(fixture_model, _ids(64), fixture_model.config.num_layers)
