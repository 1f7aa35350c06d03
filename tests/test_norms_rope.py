"""RMSNorm and RoPE against their formulas (including the hub's bfloat16 rounding order and NTK base)."""

from __future__ import annotations

import math

import pytest
import torch

from minihymba import HymbaConfig
from minihymba.norms import RMSNorm, rms_normalize
from minihymba.rope import apply_rope, rope_base, rope_cos_sin, rope_inv_freq, rotate_half


# ---------------------------------------------------------------------------------------------- RMSNorm
def test_rmsnorm_fp32_formula():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 40) * 3
    norm = RMSNorm(40, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(40) + 0.5)
    expected = norm.weight * x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected, atol=1e-6, rtol=1e-6)
    # the normalised vector has unit root-mean-square
    torch.testing.assert_close(rms_normalize(x, 1e-6).pow(2).mean(-1), torch.ones(3, 5), atol=1e-5, rtol=0)


def test_rmsnorm_eps_is_used():
    x = torch.full((1, 4), 1e-3)
    assert float(rms_normalize(x, 1e-6)[0, 0]) == pytest.approx(1e-3 / math.sqrt(1e-6 + 1e-6), rel=1e-5)


def test_rmsnorm_bf16_rounding_order():
    """Hub order: normalise in fp32, cast to bf16, then multiply by the (bf16) weight in bf16."""
    torch.manual_seed(1)
    x = (torch.randn(64, 256) * 4).bfloat16()
    norm = RMSNorm(256).bfloat16()
    with torch.no_grad():
        norm.weight.copy_(torch.rand(256) * 2)
    x32 = x.float()
    normalised = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    hub = norm.weight * normalised  # a bf16 product
    out = norm(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, hub, atol=0, rtol=0)
    # the other order (multiply in fp32, round once) differs somewhere: the test can tell them apart
    other = (norm.weight.float() * x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).bfloat16()
    assert not torch.equal(out, other)


# ---------------------------------------------------------------------------------------------- RoPE
def test_ntk_base_of_the_real_config():
    base = rope_base(HymbaConfig())
    assert base == 10000 * 7 ** (64 / 62)
    assert base == pytest.approx(74534.83, abs=0.01)
    assert rope_base(HymbaConfig(rope_type="default")) == 10000.0


def test_inv_freq_matches_the_spec_expression():
    cfg = HymbaConfig()
    base = 10000 * (2 * 8192 / 2048 - 1) ** (64 / (64 - 2))
    expected = 1.0 / (base ** (torch.arange(0, 64, 2, dtype=torch.int64).float() / 64))
    inv_freq = rope_inv_freq(cfg)
    assert inv_freq.dtype == torch.float32 and inv_freq.shape == (32,)
    torch.testing.assert_close(inv_freq, expected, atol=0, rtol=0)
    assert float(inv_freq[0]) == 1.0 and float(inv_freq[-1]) == pytest.approx(base ** (-62 / 64), rel=1e-6)


def test_rotate_half():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    torch.testing.assert_close(
        rotate_half(x), torch.tensor([-4.0, -5.0, -6.0, 1.0, 2.0, 3.0]), atol=0, rtol=0
    )
    torch.testing.assert_close(rotate_half(rotate_half(x)), -x, atol=0, rtol=0)


def test_rope_is_a_rotation_by_position():
    cfg = HymbaConfig(
        hidden_size=64, num_heads=4, num_kv_heads=2, global_layers=(0,), kv_share_groups=(), num_layers=2
    )
    inv_freq = rope_inv_freq(cfg)  # Dk = 16
    torch.manual_seed(2)
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)

    def rotated(x, pos):
        cos, sin = rope_cos_sin(inv_freq, torch.tensor([[pos]]), torch.float64)
        return apply_rope(x, cos, sin)

    # position 0 is the identity; norms are preserved; q.k depends only on the distance
    torch.testing.assert_close(rotated(q, 0), q, atol=0, rtol=0)
    torch.testing.assert_close(rotated(q, 37).norm(), q.norm(), atol=1e-6, rtol=0)
    dots = [float((rotated(q, m + 11) * rotated(k, m)).sum()) for m in (0, 5, 300)]
    assert dots == pytest.approx([dots[0]] * 3, abs=1e-4)
    # pair i (dims i and i + Dk/2) turns by angle pos * inv_freq[i]
    pos = 7
    angle = pos * inv_freq.double()
    x = rotated(q, pos)[0, 0, 0]
    a, b = q[0, 0, 0, :8], q[0, 0, 0, 8:]
    torch.testing.assert_close(x[:8], a * angle.cos() - b * angle.sin(), atol=1e-5, rtol=0)
    torch.testing.assert_close(x[8:], b * angle.cos() + a * angle.sin(), atol=1e-5, rtol=0)
