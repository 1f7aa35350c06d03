"""The optional CUDA kernels (mamba-ssm, causal-conv1d): guarded imports, layout adapters, GPU parity.

On a CPU machine the kernels are absent: the tests check that ``import minihymba`` never imports them,
that asking for ``impl="cuda"`` fails with a clear reason, and -- with stand-in kernels that follow the
libraries' documented channels-first layouts -- that the adapters transpose correctly. The ``gpu`` tests
compare the real kernels with the reference (skipped without CUDA and the kernels).
Tolerances: fp32 stand-ins 1e-5; real kernels fp32 atol/rtol 1e-4 (different summation order on GPU).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from minihymba import kernels, scans
from minihymba.impl import Impl, choose_conv, choose_scan
from minihymba.ssm import causal_conv1d, random_scan_inputs, selective_scan_ref

TOL = dict(atol=1e-5, rtol=1e-5)


def _scan_inputs(device="cpu"):
    return random_scan_inputs(2, 9, 6, 4, device=device)


def test_import_minihymba_does_not_import_kernels():
    code = "import sys, minihymba; print(any(m.startswith(('mamba_ssm', 'causal_conv1d', 'selective_scan_cuda', 'minihymba.kernels')) for m in sys.modules))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(kernels.available(), reason="the CUDA kernels are present here")
def test_cuda_scan_unavailable_is_a_clear_error(tiny_model):
    assert not kernels.available()
    assert kernels.unavailable_reason()
    x, dt, A, B, C, *_ = _scan_inputs()
    with pytest.raises(RuntimeError, match="the 'cuda' implementation is unavailable: CUDA is not available"):
        scans.selective_scan(x, dt, A, B, C, impl="cuda")
    with pytest.raises(RuntimeError, match="the 'cuda' implementation is unavailable"):
        tiny_model(torch.tensor([[1, 2, 3]]), impl=Impl(conv="cuda"))


# ------------------------------------------------------------------ stand-in kernels (CPU)
def _fake_selective_scan_fn(u, delta, A, B, C, D=None, z=None, return_last_state=False):
    """mamba-ssm's documented contract: u, delta, z (b, d, l); B, C (b, n, l); out (b, d, l)."""
    assert u.shape[1] == A.shape[0] and B.shape[1] == A.shape[1] and B.shape[-1] == u.shape[-1]
    t = lambda a: None if a is None else a.transpose(1, 2)  # noqa: E731
    y, h = selective_scan_ref(t(u), t(delta), A, t(B), t(C), D, t(z))
    return (t(y), h) if return_last_state else t(y)


def _fake_state_update(state, x, dt, A, B, C, D=None, z=None):
    """selective_state_update: state (b, d, n) updated in place; x, dt, z (b, d); B, C (b, n)."""
    y, h = selective_scan_ref(
        x[:, None], dt[:, None], A, B[:, None], C[:, None], D, None if z is None else z[:, None], state
    )  # noqa: E501
    state.copy_(h)
    return y[:, 0]


def _fake_conv_fn(x, weight, bias=None, activation=None):
    """causal_conv1d_fn: x (b, d, l), weight (d, k) -> (b, d, l)."""
    y, _ = causal_conv1d(x.transpose(1, 2), weight, bias, activation=activation == "silu")
    return y.transpose(1, 2)


def _fake_conv_update(x, conv_state, weight, bias=None, activation=None):
    """causal_conv1d_update: x (b, d), conv_state (b, d, k) shifted in place -> (b, d)."""
    y, new_state = causal_conv1d(x[:, None], weight, bias, conv_state, activation=activation == "silu")
    conv_state.copy_(new_state)
    return y[:, 0]


@pytest.fixture
def stand_in_kernels(monkeypatch):
    fakes = {
        "selective_scan_fn": _fake_selective_scan_fn,
        "selective_state_update": _fake_state_update,
        "causal_conv1d_fn": _fake_conv_fn,
        "causal_conv1d_update": _fake_conv_update,
    }
    monkeypatch.setattr(kernels, "_kernels", fakes)
    monkeypatch.setattr(kernels, "_reason", [])
    monkeypatch.setattr(kernels, "_on_gpu", lambda t: True)
    assert kernels.available() and kernels.conv_available()
    return fakes


def test_adapters_match_reference_with_stand_ins(stand_in_kernels):
    x, dt, A, B, C, D, z, h0 = _scan_inputs()
    prefill = (x, dt, A, B, C, D, z, None)
    decode_step = (x[:, :1], dt[:, :1], A, B[:, :1], C[:, :1], D, z[:, :1], h0)
    for args in (prefill, decode_step):
        y_ref, h_ref = selective_scan_ref(*args)
        y, h = scans.selective_scan(*args, impl="cuda")
        torch.testing.assert_close(y, y_ref, **TOL)
        torch.testing.assert_close(h, h_ref, **TOL)
    with pytest.raises(ValueError, match=r"covers a scan from a zero state or one step"):
        scans.selective_scan(x, dt, A, B, C, D, z, h0, impl="cuda")  # L > 1 from a state: not covered
    weight, bias = torch.randn(6, 4), torch.randn(6)
    conv = scans.conv_function("cuda")
    assert conv is kernels.causal_conv1d_cuda
    with pytest.raises(ValueError, match=r"cover unpadded calls"):
        conv(x, weight, bias, valid=torch.ones(2, 9, dtype=torch.bool))
    y_ref, s_ref = causal_conv1d(x, weight, bias)
    y, s = conv(x, weight, bias)
    torch.testing.assert_close(y, y_ref, **TOL)
    torch.testing.assert_close(s, s_ref, **TOL)
    y_ref, s2_ref = causal_conv1d(x[:, :1], weight, bias, s_ref)
    y, s2 = conv(x[:, :1], weight, bias, s)
    torch.testing.assert_close(y, y_ref, **TOL)
    torch.testing.assert_close(s2, s2_ref, **TOL)
    torch.testing.assert_close(s, s_ref, **TOL)  # the caller's state is not modified in place


def test_model_with_stand_in_kernels(stand_in_kernels, tiny_model):
    """A prefill from an empty cache and a decode step are both covered by the kernels."""
    ids = torch.randint(1, 61, (2, 10), generator=torch.Generator().manual_seed(0))

    def run(impl):
        cache = tiny_model.new_cache(2)
        first = tiny_model(ids[:, :9], cache=cache, impl=impl).logits
        return [first, tiny_model(ids[:, 9:], cache=cache, impl=impl).logits]

    with torch.no_grad():
        ref = run(Impl.reference())
        out = run(Impl(attention="eager", scan="cuda", conv="cuda"))
    for o, r in zip(out, ref, strict=True):
        torch.testing.assert_close(o, r, atol=5e-5, rtol=1e-5)


def test_auto_policy_on_cuda_uses_kernels_where_they_cover_the_call(stand_in_kernels):
    cuda, auto = torch.device("cuda"), Impl()
    assert choose_scan(auto, device=cuda, length=9, has_state=False) == "cuda"  # prefill
    assert choose_scan(auto, device=cuda, length=1, has_state=True) == "cuda"  # decode step
    assert choose_scan(auto, device=cuda, length=9, has_state=True) == "fused"  # prefill after meta cache
    assert choose_conv(auto, device=cuda, length=9, has_state=False, padded=False) == "cuda"
    assert choose_conv(auto, device=cuda, length=9, has_state=False, padded=True) == "ref"
    assert (
        choose_scan(Impl(scan="cuda"), device=cuda, length=9, has_state=True) == "cuda"
    )  # explicit: as asked


# ------------------------------------------------------------------ the real kernels (GPU only)
needs_kernels = pytest.mark.skipif(
    not kernels.available(), reason=kernels.unavailable_reason() or "no kernels"
)


@pytest.mark.gpu
@needs_kernels
@pytest.mark.parametrize("with_state", [False, True])
def test_cuda_scan_matches_reference(with_state):
    x, dt, A, B, C, D, z, h0 = random_scan_inputs(2, 1 if with_state else 64, 32, 16, device="cuda")
    h0 = h0 if with_state else None
    y_ref, h_ref = selective_scan_ref(x, dt, A, B, C, D, z, h0)
    y, h = kernels.selective_scan_cuda(x, dt, A, B, C, D, z, h0)
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(h, h_ref, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
@needs_kernels
def test_cuda_conv_matches_reference():
    if "causal_conv1d_fn" not in kernels._kernels:
        pytest.skip("causal-conv1d is not installed")
    x = torch.randn(2, 33, 64, device="cuda")
    weight, bias = torch.randn(64, 4, device="cuda"), torch.randn(64, device="cuda")
    y_ref, s_ref = causal_conv1d(x, weight, bias)
    y, s = kernels.causal_conv1d_cuda(x, weight, bias)
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s, s_ref, atol=0, rtol=0)
