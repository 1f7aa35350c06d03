"""Which implementation runs: one small frozen record, passed per call, and the one ``"auto"`` policy.

Every computation in minihymba has a *reference* implementation (the definition, written to be read) and
may have faster ones that share its signature and are tested against it:

=========== ======================================================================================
attention   ``"eager"`` (reference: scores, mask, softmax written out; the only one that returns maps),
            ``"sdpa"`` (PyTorch's fused kernel), ``"flex"`` (FlexAttention run eagerly over a
            BlockMask: a correctness path), ``"flex_compiled"`` (FlexAttention compiled by
            ``torch.compile``; inference only on CPU)
scan        ``"ref"`` (reference loop), ``"fused"``, ``"compiled"``, ``"blelloch"``, ``"materialized"``,
            ``"cuda"`` (mamba-ssm's kernel) -- see :mod:`minihymba.scans`
conv        ``"ref"`` (reference), ``"cuda"`` (causal-conv1d's kernel)
=========== ======================================================================================

A name other than ``"auto"`` means exactly that implementation: it runs, or the call fails with an error
that says why (never a silent substitute). ``"auto"`` -- the default -- picks per call by the rules below;
this table is the only place those choices are made:

========= ============================================================= ===================================
choice    situation                                                     runs
========= ============================================================= ===================================
attention attention maps asked for (``output_attentions=True``)          ``"eager"``
attention one query per row on CPU (a decode step)                       ``"eager"`` (the fused kernel's
                                                                        fixed cost dominates one query)
attention CUDA, more than one query                                     ``"flex_compiled"``
attention otherwise                                                     ``"sdpa"``
scan      CUDA, mamba-ssm importable, the kernel covers the call         ``"cuda"``
scan      all states asked for (``return_all_states``)                   ``"fused"``
scan      CPU, a C++ compiler found, and a gradient needed (training)    ``"compiled"`` (chunked, compiled
                                                                        forward and backward)
scan      CPU, a C++ compiler found, L >= ``COMPILED_MIN_LENGTH`` (32)   ``"compiled"``
scan      otherwise: short calls and decode steps, no C++ compiler,      ``"fused"`` (no compile step)
          CUDA without mamba-ssm
conv      CUDA, causal-conv1d importable, the kernel covers the call     ``"cuda"``
conv      otherwise                                                     ``"ref"``
========= ============================================================= ===================================

What ``"compiled"`` costs and needs (:mod:`minihymba.scan_compiled`): ``torch.compile`` with a C++
compiler on CPU (``g++``/``clang++`` on PATH, or ``$CXX``;
:func:`~minihymba.scan_compiled.compiled_scan_available` checks).
The first call in a process for a new (batch, width, state size) compiles a forward chunk
(and, with a gradient, a backward chunk) once for every sequence length: tens of seconds on a cold cache,
1-3 s per graph once inductor's on-disk FX graph cache (``TORCHINDUCTOR_CACHE_DIR``, default
``/tmp/torchinductor_$USER``; on unless ``TORCHINDUCTOR_FX_GRAPH_CACHE=0``) holds the kernels. Without a
C++ compiler ``"auto"`` runs ``"fused"``; an explicit ``Impl(scan="compiled")`` raises RuntimeError.
On CUDA the compiled scan (Triton) is opt-in until it has been measured on a GPU.

``Impl.reference()`` is every reference at once (what the parity tests compare against).

Usage::

    model(ids, impl=Impl(attention="eager"))           # one call, reference attention
    generate(model, ids, max_new_tokens=8, impl=Impl.reference())
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "ATTENTION_IMPLS",
    "FLEX_IMPLS",
    "CONV_IMPLS",
    "COMPILED_MIN_LENGTH",
    "Impl",
    "choose_attention",
    "choose_scan",
    "choose_conv",
]

FLEX_IMPLS = ("flex", "flex_compiled")  # attention impls that read a BlockMask rather than a dense mask
ATTENTION_IMPLS = ("eager", "sdpa", *FLEX_IMPLS)
CONV_IMPLS = ("ref", "cuda")
COMPILED_MIN_LENGTH = 32  # "auto": inference calls at least this long run the compiled scan on CPU


@dataclass(frozen=True)
class Impl:
    """The implementation of each computation for one call (``"auto"``: the policy in the module doc)."""

    attention: str = "auto"
    scan: str = "auto"
    conv: str = "auto"

    def __post_init__(self) -> None:
        from .scans import SCAN_NAMES

        for field, allowed in (("attention", ATTENTION_IMPLS), ("scan", SCAN_NAMES), ("conv", CONV_IMPLS)):
            value = getattr(self, field)
            if value != "auto" and value not in allowed:
                raise ValueError(
                    f"Impl.{field}={value!r} is not an implementation; choose 'auto' or one of {allowed}"
                )

    @classmethod
    def reference(cls) -> Impl:
        """Every computation by its reference implementation (eager attention, reference scan and conv)."""
        return cls(attention="eager", scan="ref", conv="ref")


def choose_attention(impl: Impl, *, queries: int, device: torch.device, need_probs: bool) -> str:
    """The attention implementation for one call (resolves ``"auto"``; checks an explicit choice)."""
    name = impl.attention
    if name == "auto":
        if need_probs or (queries == 1 and device.type == "cpu"):
            return "eager"
        return "flex_compiled" if device.type == "cuda" and queries > 1 else "sdpa"
    if need_probs and name != "eager":
        raise ValueError(
            f"attention maps (output_attentions=True) come only from the eager reference, but "
            f"Impl(attention={name!r}) was asked for: use Impl(attention='eager') or 'auto'"
        )
    return name


def choose_scan(
    impl: Impl,
    *,
    device: torch.device,
    length: int,
    has_state: bool,
    needs_grad: bool = False,
    all_states: bool = False,
) -> str:
    """The selective-scan implementation for one call (resolves ``"auto"`` by the table above).

    ``needs_grad``: autograd will differentiate the scan (training); ``all_states``: every state is asked
    for (``return_all_states``).
    """
    if impl.scan != "auto":
        return impl.scan
    if device.type == "cuda":
        from . import kernels

        if not all_states and kernels.available() and kernels.scan_covers(length, has_state):
            return "cuda"
        return "fused"
    if all_states:
        return "fused"
    if needs_grad or length >= COMPILED_MIN_LENGTH:
        from .scan_compiled import compiled_scan_available

        if compiled_scan_available(device):
            return "compiled"
    return "fused"


def choose_conv(impl: Impl, *, device: torch.device, length: int, has_state: bool, padded: bool) -> str:
    """The causal-convolution implementation for one call (resolves ``"auto"``)."""
    if impl.conv != "auto":
        return impl.conv
    if device.type == "cuda":
        from . import kernels

        if kernels.conv_available() and kernels.conv_covers(length, has_state, padded):
            return "cuda"
    return "ref"
