"""The SSM (Mamba-1) branch: a causal depthwise convolution, then a selective scan.

For every channel c of the inner width I and state index n < N, with step size dt_t[c] > 0:

    h_t[c, n] = exp(dt_t[c] * A[c, n]) * h_{t-1}[c, n]  +  dt_t[c] * B_t[n] * x_t[c]
    y_t[c]    = sum_n C_t[n] * h_t[c, n]  +  D[c] * x_t[c]
    y_t[c]   *= silu(z_t[c])                                   (the output gate)

A = -exp(A_log) < 0, so exp(dt*A) in (0, 1) is a per-step decay ("zero-order hold" for A, Euler for B).
dt, B and C depend on the input -- that is what makes the scan *selective*.

:func:`selective_scan_ref` is the definition: a plain loop over time, in float32. The faster scans in
:mod:`minihymba.scan_fast` (and mamba-ssm's kernel, :mod:`minihymba.kernels`) take the same arguments and
must return the same thing; :mod:`minihymba.scans` names them all.

Padding: a padded position must leave the state untouched. With x = 0 and dt = 0 there, the update is
h_t = exp(0) * h_{t-1} + 0 = h_{t-1}, so the scan itself needs no mask; the caller zeroes x and dt.
The convolution skips padded columns explicitly (see :func:`causal_conv1d`).

Shapes: x, dt, z (Bt, L, I); A (I, N); B, C (Bt, L, N); D (I,); states h (Bt, I, N);
conv weight (I, K), conv state (Bt, I, K) = the last K inputs seen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["causal_conv1d", "skip_and_gate", "selective_scan_ref", "random_scan_inputs"]


def causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    state: Tensor | None = None,
    valid: Tensor | None = None,
    activation: bool = True,
) -> tuple[Tensor, Tensor]:
    """Depthwise causal convolution over time, then SiLU; returns (y, new_state).

    ``y_t[c] = sum_j weight[c, j] * x_{t-K+1+j}[c] + bias[c]``: each channel mixes its own last K inputs.
    ``state`` holds the K inputs before ``x`` (zeros = start of sequence). ``valid`` (Bt, L) marks real
    columns: padded columns are skipped (as if absent) and their outputs are zero. Accumulates in float32.
    """
    bt, length, width = x.shape
    k = weight.shape[-1]
    if state is None:
        state = x.new_zeros(bt, width, k)
    seq = torch.cat([state.to(x.dtype), x.transpose(1, 2)], dim=-1)  # (Bt, I, K + L)
    if valid is not None:
        # Stable-partition every row so padded columns come first: the conv then sees only real history.
        keep = torch.cat([valid.new_ones(bt, k), valid], dim=-1)  # (Bt, K + L)
        order = torch.argsort(keep.to(torch.int8), dim=-1, stable=True)
        seq = seq.masked_fill(~keep[:, None, :], 0.0).gather(-1, order[:, None, :].expand_as(seq))
    out = F.conv1d(
        seq[..., 1:].float(), weight.float()[:, None, :], None if bias is None else bias.float(), groups=width
    )  # (Bt, I, L)
    if activation:
        out = F.silu(out)
    new_state = seq[..., -k:].clone()  # (Bt, I, K)
    if valid is not None:
        # Output i belongs to partitioned column K + i, i.e. original column order[K + i]. Scatter the
        # outputs of real chunk columns back to their places; everything else (pads) stays 0.
        source = order[:, k:]  # (Bt, L) original column of each output
        is_real = (source >= k) & keep.gather(-1, source)
        target = torch.where(is_real, source - k, length)  # pads go to a dummy slot L
        placed = out.new_zeros(bt, width, length + 1)
        placed.scatter_(-1, target[:, None, :].expand_as(out), out)
        out = placed[..., :length]
    return out.transpose(1, 2).to(x.dtype), new_state  # (Bt, L, I), (Bt, I, K)


def skip_and_gate(y: Tensor, x: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    """The scan's last two terms, in float32: ``(y + D * x) * silu(z)`` (either left out when None).

    y and x (Bt, L, I); D (I,); z (Bt, L, I). Every scan implementation finishes with this.
    """
    y = y.float()
    if D is not None:
        y = y + D.float() * x.float()
    if z is not None:
        y = y * F.silu(z.float())
    return y


def selective_scan_ref(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    h0: Tensor | None = None,
    return_all_states: bool = False,
) -> tuple[Tensor, ...]:
    """The selective scan, one time step at a time, in float32.

    Returns ``(y, h_last)`` -- y (Bt, L, I) in x's dtype, h_last (Bt, I, N) float32 -- plus all states
    (Bt, L, I, N) when ``return_all_states`` (small inputs only: that tensor is L times the state).
    """
    bt, length, width = x.shape
    x32, dt32, A32 = x.float(), dt.float(), A.float()
    B32, C32 = B.float(), C.float()
    h = x.new_zeros(bt, width, A.shape[-1], dtype=torch.float32) if h0 is None else h0.float().clone()
    ys, states = [], []
    for t in range(length):
        decay = torch.exp(dt32[:, t, :, None] * A32)  # (Bt, I, N)
        drive = (dt32[:, t] * x32[:, t])[:, :, None] * B32[:, t, None, :]  # (Bt, I, N)
        h = decay * h + drive
        ys.append(torch.einsum("bcn,bn->bc", h, C32[:, t]))  # (Bt, I)
        if return_all_states:
            states.append(h)
    y = torch.stack(ys, dim=1) if ys else x32.new_zeros(bt, 0, width)  # (Bt, L, I)
    out = (skip_and_gate(y, x32, D, z).to(x.dtype), h)
    if return_all_states:
        all_states = torch.stack(states, dim=1) if states else h.new_zeros(bt, 0, width, A.shape[-1])
        out = out + (all_states,)
    return out


def random_scan_inputs(
    batch: int = 2,
    length: int = 9,
    width: int = 6,
    state: int = 4,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, ...]:
    """Random scan arguments ``(x, dt, A, B, C, D, z, h0)`` with the signs the scan expects (dt > 0, A < 0).

    For tests, benchmarks and notebooks. x, dt, z (batch, length, width); A (width, state) float32 (it is a
    parameter: the model keeps it in float32); B, C (batch, length, state); D (width,); h0 (batch, width,
    state). Everything but A in ``dtype``.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, width, generator=g)
    dt = F.softplus(torch.randn(batch, length, width, generator=g))
    A = -torch.exp(0.5 * torch.randn(width, state, generator=g))
    B, C = torch.randn(batch, length, state, generator=g), torch.randn(batch, length, state, generator=g)
    D, z = torch.randn(width, generator=g), torch.randn(batch, length, width, generator=g)
    h0 = torch.randn(batch, width, state, generator=g)
    return tuple(t.to(device, torch.float32 if t is A else dtype) for t in (x, dt, A, B, C, D, z, h0))
