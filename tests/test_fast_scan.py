"""The fast selective scans (fused loop, materialised baseline, Blelloch) against the reference loop.

Tolerances: all scans compute in float32; only the summation order differs, so outputs agree to
atol 1e-5 / rtol 1e-5 at these sizes (values of order 1).
"""

from __future__ import annotations

import pytest
import torch

from minihymba.impl import Impl
from minihymba.scan_fast import selective_scan_blelloch, selective_scan_fused, selective_scan_materialized
from minihymba.scans import SCAN_NAMES, selective_scan
from minihymba.ssm import selective_scan_ref

FAST_SCANS = [selective_scan_fused, selective_scan_materialized, selective_scan_blelloch]
TOL = dict(atol=1e-5, rtol=1e-5)


def _inputs(bt: int = 2, length: int = 13, width: int = 6, n: int = 4, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(bt, length, width, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(bt, length, width, generator=g))
    A = -torch.rand(width, n, generator=g) * 2 - 0.1
    B = torch.randn(bt, length, n, generator=g)
    C = torch.randn(bt, length, n, generator=g)
    D = torch.randn(width, generator=g)
    z = torch.randn(bt, length, width, generator=g)
    h0 = torch.randn(bt, width, n, generator=g)
    return [t.to(dtype) if t.is_floating_point() and t is not A else t for t in (x, dt, A, B, C, D, z, h0)]


@pytest.mark.parametrize("scan", FAST_SCANS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("length", [1, 2, 7, 8, 13, 33])  # odd, even, power of two, not
def test_matches_reference(scan, length):
    x, dt, A, B, C, D, z, h0 = _inputs(length=length)
    y_ref, h_ref, s_ref = selective_scan_ref(x, dt, A, B, C, D, z, h0, return_all_states=True)
    y, h, states = scan(x, dt, A, B, C, D, z, h0, return_all_states=True)
    torch.testing.assert_close(y, y_ref, **TOL)
    torch.testing.assert_close(h, h_ref, **TOL)
    torch.testing.assert_close(states, s_ref, **TOL)


def test_time_major_materialized_matches_reference():
    x, dt, A, B, C, D, z, h0 = _inputs(length=9, seed=8)
    expected = selective_scan_ref(x, dt, A, B, C, D, z, h0, return_all_states=True)
    got = selective_scan_materialized(x, dt, A, B, C, D, z, h0, return_all_states=True, time_major=True)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, **TOL)


@pytest.mark.parametrize("scan", FAST_SCANS, ids=lambda f: f.__name__)
def test_optional_arguments_default_like_reference(scan):
    x, dt, A, B, C, *_ = _inputs(seed=1)
    y_ref, h_ref = selective_scan_ref(x, dt, A, B, C)
    y, h = scan(x, dt, A, B, C)
    torch.testing.assert_close(y, y_ref, **TOL)
    torch.testing.assert_close(h, h_ref, **TOL)
    assert h.dtype == torch.float32


@pytest.mark.parametrize("scan", FAST_SCANS, ids=lambda f: f.__name__)
def test_bf16_inputs_scan_in_float32(scan):
    x, dt, A, B, C, D, z, h0 = _inputs(seed=2)
    args = [x.bfloat16(), dt, A, B.bfloat16(), C.bfloat16(), D, z.bfloat16(), h0]
    y_ref, h_ref = selective_scan_ref(*args)
    y, h = scan(*args)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32
    torch.testing.assert_close(y.float(), y_ref.float(), atol=1e-2, rtol=1e-2)  # one bf16 rounding of y
    torch.testing.assert_close(h, h_ref, **TOL)


@pytest.mark.parametrize("scan", FAST_SCANS, ids=lambda f: f.__name__)
def test_split_sequence_equals_whole(scan):
    """Scanning L in two chunks, handing h over, equals one pass (what prefill then decode relies on)."""
    x, dt, A, B, C, D, z, _ = _inputs(length=10, seed=3)
    y_all, h_all = scan(x, dt, A, B, C, D, z)
    y1, h1 = scan(x[:, :6], dt[:, :6], A, B[:, :6], C[:, :6], D, z[:, :6])
    y2, h2 = scan(x[:, 6:], dt[:, 6:], A, B[:, 6:], C[:, 6:], D, z[:, 6:], h1)
    torch.testing.assert_close(torch.cat([y1, y2], dim=1), y_all, **TOL)
    torch.testing.assert_close(h2, h_all, **TOL)


def test_fused_does_not_modify_inputs():
    args = _inputs(seed=4)
    before = [t.clone() for t in args]
    selective_scan_fused(*args)
    for a, b in zip(args, before, strict=True):
        assert torch.equal(a, b)


def test_zero_dt_leaves_state_untouched():
    """Padding contract: dt = 0 and x = 0 at a step keep h exactly (exp(0) = 1, drive 0)."""
    x, dt, A, B, C, D, z, h0 = _inputs(length=5, seed=5)
    x[:, 2], dt[:, 2] = 0.0, 0.0
    for scan in FAST_SCANS:
        _, _, states = scan(x, dt, A, B, C, D, z, h0, return_all_states=True)
        torch.testing.assert_close(states[:, 2], states[:, 1], atol=0, rtol=0)


def test_registry_and_dispatch():
    assert {"ref", "fused", "blelloch"} <= set(SCAN_NAMES)
    x, dt, A, B, C, D, z, h0 = _inputs(seed=6)
    y_ref, h_ref = selective_scan(x, dt, A, B, C, D, z, h0, impl="ref")
    for impl in ("fused", "blelloch"):
        y, h = selective_scan(x, dt, A, B, C, D, z, h0, impl=impl)
        torch.testing.assert_close(y, y_ref, **TOL)
        torch.testing.assert_close(h, h_ref, **TOL)
    with pytest.raises(ValueError, match="unknown scan implementation"):
        selective_scan(x, dt, A, B, C, impl="nope")


def test_model_fused_scan_matches_reference_scan(tiny_model):
    """A whole forward (and a cached prefill + decode) with 'fused' / 'compiled' / 'blelloch' == the
    reference scan. 3 meta + 37 tokens: the compiled scan runs one 32-step chunk and a padded one.

    Logits of a few units after 8 layers: float32 summation-order noise reaches ~1e-5, so atol 5e-5."""
    tol = dict(atol=5e-5, rtol=1e-5)
    ids = torch.randint(0, 61, (2, 37), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref_impl = Impl(scan="ref")
        ref = tiny_model(ids, impl=ref_impl).logits
        cache = tiny_model.new_cache(2)
        ref_prefill = tiny_model(ids[:, :35], cache=cache, impl=ref_impl).logits
        ref_decode = tiny_model(ids[:, 35:], cache=cache, impl=ref_impl).logits
        for name in ("fused", "compiled", "blelloch"):
            impl = Impl(scan=name)
            torch.testing.assert_close(tiny_model(ids, impl=impl).logits, ref, **tol)
            cache = tiny_model.new_cache(2)
            prefill = tiny_model(ids[:, :35], cache=cache, impl=impl).logits
            torch.testing.assert_close(prefill, ref_prefill, **tol)
            decode = tiny_model(ids[:, 35:], cache=cache, impl=impl).logits
            torch.testing.assert_close(decode, ref_decode, **tol)


def test_fused_with_autograd_gives_reference_gradients():
    """The fused loop writes with out=, which autograd cannot see: with grad it must run the reference."""
    args = _inputs(seed=7)
    grads = []
    for scan in (selective_scan_ref, selective_scan_fused):
        leaves = [t.clone().requires_grad_(True) for t in args]
        y, h = scan(*leaves)
        (y.square().sum() + h.sum()).backward()
        grads.append([t.grad for t in leaves])
    for g_fused, g_ref in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_fused, g_ref, **TOL)


def test_hand_written_backward_passes_gradcheck():
    """ScanWithBackward's backward (a reverse-time scan) against finite differences, in float64."""
    from minihymba.scan_fast import ScanWithBackward

    x, dt, A, B, C, _, _, h0 = _inputs(length=6, width=4, n=3, seed=5, dtype=torch.float64)
    args = [t.double().requires_grad_() for t in (x, dt, A, B, C, h0)]
    assert torch.autograd.gradcheck(ScanWithBackward.apply, args)


@pytest.mark.parametrize("with_h0", [True, False])
def test_fused_training_path_gradients_match_reference_autograd(with_h0):
    """Gradients of y and h_last w.r.t. every input: fused (hand-written backward) == reference (autograd)."""
    x, dt, A, B, C, D, z, h0 = _inputs(length=11, seed=6)
    h0 = h0 if with_h0 else None
    leaves = [t for t in (x, dt, A, B, C, D, z, h0) if t is not None]
    for t in leaves:
        t.requires_grad_()
    g = torch.Generator().manual_seed(7)
    grads = []
    for scan in (selective_scan_fused, selective_scan_ref):
        y, h = scan(x, dt, A, B, C, D, z, h0)
        wy, wh = torch.randn(y.shape, generator=g), torch.randn(h.shape, generator=g)
        g.manual_seed(7)
        grads.append(torch.autograd.grad((y * wy).sum() + (h * wh).sum(), leaves))
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert all(gr.abs().max() > 0 for gr in grads[0])  # every input really receives a gradient


def test_compiled_scan_matches_reference():
    """The compiled scan (chunks of 32 steps without a gradient, the last one padded) == the reference, for
    lengths below, at and above one chunk. Its gradients: tests/test_scan_training.py."""
    from minihymba.scan_compiled import selective_scan_compiled

    for length in (5, 32, 37):  # padded tail only / exactly one chunk / one chunk + padded tail
        x, dt, A, B, C, D, z, h0 = _inputs(length=length, seed=9)
        y_ref, h_ref = selective_scan_ref(x, dt, A, B, C, D, z, h0)
        with torch.no_grad():
            y, h = selective_scan_compiled(x, dt, A, B, C, D, z, h0)
        torch.testing.assert_close(y, y_ref, **TOL)
        torch.testing.assert_close(h, h_ref, **TOL)
    assert "compiled" in SCAN_NAMES
