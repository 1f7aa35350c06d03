"""Optional CUDA kernels: mamba-ssm's selective scan and causal-conv1d's convolution, behind guarded imports.

Nothing here is imported by ``import minihymba``. ``ssm.selective_scan(..., impl="cuda")`` imports this
module on first use and calls :func:`register`, which adds ``"cuda"`` to ``ssm.SCAN_IMPLS`` (and to
``ssm.CONV_IMPLS`` when causal-conv1d is present) only if CUDA is available *and* the compiled extension
modules import. Install them on a CUDA machine with ``pip install --no-build-isolation mamba-ssm
causal-conv1d`` (the ``gpu`` extra); on a CPU-only machine they cannot be built usefully.

The kernels take channels-first tensors (Bt, I, L); minihymba keeps time in the middle (Bt, L, I). The
wrappers transpose in and out so they share the signatures of :func:`minihymba.ssm.selective_scan_ref` and
:func:`minihymba.ssm.causal_conv1d`. Cases a kernel does not cover fall back to the pure-PyTorch path:

* scan with an initial state and L > 1 (``selective_scan_fn`` always starts from zero): the fused loop;
* scan with an initial state and L = 1 (a decode step): mamba-ssm's ``selective_state_update``;
* convolution with padding (``valid``), or with a state and L > 1: the reference convolution.

Shapes: x, dt, z (Bt, L, I); A (I, N); B, C (Bt, L, N); D (I,); h (Bt, I, N); conv weight (I, K),
conv state (Bt, I, K).
"""

from __future__ import annotations

import importlib
import importlib.util

import torch
from torch import Tensor

from . import ssm
from .scan_fast import selective_scan_fused

__all__ = ["available", "unavailable_reason", "register", "selective_scan_cuda", "causal_conv1d_cuda"]

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


def register() -> bool:
    """Add ``"cuda"`` to ``ssm.SCAN_IMPLS`` (and ``ssm.CONV_IMPLS``) if the kernels work; -> available()."""
    if not available():
        return False
    ssm.SCAN_IMPLS["cuda"] = selective_scan_cuda
    if "causal_conv1d_fn" in _kernels:
        ssm.CONV_IMPLS["cuda"] = causal_conv1d_cuda
    return True


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
        raise ValueError("selective_scan_cuda needs CUDA tensors; use impl='fused' on CPU")
    if return_all_states:  # the kernel keeps its states on chip; only the reference can return them
        return ssm.selective_scan_ref(x, dt, A, B, C, D, z, h0, return_all_states=True)
    length = x.shape[1]
    D32 = None if D is None else D.float()
    if h0 is not None and length == 1:  # a decode step: update the state in place
        h = h0.float().clone()  # (Bt, I, N)
        y = _kernels["selective_state_update"](
            h, x[:, 0], dt[:, 0].to(x.dtype), A.float(), B[:, 0].to(x.dtype), C[:, 0].to(x.dtype),
            D=D32, z=None if z is None else z[:, 0],
        )  # fmt: skip  # (Bt, I)
        return y[:, None].to(x.dtype), h
    if h0 is not None or length == 0:  # the kernel cannot start from a given state
        return selective_scan_fused(x, dt, A, B, C, D, z, h0)
    y, h = _kernels["selective_scan_fn"](
        _channels_first(x), _channels_first(dt.to(x.dtype)), A.float().contiguous(),
        _channels_first(B.to(x.dtype)), _channels_first(C.to(x.dtype)), D32,
        None if z is None else _channels_first(z), return_last_state=True,
    )  # fmt: skip  # y (Bt, I, L), h (Bt, I, N)
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
    uncovered = valid is not None or (state is not None and length != 1)
    if "causal_conv1d_fn" not in _kernels or not _on_gpu(x) or uncovered:
        return ssm.causal_conv1d(x, weight, bias, state, valid, activation)
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
