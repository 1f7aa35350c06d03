"""Faster selective scans, each with the contract of :func:`minihymba.ssm.selective_scan_ref`.

The recurrence (per channel c < I, state index n < N)::

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t * B_t        y_t = C_t . h_t + D * x_t,   y_t *= silu(z_t)

Three ways to run it, all in float32:

* :func:`selective_scan_materialized` -- the textbook form (the one in mamba-ssm's reference and the HF
  slow path): first build ``exp(dt * A)`` and ``dt * B * x`` for *all* steps as (Bt, I, L, N) tensors,
  then loop. At Hymba's width one such tensor is 131 MB for L = 640, and allocating and touching it costs
  far more than the recurrence itself. Kept as the baseline the benchmark compares against (S1).
* :func:`selective_scan_fused` -- the CPU fast path (the default): discretise *inside* the time loop and
  write into a few preallocated (Bt, I, N) buffers (about 200 KB at Hymba's width, so they stay in
  cache). Same arithmetic, ~4x faster than the materialised form on 2 cores; what is left is five small
  ops per step, of which the exp is 40 %. It has a hand-written backward (:class:`ScanWithBackward`).
* The compiled scan (chunks of steps compiled by ``torch.compile``, forward and backward) lives in
  :mod:`minihymba.scan_compiled`.
* :func:`selective_scan_blelloch` -- a work-efficient parallel prefix scan (Blelloch), O(log L) sequential
  steps instead of L. It is the shape of a GPU scan; on a 2-core CPU it is *slower* than the loop.

Shapes: x, dt, z (Bt, L, I); A (I, N); B, C (Bt, L, N); D (I,); h0, h_last (Bt, I, N);
y (Bt, L, I) in x's dtype; all_states (Bt, L, I, N).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "selective_scan_fused",
    "ScanWithBackward",
    "selective_scan_materialized",
    "selective_scan_blelloch",
]


def _finish(
    y: Tensor, x32: Tensor, D: Tensor | None, z: Tensor | None, dtype: torch.dtype
) -> Tensor:  # (Bt, L, I) float32 -> (Bt, L, I) dtype
    """Add the skip term D * x and apply the silu(z) gate, in float32, then cast."""
    if D is not None:
        y = y + D.float() * x32
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


def _initial_state(x: Tensor, n: int, h0: Tensor | None) -> Tensor:  # -> (Bt, I, N) float32, owned
    if h0 is None:
        return x.new_zeros(x.shape[0], x.shape[2], n, dtype=torch.float32)
    return h0.float().clone()


def selective_scan_fused(
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
    """Step-by-step scan with in-loop discretisation into preallocated buffers (the CPU fast path).

    Never builds a (Bt, L, I, N) tensor (unless ``return_all_states`` asks for one). Per step, each
    written with ``out=`` or in place: ``decay = exp(dt_t * A)``, ``h = h * decay + (dt_t * x_t) * B_t``,
    ``y_t = h @ C_t``. Returns what :func:`~minihymba.ssm.selective_scan_ref` returns.

    ``out=`` and in-place ops are invisible to autograd, so when a gradient is needed (grad mode on and an
    input requires grad) the scan runs as :class:`ScanWithBackward` instead: the same recurrence with every
    state kept, and a hand-written backward pass (a second scan, run backwards in time). That is the
    training path; with ``return_all_states`` it falls back to the reference loop.
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, dt, A, B, C, D, z, h0)):
        if return_all_states:
            from .ssm import selective_scan_ref

            return selective_scan_ref(x, dt, A, B, C, D, z, h0, return_all_states)
        x32 = x.float()
        h_init = x32.new_zeros(x.shape[0], x.shape[2], A.shape[-1]) if h0 is None else h0.float()
        y, h = ScanWithBackward.apply(x32, dt.float(), A.float(), B.float(), C.float(), h_init)
        return _finish(y, x32, D, z, x.dtype), h
    bt, length, width = x.shape
    n = A.shape[-1]
    x32, dt32, A32 = x.float(), dt.float(), A.float().contiguous()
    # Per-step operands, laid out time-major and split once (unbind = L views in one call), each already
    # shaped for broadcasting against the (Bt, I, N) state: no slicing inside the loop.
    dt_steps = dt32.transpose(0, 1).contiguous().unsqueeze(-1).unbind(0)  # L x (Bt, I, 1)
    du_steps = (dt32 * x32).transpose(0, 1).contiguous().unsqueeze(-1).unbind(0)  # L x (Bt, I, 1): dt * x
    B_steps = B.float().transpose(0, 1).contiguous().unsqueeze(2).unbind(0)  # L x (Bt, 1, N)
    C_steps = C.float().transpose(0, 1).contiguous().unsqueeze(-1).unbind(0)  # L x (Bt, N, 1)
    ys = x32.new_empty(length, bt, width, 1)  # (L, Bt, I, 1): every ys[t] is a contiguous matmul out=
    y_steps = ys.unbind(0)
    h = _initial_state(x, n, h0)  # (Bt, I, N)
    decay = torch.empty_like(h)  # (Bt, I, N) scratch
    states = x32.new_empty(bt, length, width, n) if return_all_states else None
    for t in range(length):
        torch.mul(dt_steps[t], A32, out=decay)  # (Bt, I, N): dt_t * A
        decay.exp_()
        h.mul_(decay).addcmul_(du_steps[t], B_steps[t])  # h = exp(dt A) h + (dt x) B
        torch.bmm(h, C_steps[t], out=y_steps[t])  # (Bt, I, 1): y_t = h C_t
        if states is not None:
            states[:, t] = h
    y = _finish(ys.squeeze(-1).transpose(0, 1), x32, D, z, x.dtype)  # (Bt, L, I)
    return (y, h) if states is None else (y, h, states)


class ScanWithBackward(torch.autograd.Function):
    """The scan core ``y_t = C_t . h_t`` with ``h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t``, differentiable.

    Forward: discretise all steps at once (time-major (L, Bt, I, N) tensors: fine at training sizes), then
    one fused ``addcmul`` per step. Backward, with g_t = dLoss/dh_t (everything h_t influences)::

        g_t = gy_t C_t  +  exp(dt_{t+1} A) g_{t+1}          one reverse-time scan; g_L = grad of h_last
        dL/dC_t = gy_t . h_t       dL/d(dt x)_t = g_t . B_t       dL/dB_t = (dt x)_t . g_t
        dL/d(dt_t A) = g_t * h_{t-1} * exp(dt_t A)   ->  dL/ddt_t (summed over n), dL/dA (summed over b, t)

    Inputs: x, dt (Bt, L, I); A (I, N); B, C (Bt, L, N); h0 (Bt, I, N), all float32 (or float64).
    Returns y (Bt, L, I) (before the D skip and the gate) and h_last (Bt, I, N).
    """

    @staticmethod
    def forward(ctx, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor):
        x_t, dt_t, B_t = x.transpose(0, 1), dt.transpose(0, 1), B.transpose(0, 1)  # time-major views
        decay = torch.exp(dt_t[..., None] * A)  # (L, Bt, I, N)
        drive = (dt_t * x_t)[..., None] * B_t[:, :, None, :]  # (L, Bt, I, N)
        states = torch.empty_like(decay)  # h_0 .. h_{L-1}
        prev = h0
        for t in range(x.shape[1]):
            torch.addcmul(drive[t], decay[t], prev, out=states[t])  # h_t = exp(dt A) h_{t-1} + dt x B
            prev = states[t]
        y = (states * C.transpose(0, 1)[:, :, None, :]).sum(-1)  # (L, Bt, I); N is tiny: no matmul
        ctx.save_for_backward(x, dt, A, B, C, h0, decay, states)
        return y.transpose(0, 1), prev.clone()

    @staticmethod
    def backward(ctx, grad_y: Tensor | None, grad_h: Tensor | None):
        x, dt, A, B, C, h0, decay, states = ctx.saved_tensors
        x_t, dt_t, B_t, C_t = x.transpose(0, 1), dt.transpose(0, 1), B.transpose(0, 1), C.transpose(0, 1)
        gy_t = torch.zeros_like(x_t) if grad_y is None else grad_y.transpose(0, 1)  # (L, Bt, I)
        grad_states = torch.empty_like(states)  # (L, Bt, I, N): g_t
        carry = torch.zeros_like(h0) if grad_h is None else grad_h.clone()  # exp(dt_{t+1} A) g_{t+1}
        for t in reversed(range(x.shape[1])):
            torch.addcmul(carry, gy_t[t][..., None], C_t[t][:, None, :], out=grad_states[t])
            torch.mul(grad_states[t], decay[t], out=carry)
        previous = torch.cat([h0[None], states[:-1]])  # (L, Bt, I, N): h_{t-1}
        g_exponent = grad_states * previous * decay  # dL/d(dt_t A)
        g_du = (grad_states * B_t[:, :, None, :]).sum(-1)  # (L, Bt, I): dL/d(dt x)
        g_dt = (g_exponent * A).sum(-1) + g_du * x_t
        g_A = (g_exponent * dt_t[..., None]).sum((0, 1))  # (I, N)
        g_B = (grad_states * (dt_t * x_t)[..., None]).sum(2)  # (L, Bt, N)
        g_C = (states * gy_t[..., None]).sum(2)  # (L, Bt, N)
        tm = lambda t: t.transpose(0, 1)  # noqa: E731  time-major -> batch-major
        return tm(g_du * dt_t), tm(g_dt), g_A, tm(g_B), tm(g_C), carry


def selective_scan_materialized(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    h0: Tensor | None = None,
    return_all_states: bool = False,
    *,
    time_major: bool = False,
) -> tuple[Tensor, ...]:
    """The textbook scan: discretise every step up front into (Bt, I, L, N) tensors, then loop (baseline).

    The layout is mamba-ssm's reference (and the HF slow path): channels first, ``decay[:, :, t]`` a
    strided slice. ``time_major=True`` stores them as (Bt, L, I, N) instead, so each step's slice is
    contiguous (faster, still materialising).
    """
    bt, length, width = x.shape
    x32, dt32, A32 = x.float(), dt.float(), A.float()
    if time_major:
        decay = torch.exp(dt32[..., None] * A32)  # (Bt, L, I, N)
        drive = (dt32 * x32)[..., None] * B.float()[:, :, None, :]  # (Bt, L, I, N)
    else:
        decay = torch.exp(torch.einsum("bli,in->biln", dt32, A32))  # (Bt, I, L, N)
        drive = torch.einsum("bli,bln->biln", dt32 * x32, B.float())  # (Bt, I, L, N)
    h = _initial_state(x, A.shape[-1], h0)
    ys, states = [], []
    for t in range(length):
        step = (slice(None), t) if time_major else (slice(None), slice(None), t)
        h = decay[step] * h + drive[step]  # (Bt, I, N)
        ys.append(torch.einsum("bcn,bn->bc", h, C[:, t].float()))  # (Bt, I)
        if return_all_states:
            states.append(h)
    y = torch.stack(ys, dim=1) if ys else x32.new_zeros(bt, 0, width)  # (Bt, L, I)
    out = (_finish(y, x32, D, z, x.dtype), h)
    if return_all_states:
        out = out + (torch.stack(states, dim=1) if states else x32.new_zeros(bt, 0, width, A.shape[-1]),)
    return out


def _prefix_linear(a: Tensor, b: Tensor) -> Tensor:
    """Inclusive scan of h_t = a_t * h_{t-1} + b_t (h_{-1} = 0) along dim 1, any length. (Bt, L, ...).

    Blelloch's recursive form: combine neighbouring pairs (2i, 2i+1) with the associative operator
    (a1, b1) then (a2, b2) = (a2 * a1, a2 * b1 + b2), scan the half-length sequence of pairs (which gives
    the answer at every odd index), then fill each even index from the odd one before it. log2(L) levels,
    O(L) work in total; odd lengths just carry their last element down to the fill-in step.
    """
    length = a.shape[1]
    if length == 1:
        return b
    a_even, a_odd = a[:, 0 : length - 1 : 2], a[:, 1::2]  # pairs (2i, 2i+1): (Bt, L // 2, ...)
    b_even, b_odd = b[:, 0 : length - 1 : 2], b[:, 1::2]
    h_odd = _prefix_linear(a_odd * a_even, a_odd * b_even + b_odd)  # h at indices 1, 3, 5, ...
    h = torch.empty_like(b)
    h[:, 1::2] = h_odd
    h[:, 0] = b[:, 0]
    h[:, 2::2] = a[:, 2::2] * h_odd[:, : (length - 1) // 2] + b[:, 2::2]  # h_2i = a_2i h_{2i-1} + b_2i
    return h


def selective_scan_blelloch(
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
    """Parallel (Blelloch) scan over time: log2(L) dependent steps instead of L. Teaching / GPU-shaped path.

    It materialises (Bt, L, I, N) tensors at every level, so on a 2-core CPU it is slower than
    :func:`selective_scan_fused` (measured ~0.7x of even the materialising loop); its value is that the
    depth is logarithmic, which is what a GPU kernel exploits. Any L works, not only powers of two.
    """
    bt, length, width = x.shape
    x32, dt32 = x.float(), dt.float()
    if length == 0:
        h = _initial_state(x, A.shape[-1], h0)
        y = _finish(x32.new_zeros(bt, 0, width), x32, D, z, x.dtype)
        return (y, h, h.new_zeros(bt, 0, width, A.shape[-1])) if return_all_states else (y, h)
    decay = torch.exp(dt32[..., None] * A.float())  # (Bt, L, I, N)
    drive = (dt32 * x32)[..., None] * B.float()[:, :, None, :]  # (Bt, L, I, N)
    if h0 is not None:
        drive[:, 0] += decay[:, 0] * h0.float()  # fold the initial state into the first step
    states = _prefix_linear(decay, drive)  # (Bt, L, I, N)
    y = torch.einsum("blcn,bln->blc", states, C.float())  # (Bt, L, I)
    out = (_finish(y, x32, D, z, x.dtype), states[:, -1].clone())
    return out + (states,) if return_all_states else out
