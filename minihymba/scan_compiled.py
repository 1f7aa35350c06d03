"""The compiled selective scan: fixed-size chunks of steps compiled once, forward *and* backward.

The recurrence (per channel c < I, state index n < N; :mod:`minihymba.ssm` is the definition)::

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t * B_t        y_t = C_t . h_t   (+ D x_t, * silu(z_t))

:func:`selective_scan_compiled` cuts the sequence into chunks of ``chunk`` steps (the last one padded with
``dt = x = 0`` steps, which leave the state unchanged, see :mod:`minihymba.ssm`) and runs each chunk through
one function compiled by ``torch.compile``: the ``chunk`` steps are unrolled, and inductor turns them into
one C++ loop nest (one Triton kernel on CUDA) that keeps every ``h[b, c, n]`` in a register across the
chunk. The chunk length is fixed and batch and width are dynamic, so there is **one compile per chunk
length for every sequence length** (batch 1 and batch > 1 are two graphs: dynamo specialises size-1
dimensions), not one per shape.

Training: :class:`ChunkedScan` is an ``autograd.Function``. Its forward keeps only the state at every
chunk boundary (``L / chunk + 1`` states instead of L). Its backward walks the chunks last to first; each
chunk -- again one compiled function -- recomputes the chunk's states from its boundary state and runs the
reverse-time recurrence of the gradient ``g_t = dLoss/dh_t``::

    g_t = C_t gy_t + exp(dt_{t+1} A) g_{t+1}                  (g after the last step: grad of h_last)
    dC_t = sum_c gy_t h_t        d(dt x)_t = sum_n g_t B_t      dB_t = sum_c (dt x)_t g_t
    dE_t = g_t * h_{t-1} * exp(dt_t A)  (E = dt A)   ->   ddt_t += sum_n dE_t A,   dA += sum_{b,t} dE_t dt_t

Chunks of 8 steps for training (the backward chunk holds 8 recomputed states), 32 for inference. The
D skip and the silu(z) gate are ordinary tensor ops after the scan (autograd differentiates them). Every
reduction runs in a fixed order, so results and gradients are bit-identical from run to run.

What it needs: a working ``torch.compile`` -- on CPU a C++ compiler (``g++``/``clang++``, or ``$CXX``),
on CUDA Triton. :func:`compiled_scan_available` says whether those are present; without them
:func:`selective_scan_compiled` raises RuntimeError saying what is missing (it never substitutes another
scan; the ``"auto"`` policy in :mod:`minihymba.impl` decides what runs instead). The first call in a
process traces and compiles (a few seconds per chunk length, forward and backward separately); inductor's
on-disk FX graph cache (on by default; ``TORCHINDUCTOR_CACHE_DIR``, default ``/tmp/torchinductor_$USER``)
keeps the generated kernels across runs, so later processes only re-trace (about a second).

Shapes: x, dt, z (Bt, L, I); A (I, N); B, C (Bt, L, N); D (I,); h0, h_last (Bt, I, N); y (Bt, L, I).
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TRAIN_CHUNK",
    "INFERENCE_CHUNK",
    "compiled_scan_available",
    "compiled_scan_unavailable_reason",
    "selective_scan_compiled",
    "ChunkedScan",
    "chunk_forward",
    "chunk_backward",
]

TRAIN_CHUNK = 8  # steps per compiled chunk when a gradient is needed
INFERENCE_CHUNK = 32  # steps per compiled chunk otherwise


# ----------------------------------------------------------------------------------------- one chunk
def chunk_forward(h: Tensor, dt: Tensor, x: Tensor, B: Tensor, C: Tensor, A: Tensor) -> tuple[Tensor, Tensor]:
    """The steps of one chunk, written out (the loop unrolls when compiled). Returns (h_end, y).

    h (Bt, I, N); dt, x (Bt, c, I); B, C (Bt, c, N); A (I, N) -> h_end (Bt, I, N), y (Bt, c, I).
    """
    ys = []
    for t in range(dt.shape[1]):
        dt_t = dt[:, t, :, None]  # (Bt, I, 1)
        h = torch.exp(dt_t * A) * h + (dt_t * x[:, t, :, None]) * B[:, t, None, :]  # (Bt, I, N)
        ys.append((h * C[:, t, None, :]).sum(-1))  # (Bt, I)
    return h, torch.stack(ys, dim=1)


def chunk_backward(
    h: Tensor, dt: Tensor, x: Tensor, B: Tensor, C: Tensor, A: Tensor, gy: Tensor, g: Tensor
) -> tuple[Tensor, ...]:
    """Gradients through one chunk: recompute its states from the boundary state h, then run backwards.

    h (Bt, I, N) the state before the chunk; gy (Bt, c, I) dLoss/dy; g (Bt, I, N) dLoss/dh_end.
    Returns (dh_start, ddt, dx, dB, dC, dA) shaped like (h, dt, x, B, C, A).
    """
    steps = dt.shape[1]
    decays, states = [], [h]
    for t in range(steps):  # states[t + 1] = h_t
        dt_t = dt[:, t, :, None]
        decay = torch.exp(dt_t * A)
        decays.append(decay)
        states.append(decay * states[-1] + (dt_t * x[:, t, :, None]) * B[:, t, None, :])
    ddt, dx, dB, dC = [], [], [], []
    dA = torch.zeros_like(A)
    for t in reversed(range(steps)):
        dt_t, x_t, gy_t = dt[:, t], x[:, t], gy[:, t]  # (Bt, I)
        g = g + gy_t[:, :, None] * C[:, t, None, :]  # g_t
        dC.append((gy_t[:, :, None] * states[t + 1]).sum(1))  # (Bt, N)
        ddu = (g * B[:, t, None, :]).sum(-1)  # (Bt, I): dLoss/d(dt x)
        dB.append(((dt_t * x_t)[:, :, None] * g).sum(1))  # (Bt, N)
        dE = g * states[t] * decays[t]  # (Bt, I, N): dLoss/d(dt A)
        ddt.append(ddu * x_t + (dE * A).sum(-1))
        dx.append(ddu * dt_t)
        dA = dA + (dE * dt_t[:, :, None]).sum(0)
        g = g * decays[t]  # carried to the step before
    order = lambda grads: torch.stack(grads[::-1], dim=1)  # noqa: E731  reversed time -> (Bt, c, .)
    return g, order(ddt), order(dx), order(dB), order(dC), dA


# --------------------------------------------------------------------------------- compile, lazily
def _cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on CPU ($CXX, else the first of c++, g++, clang++ on PATH)."""
    cxx = os.environ.get("CXX")
    if cxx:
        return shutil.which(cxx)
    return next((found for name in ("c++", "g++", "clang++") if (found := shutil.which(name))), None)


@functools.cache
def compiled_scan_unavailable_reason(device_type: str) -> str:
    """Why :func:`selective_scan_compiled` cannot run on ``device_type`` ('' when it can)."""
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    try:
        importlib.import_module("torch._inductor")  # the compiler backend
    except Exception as err:  # a broken install: report it
        return f"torch's inductor backend does not import: {err!r}"
    if device_type == "cpu":
        return "" if _cpp_compiler() else "no C++ compiler found (install g++ or clang++, or set $CXX)"
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        return "" if has_triton() else "Triton is not installed (torch.compile needs it on CUDA)"
    return f"the compiled scan is not supported on device type {device_type!r}"


def compiled_scan_available(device: torch.device | str = "cpu") -> bool:
    """Whether :func:`selective_scan_compiled` can run on ``device`` (C++ compiler on CPU, Triton on CUDA)."""
    return not compiled_scan_unavailable_reason(torch.device(device).type)


@functools.cache
def _compiled(kind: str, key: tuple) -> Callable[..., tuple[Tensor, ...]]:
    """``chunk_forward`` or ``chunk_backward`` compiled for one ``key`` = (chunk, batch, width, state, dtype,
    device), on first use.

    Shapes are static: tracing with symbolic (dynamic) shapes was measured 10x slower (10-25 s per new
    process instead of 1-2 s). Each key compiles a *fresh copy* of the function's code, so that dynamo's
    per-code-object cache and recompile limit see one entry per key (a process may hold many models).
    """
    fn = chunk_forward if kind == "forward" else chunk_backward
    name = f"{fn.__name__}_{'_'.join(map(str, key))}"
    copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, name)
    return torch.compile(copy, fullgraph=True, dynamic=False)


def _check_available(device: torch.device) -> None:
    reason = compiled_scan_unavailable_reason(device.type)
    if reason:
        raise RuntimeError(
            f"the 'compiled' scan cannot run on {device.type}: {reason}. Use Impl(scan='fused') (no compiler "
            "needed) or Impl(scan='auto'), which picks 'fused' when the compiled scan is unavailable"
        )


# ------------------------------------------------------------------------------- the whole sequence
def _to_chunks(t: Tensor, chunk: int) -> Tensor:
    """(Bt, L, F) -> (nC, Bt, chunk, F) contiguous, the last chunk padded with zeros."""
    bt, length, feat = t.shape
    n_chunks = -(-length // chunk)
    if n_chunks * chunk != length:  # one copy, only when the last chunk is ragged
        t = F.pad(t, (0, 0, 0, n_chunks * chunk - length))
    # for Bt = 1 the transpose moves a size-1 dimension, so .contiguous() copies nothing
    return t.reshape(bt, n_chunks, chunk, feat).transpose(0, 1).contiguous()  # (nC, Bt, chunk, F)


def _from_chunks(t: Tensor, length: int) -> Tensor:
    """(nC, Bt, chunk, F) -> (Bt, L, F), dropping the padded tail."""
    n_chunks, bt, chunk, feat = t.shape
    return t.transpose(0, 1).reshape(bt, n_chunks * chunk, feat)[:, :length]


def _scan_chunks(
    run: Callable[..., tuple[Tensor, ...]],
    h: Tensor,
    chunks: tuple[Tensor, ...],
    A: Tensor,
    boundaries: list[Tensor] | None,
) -> tuple[Tensor, Tensor]:
    """Run ``run`` (a compiled chunk_forward) over every chunk; returns (y in chunks, h_last)."""
    dts, xs, Bs, Cs = chunks
    ys = []
    for k in range(dts.shape[0]):
        if boundaries is not None:
            boundaries.append(h)
        h, y = run(h, dts[k], xs[k], Bs[k], Cs[k], A)
        ys.append(y)
    return torch.stack(ys), h  # (nC, Bt, chunk, I), (Bt, I, N)


def _scan_forward(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    h0: Tensor,
    chunk: int,
    boundaries: list[Tensor] | None,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """The whole forward: cut into chunks, run the compiled chunk_forward over them (appending the state
    before each chunk to ``boundaries`` when given). Returns y (Bt, L, I), h_last and the chunked inputs."""
    chunks = tuple(_to_chunks(t, chunk) for t in (dt, x, B, C))
    run = _compiled("forward", (chunk, *h0.shape, h0.dtype, h0.device))
    y, h = _scan_chunks(run, h0, chunks, A, boundaries)
    return _from_chunks(y, x.shape[1]), h, chunks


class ChunkedScan(torch.autograd.Function):
    """The scan core ``y_t = C_t . h_t`` (no D, no gate), compiled per chunk, with a compiled backward.

    Inputs x, dt (Bt, L, I); A (I, N); B, C (Bt, L, N); h0 (Bt, I, N), all float32 (or float64), and the
    chunk length. Returns y (Bt, L, I) and h_last (Bt, I, N). Saves the inputs (in chunks) and the state at
    every chunk boundary; the backward recomputes the rest (see the module docstring).
    """

    @staticmethod
    def forward(ctx, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor, chunk: int):
        # the compiled chunks see plain tensors (no requires_grad guards)
        x, dt, A, B, C, h0 = (t.detach() for t in (x, dt, A, B, C, h0))
        boundaries: list[Tensor] = []
        y, h, chunks = _scan_forward(x, dt, A, B, C, h0, chunk, boundaries)
        ctx.save_for_backward(A, *chunks, torch.stack(boundaries))
        ctx.length = x.shape[1]
        return y, h

    @staticmethod
    def backward(ctx, grad_y: Tensor | None, grad_h: Tensor | None):
        A, dts, xs, Bs, Cs, boundaries = ctx.saved_tensors
        n_chunks, bt, chunk, width = dts.shape
        if grad_y is None:
            gys = dts.new_zeros(dts.shape)
        else:
            gys = _to_chunks(grad_y, chunk)
        g = boundaries.new_zeros(boundaries.shape[1:]) if grad_h is None else grad_h.contiguous()
        run = _compiled("backward", (chunk, *g.shape, g.dtype, g.device))
        grads: list[tuple[Tensor, ...]] = []
        dA = torch.zeros_like(A)
        for k in reversed(range(n_chunks)):
            g, ddt, dx, dB, dC, dA_k = run(boundaries[k], dts[k], xs[k], Bs[k], Cs[k], A, gys[k], g)
            grads.append((ddt, dx, dB, dC))
            dA = dA + dA_k
        ddt, dx, dB, dC = (_from_chunks(torch.stack(gr[::-1]), ctx.length) for gr in zip(*grads, strict=True))
        return dx, ddt, dA, dB, dC, g, None


def _scan_no_grad(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor, chunk: int):
    """ChunkedScan's forward without autograd: no boundary states kept (inference, prefill)."""
    y, h, _ = _scan_forward(x, dt, A, B, C, h0, chunk, None)
    return y, h


def selective_scan_compiled(
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
    chunk: int | None = None,
) -> tuple[Tensor, ...]:
    """The selective scan compiled in chunks, differentiable (see the module docstring).

    Returns what :func:`~minihymba.ssm.selective_scan_ref` returns, ``(y, h_last)``. ``chunk``: steps per
    compiled chunk (default :data:`TRAIN_CHUNK` when a gradient is needed, else :data:`INFERENCE_CHUNK`).
    ``return_all_states`` is not supported (the states never leave the chunk kernels): ValueError.
    RuntimeError when torch.compile cannot run here (:func:`compiled_scan_available`).
    """
    if return_all_states:
        raise ValueError(
            "the 'compiled' scan keeps only chunk-boundary states, so it cannot return all states; use "
            "Impl(scan='fused') / 'ref' (or 'auto', which does) for return_all_states"
        )
    _check_available(x.device)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, dt, A, B, C, D, z, h0)
    )
    if chunk is None:
        chunk = TRAIN_CHUNK if needs_grad else INFERENCE_CHUNK
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    x32, dt32, A32, B32, C32 = (t.float() for t in (x, dt, A, B, C))
    h = x32.new_zeros(x.shape[0], x.shape[2], A.shape[-1]) if h0 is None else h0.float()
    if x.shape[1] == 0:
        y = x32.new_zeros(x.shape[0], 0, x.shape[2])
        h = h.clone()
    else:
        y, h = (ChunkedScan.apply if needs_grad else _scan_no_grad)(
            x32, dt32, A32.contiguous(), B32, C32, h.contiguous(), chunk
        )
    if D is not None:
        y = y + D.float() * x32
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(x.dtype), h
