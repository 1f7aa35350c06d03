"""The registry of selective scans and causal convolutions: one name -> one function, one contract.

Every scan has the signature and the result of :func:`minihymba.ssm.selective_scan_ref` (the definition);
every convolution that of :func:`minihymba.ssm.causal_conv1d`. The tests run each registered scan against
the reference. Which one a model call uses is decided by :class:`minihymba.impl.Impl` (explicit name, or
the ``"auto"`` policy documented there), never here.

==============  ==========================================================================================
scan            what it is
==============  ==========================================================================================
``ref``         :func:`~minihymba.ssm.selective_scan_ref`: the recurrence, one time step at a time
``fused``       :func:`~minihymba.scan_fast.selective_scan_fused`: discretise inside the loop, buffers
                reused (CPU fast path; with gradients it runs its hand-written backward)
``compiled``    :func:`~minihymba.scan_compiled.selective_scan_compiled`: fixed-size chunks of steps
                compiled by ``torch.compile`` (one C++ kernel each), with a compiled chunked backward
                (needs a C++ compiler; RuntimeError without one)
``blelloch``    :func:`~minihymba.scan_fast.selective_scan_blelloch`: the parallel prefix scan (log depth)
``materialized``:func:`~minihymba.scan_fast.selective_scan_materialized`: the textbook form that builds
                (Bt, I, L, N) tensors first (the benchmark baseline)
``cuda``        :func:`~minihymba.kernels.selective_scan_cuda`: mamba-ssm's kernel (CUDA, ``gpu`` extra)
==============  ==========================================================================================

Convolutions: ``ref`` (:func:`~minihymba.ssm.causal_conv1d`) and ``cuda`` (causal-conv1d's kernel).
The CUDA entries are looked up only when asked for, so ``import minihymba`` never imports the kernels.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from . import scan_compiled, scan_fast, ssm

__all__ = ["SCAN_NAMES", "CONV_NAMES", "scan_function", "conv_function", "selective_scan", "causal_conv1d"]

_CPU_SCANS: dict[str, Callable[..., tuple[Tensor, ...]]] = {
    "ref": ssm.selective_scan_ref,
    "fused": scan_fast.selective_scan_fused,
    "compiled": scan_compiled.selective_scan_compiled,
    "blelloch": scan_fast.selective_scan_blelloch,
    "materialized": scan_fast.selective_scan_materialized,
}
SCAN_NAMES = (*_CPU_SCANS, "cuda")
CONV_NAMES = ("ref", "cuda")


def _kernels():
    """minihymba.kernels, after checking that the CUDA kernels can run (RuntimeError saying why not)."""
    from . import kernels

    if not kernels.available():
        raise RuntimeError(f"the 'cuda' implementation is unavailable: {kernels.unavailable_reason()}")
    return kernels


def scan_function(name: str) -> Callable[..., tuple[Tensor, ...]]:
    """The scan registered as ``name`` (ValueError naming the choices for an unknown name)."""
    if name in _CPU_SCANS:
        return _CPU_SCANS[name]
    if name == "cuda":
        return _kernels().selective_scan_cuda
    raise ValueError(f"unknown scan implementation {name!r}; choose one of {SCAN_NAMES}")


def conv_function(name: str) -> Callable[..., tuple[Tensor, Tensor]]:
    """The causal convolution registered as ``name``."""
    if name == "ref":
        return ssm.causal_conv1d
    if name == "cuda":
        kernels = _kernels()
        if not kernels.conv_available():
            raise RuntimeError("the 'cuda' convolution is unavailable: causal-conv1d is not installed")
        return kernels.causal_conv1d_cuda
    raise ValueError(f"unknown convolution implementation {name!r}; choose one of {CONV_NAMES}")


def selective_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    h0: Tensor | None = None,
    *,
    impl: str = "ref",
) -> tuple[Tensor, Tensor]:
    """Run the scan named ``impl``: ``(y, h_last)`` as :func:`~minihymba.ssm.selective_scan_ref` defines."""
    return scan_function(impl)(x, dt, A, B, C, D, z, h0)[:2]


def causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    state: Tensor | None = None,
    valid: Tensor | None = None,
    *,
    impl: str = "ref",
) -> tuple[Tensor, Tensor]:
    """Run the convolution named ``impl``: ``(y, new_state)`` as :func:`~minihymba.ssm.causal_conv1d`."""
    return conv_function(impl)(x, weight, bias, state, valid)
