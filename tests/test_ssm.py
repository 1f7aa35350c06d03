"""The SSM branch: selective scan against its closed form, chunked continuation, and the causal conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from minihymba.scans import SCAN_NAMES, selective_scan
from minihymba.ssm import causal_conv1d, random_scan_inputs, selective_scan_ref


def scan_inputs(seed: int = 0):
    """(x, dt, A, B, C, D, z) at Bt=2, L=9, I=5, N=3 (no initial state)."""
    return random_scan_inputs(2, 9, 5, 3, seed=seed)[:7]


def closed_form(x, dt, A, B, C, D, z, h0=None):
    """h_t = decay(0..t) h0 + sum_{s<=t} exp(A * sum_{r=s+1..t} dt_r) dt_s B_s x_s, in float64."""
    x, dt, A, B, C, D, z = (t.double() for t in (x, dt, A, B, C, D, z))
    bt, length, width = x.shape
    cum = dt.cumsum(1)  # (Bt, L, I): sum_{r<=t} dt_r
    ys, hs = [], []
    for t in range(length):
        h = torch.zeros(bt, width, A.shape[1], dtype=torch.float64)
        if h0 is not None:
            h = h + torch.exp(cum[:, t, :, None] * A) * h0.double()
        for s in range(t + 1):
            gap = (cum[:, t] - cum[:, s])[:, :, None]  # sum_{r=s+1..t} dt_r
            h = h + torch.exp(gap * A) * (dt[:, s] * x[:, s])[:, :, None] * B[:, s, None, :]
        hs.append(h)
        ys.append(torch.einsum("bcn,bn->bc", h, C[:, t]))
    y = (torch.stack(ys, 1) + D * x) * F.silu(z)
    return y, torch.stack(hs, 1)


def test_scan_equals_closed_form():
    args = scan_inputs()
    y, h_last, states = selective_scan_ref(*args, return_all_states=True)
    y_ref, states_ref = closed_form(*args)
    assert y.shape == (2, 9, 5) and h_last.shape == (2, 5, 3) and states.shape == (2, 9, 5, 3)
    torch.testing.assert_close(states.double(), states_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y.double(), y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_last, states[:, -1], atol=0, rtol=0)


def test_scan_from_initial_state_equals_closed_form():
    args = scan_inputs(seed=1)
    h0 = torch.randn(2, 5, 3)
    y, _ = selective_scan_ref(*args, h0=h0)
    torch.testing.assert_close(y.double(), closed_form(*args, h0=h0)[0], atol=1e-5, rtol=1e-5)


def test_scan_without_d_and_gate():
    x, dt, A, B, C, D, z = scan_inputs(seed=2)
    y, _ = selective_scan_ref(x, dt, A, B, C)
    y_ref, _ = closed_form(x, dt, A, B, C, torch.zeros_like(D), torch.full_like(z, 50.0))  # silu(50) = 50
    torch.testing.assert_close(y.double() * 50, y_ref, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("split", [1, 4, 8])
def test_scan_continuation(split):
    x, dt, A, B, C, D, z = scan_inputs(seed=3)
    y, h = selective_scan_ref(x, dt, A, B, C, D, z)
    y1, h1 = selective_scan_ref(x[:, :split], dt[:, :split], A, B[:, :split], C[:, :split], D, z[:, :split])
    y2, h2 = selective_scan_ref(
        x[:, split:], dt[:, split:], A, B[:, split:], C[:, split:], D, z[:, split:], h0=h1
    )
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(h2, h, atol=1e-6, rtol=1e-6)


def test_zero_dt_and_x_leave_the_state_unchanged():
    """Why padding needs no mask inside the scan: x = 0 and dt = 0 give h_t = h_{t-1}."""
    x, dt, A, B, C, D, z = scan_inputs(seed=4)
    x[:, 3:6] = 0
    dt[:, 3:6] = 0
    _, _, states = selective_scan_ref(x, dt, A, B, C, D, z, return_all_states=True)
    for t in (3, 4, 5):
        torch.testing.assert_close(states[:, t], states[:, 2], atol=0, rtol=0)


def test_registry_dispatch():
    args = scan_inputs(seed=5)
    assert "ref" in SCAN_NAMES
    y, h = selective_scan(*args, impl="ref")
    y_ref, h_ref = selective_scan_ref(*args)
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0)
    with pytest.raises(ValueError, match="unknown scan implementation 'nope'"):
        selective_scan(*args, impl="nope")


def test_scan_bf16_keeps_dtype_and_state_fp32():
    x, dt, A, B, C, D, z = scan_inputs(seed=6)
    y, h = selective_scan_ref(x.bfloat16(), dt, A, B.bfloat16(), C.bfloat16(), D, z.bfloat16())
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32


# ---------------------------------------------------------------------------------------------- conv
def conv_inputs(bt=2, length=10, width=6, k=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(bt, length, width, generator=gen),
        torch.randn(width, k, generator=gen),
        torch.randn(width, generator=gen),
    )


def reference_conv(x, weight, bias):
    """F.conv1d over (Bt, I, L) with K-1 zeros on the left, then SiLU; returns (Bt, L, I)."""
    k = weight.shape[-1]
    out = F.conv1d(F.pad(x.transpose(1, 2), (k - 1, 0)), weight[:, None, :], bias, groups=x.shape[-1])
    return F.silu(out).transpose(1, 2)


def test_conv_equals_f_conv1d():
    x, w, b = conv_inputs()
    y, state = causal_conv1d(x, w, b)
    torch.testing.assert_close(y, reference_conv(x, w, b), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(state, x[:, -4:].transpose(1, 2), atol=0, rtol=0)  # the last K inputs
    y_raw, _ = causal_conv1d(x, w, None, activation=False)
    k = w.shape[-1]
    raw = F.conv1d(F.pad(x.transpose(1, 2), (k - 1, 0)), w[:, None, :], None, groups=6).transpose(1, 2)
    torch.testing.assert_close(y_raw, raw, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("split", [1, 2, 5, 9])
def test_conv_continuation(split):
    x, w, b = conv_inputs(seed=1)
    y, state = causal_conv1d(x, w, b)
    y1, s1 = causal_conv1d(x[:, :split], w, b)
    y2, s2 = causal_conv1d(x[:, split:], w, b, state=s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(s2, state, atol=0, rtol=0)


VALID_PATTERNS = [
    [[0, 0, 0, 1, 1, 1, 1, 1, 1, 1], [1] * 10],  # left padding, one unpadded row
    [[0, 1, 1, 0, 0, 1, 1, 1, 0, 1], [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]],  # pads anywhere
    [[0] * 9 + [1], [0] * 10],  # a single real column; an all-padding row
]


@pytest.mark.parametrize("pattern", VALID_PATTERNS)
def test_conv_skips_padded_columns(pattern):
    x, w, b = conv_inputs(seed=2)
    valid = torch.tensor(pattern, dtype=torch.bool)
    y, state = causal_conv1d(x, w, b, valid=valid)
    for row in range(2):
        keep = valid[row]
        if keep.any():
            y_real = reference_conv(x[row : row + 1, keep], w, b)[0]  # the row with its pads removed
            torch.testing.assert_close(y[row, keep], y_real, atol=1e-6, rtol=1e-6)
        assert bool((y[row, ~keep] == 0).all()), "padded columns must output zero"
        # the state holds the last K real inputs (zeros where there were fewer than K)
        real = x[row, keep]
        expected = torch.cat([torch.zeros(4, 6), real])[-4:].T
        torch.testing.assert_close(state[row], expected, atol=0, rtol=0)


def test_conv_padded_continuation():
    """A padded decode chunk continues from the state exactly as the unpadded sequence would."""
    x, w, b = conv_inputs(seed=3)
    valid = torch.tensor([[1, 1, 1, 1, 0, 1, 1, 0, 1, 1]] * 2, dtype=torch.bool)
    y, state = causal_conv1d(x, w, b, valid=valid)
    y1, s1 = causal_conv1d(x[:, :5], w, b, valid=valid[:, :5])
    y2, s2 = causal_conv1d(x[:, 5:], w, b, state=s1, valid=valid[:, 5:])
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(s2, state, atol=0, rtol=0)
