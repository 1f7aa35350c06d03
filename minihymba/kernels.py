"""Optional CUDA kernels: mamba-ssm's selective scan and causal-conv1d's convolution, behind guarded imports.

Nothing here is imported by ``import minihymba``: :mod:`minihymba.scans` imports this module the first time
the ``"cuda"`` scan or convolution is asked for, and :func:`available` says whether CUDA is available *and*
the compiled extension modules import. Install them on a CUDA machine with ``pip install
--no-build-isolation mamba-ssm causal-conv1d`` (the ``gpu`` extra); on a CPU-only machine they cannot be
built usefully.

The kernels take channels-first tensors (Bt, I, L); minihymba keeps time in the middle (Bt, L, I). The
wrappers transpose in and out so they share the signatures of :func:`minihymba.ssm.selective_scan_ref` and
:func:`minihymba.ssm.causal_conv1d`. What the kernels cover (:func:`scan_covers`, :func:`conv_covers`):

* scan from a zero state, any L (``selective_scan_fn``), or one step from a given state (a decode step,
  ``selective_state_update``); *not* L > 1 from a given state (``selective_scan_fn`` always starts from
  zero) nor ``return_all_states`` (the states never leave the chip);
* convolution from a zero state without padding (``causal_conv1d_fn``), or one step from a given state
  (``causal_conv1d_update``); *not* padded columns (``valid``) nor L > 1 from a given state.

An uncovered call raises ValueError: ``Impl(scan="auto")`` / ``Impl(conv="auto")`` use the pure-PyTorch
implementations for those calls instead (the policy in :mod:`minihymba.impl`).

Shapes: x, dt, z (Bt, L, I); A (I, N); B, C (Bt, L, N); D (I,); h (Bt, I, N); conv weight (I, K),
conv state (Bt, I, K).
"""

from __future__ import annotations

import importlib
import importlib.util

import torch
from torch import Tensor

__all__ = [
    "available",
    "conv_available",
    "unavailable_reason",
    "scan_covers",
    "conv_covers",
    "selective_scan_cuda",
    "causal_conv1d_cuda",
]

_kernels: dict[str, object] = {}  # name -> function, filled by _load()
_reason: list[str] = []  # why the scan kernel is unavailable (empty when available or not yet checked)


def _load() -> None:
    """Import the kernel entry points once; record why when they cannot be used."""
    if _kernels or _reason:
        return
    if not torch.cuda.is_available():
        _reason.append("CUDA is not available")
        return
    if importlib.util.find_spec("selective_scan_cuda") is None:
        _reason.append("mamba-ssm's compiled extension (selective_scan_cuda) is not installed")
        return
    try:
        scan_interface = importlib.import_module("mamba_ssm.ops.selective_scan_interface")
        _kernels["selective_scan_fn"] = scan_interface.selective_scan_fn
        state_update = importlib.import_module("mamba_ssm.ops.triton.selective_state_update")
        _kernels["selective_state_update"] = state_update.selective_state_update
    except Exception as err:  # a broken or mismatched build: report it instead of failing import minihymba
        _kernels.clear()
        _reason.append(f"importing mamba_ssm failed: {err!r}")
        return
    try:
        conv = importlib.import_module("causal_conv1d")
        _kernels["causal_conv1d_fn"] = conv.causal_conv1d_fn
        _kernels["causal_conv1d_update"] = conv.causal_conv1d_update
    except Exception:  # the conv kernel is optional on top of the scan kernel
        pass


def available() -> bool:
    """True when mamba-ssm's scan kernel imports and CUDA is available."""
    _load()
    return "selective_scan_fn" in _kernels


def unavailable_reason() -> str:
    """Why :func:`available` is False ('' when it is True)."""
    _load()
    return "; ".join(_reason)


def conv_available() -> bool:
    """True when causal-conv1d's kernels import as well (on top of :func:`available`)."""
    return available() and "causal_conv1d_fn" in _kernels


def scan_covers(length: int, has_state: bool) -> bool:
    """Whether the scan kernel can run a call of ``length`` steps starting from a given state or not."""
    return not has_state or length == 1


def conv_covers(length: int, has_state: bool, padded: bool) -> bool:
    """Whether the convolution kernels can run a call (no padding; from zero, or one step from a state)."""
    return not padded and (not has_state or length == 1)


def selective_scan_cuda(
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
    """mamba-ssm's fused selective scan with :func:`~minihymba.ssm.selective_scan_ref`'s contract."""
    if not available():
        raise RuntimeError(f"the CUDA selective scan is unavailable: {unavailable_reason()}")
    if not _on_gpu(x):
        raise ValueError("selective_scan_cuda needs CUDA tensors; use another scan on CPU")
    length = x.shape[1]
    if return_all_states or not scan_covers(length, h0 is not None):
        raise ValueError(
            "the CUDA scan kernel covers a scan from a zero state or one step from a given state, without "
            f"return_all_states (got L={length}, initial state: {h0 is not None}, "
            f"return_all_states={return_all_states}); use Impl(scan='auto') or another scan"
        )
    D32 = None if D is None else D.float()
    if h0 is not None and length == 1:  # a decode step: update the state in place
        h = h0.float().clone()  # (Bt, I, N)
        y = _kernels["selective_state_update"](
            h,
            x[:, 0],
            dt[:, 0].to(x.dtype),
            A.float(),
            B[:, 0].to(x.dtype),
            C[:, 0].to(x.dtype),
            D=D32,
            z=None if z is None else z[:, 0],
        )  # (Bt, I)
        return y[:, None].to(x.dtype), h
    y, h = _kernels["selective_scan_fn"](
        _channels_first(x),
        _channels_first(dt.to(x.dtype)),
        A.float().contiguous(),
        _channels_first(B.to(x.dtype)),
        _channels_first(C.to(x.dtype)),
        D32,
        None if z is None else _channels_first(z),
        return_last_state=True,
    )  # y (Bt, I, L), h (Bt, I, N)
    return y.transpose(1, 2).to(x.dtype), h.float()


def _on_gpu(t: Tensor) -> bool:
    return t.is_cuda


def _channels_first(t: Tensor) -> Tensor:  # (Bt, L, C) -> (Bt, C, L), contiguous
    return t.transpose(1, 2).contiguous()


def causal_conv1d_cuda(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    state: Tensor | None = None,
    valid: Tensor | None = None,
    activation: bool = True,
) -> tuple[Tensor, Tensor]:
    """causal-conv1d's kernels with :func:`~minihymba.ssm.causal_conv1d`'s contract (y, new_state)."""
    bt, length, width = x.shape
    k = weight.shape[-1]
    if not conv_available():
        raise RuntimeError(
            f"the CUDA convolution is unavailable: {unavailable_reason() or 'no causal-conv1d'}"
        )
    if not _on_gpu(x):
        raise ValueError("causal_conv1d_cuda needs CUDA tensors; use the 'ref' convolution on CPU")
    if not conv_covers(length, state is not None, valid is not None):
        raise ValueError(
            "the CUDA convolution kernels cover unpadded calls from a zero state or one step from a state "
            f"(got L={length}, state: {state is not None}, padding: {valid is not None}); use "
            "Impl(conv='auto') or conv='ref'"
        )
    act = "silu" if activation else None
    w = weight.to(x.dtype).contiguous()
    b = None if bias is None else bias.to(x.dtype)
    if state is not None:  # one decode step: the kernel shifts the state and appends x in place
        new_state = state.to(x.dtype).clone()  # (Bt, I, K)
        y = _kernels["causal_conv1d_update"](x[:, 0].contiguous(), new_state, w, b, activation=act)  # (Bt, I)
        return y[:, None].to(x.dtype), new_state
    y = _kernels["causal_conv1d_fn"](x.transpose(1, 2).contiguous(), w, b, activation=act)  # (Bt, I, L)
    history = torch.cat([x.new_zeros(bt, k, width), x], dim=1)[:, -k:]  # (Bt, K, I): the last K inputs
    return y.transpose(1, 2).to(x.dtype), history.transpose(1, 2).contiguous()
