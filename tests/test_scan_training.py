"""The compiled chunked scan (:mod:`minihymba.scan_compiled`) against the reference, with gradients.

* gradcheck of :class:`~minihymba.scan_compiled.ChunkedScan` in float64 (finite differences, tiny sizes,
  chunks of 2 steps so that boundaries and a padded last chunk are crossed);
* parity with :func:`~minihymba.ssm.selective_scan_ref` through autograd in float32: y, h_last and the
  gradient of every input (x, dt, A, B, C, D, z, h0), atol 1e-5 / rtol 1e-4 (only the summation order
  differs; values of order 1, gradients up to ~1e2);
* bit-identical results and gradients from two runs; the errors when it cannot run; the "auto" policy.

One shape (batch 2, width 6, state 4) throughout, so the process compiles each chunk graph once.
"""

from __future__ import annotations

import pytest
import torch

from minihymba import scan_compiled
from minihymba.impl import COMPILED_MIN_LENGTH, Impl, choose_scan
from minihymba.scan_compiled import ChunkedScan, compiled_scan_available, selective_scan_compiled
from minihymba.ssm import random_scan_inputs, selective_scan_ref

pytestmark = pytest.mark.skipif(not compiled_scan_available("cpu"), reason="no C++ compiler found")

GRAD_TOL = dict(atol=1e-5, rtol=1e-4)
NAMES = ("x", "dt", "A", "B", "C", "D", "z", "h0")


def _grads(scan, args, with_h0: bool, seed: int = 0):
    """y, h_last and d(loss)/d(every input) for a random linear loss of y and h_last."""
    leaves = [t.clone().requires_grad_() for t in args]
    if not with_h0:
        leaves[-1] = None
    y, h = scan(*leaves)
    g = torch.Generator().manual_seed(seed)
    loss = (y * torch.randn(y.shape, generator=g)).sum() + (h * torch.randn(h.shape, generator=g)).sum()
    wrt = [t for t in leaves if t is not None]
    return y, h, torch.autograd.grad(loss, wrt)


@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("length", [1, 8, 13, 40])  # inside one chunk / exactly one / padded / several
def test_outputs_and_all_gradients_match_reference(length, with_h0):
    args = random_scan_inputs(2, length, 6, 4, seed=length)
    y, h, grads = _grads(selective_scan_compiled, args, with_h0)
    y_ref, h_ref, grads_ref = _grads(selective_scan_ref, args, with_h0)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
    for name, got, want in zip(NAMES, grads, grads_ref, strict=False):
        torch.testing.assert_close(got, want, **GRAD_TOL, msg=lambda m, n=name: f"d/d{n}: {m}")
        if not (name == "A" and length == 1 and not with_h0):  # dA = 0 then: h_{-1} = 0
            assert got.abs().max() > 0, name  # every input really receives a gradient


def test_gradients_flow_to_bf16_inputs():
    """bf16 activations: the scan runs in float32 and the gradients come back in each input's dtype."""
    x, dt, A, B, C, D, z, h0 = random_scan_inputs(2, 13, 6, 4, seed=3)
    args = [x.bfloat16(), dt, A, B.bfloat16(), C.bfloat16(), D, z.bfloat16(), h0]
    leaves = [t.clone().requires_grad_() for t in args]
    y, h = selective_scan_compiled(*leaves)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32
    grads = torch.autograd.grad(y.float().sum() + h.sum(), leaves)
    assert [g.dtype for g in grads] == [t.dtype for t in args]


def test_chunked_scan_passes_gradcheck():
    """ChunkedScan's compiled backward against finite differences, float64, chunks of 2 over 5 steps."""
    x, dt, A, B, C, _, _, h0 = random_scan_inputs(2, 5, 3, 2, seed=5, dtype=torch.float64)
    args = [t.double().requires_grad_() for t in (x, dt, A, B, C, h0)]
    assert torch.autograd.gradcheck(lambda *a: ChunkedScan.apply(*a, 2), args)


def test_bit_identical_across_runs():
    args = random_scan_inputs(2, 40, 6, 4, seed=11)
    first = _grads(selective_scan_compiled, args, True)
    second = _grads(selective_scan_compiled, args, True)
    for a, b in zip((first[0], first[1], *first[2]), (second[0], second[1], *second[2]), strict=True):
        assert torch.equal(a, b)


def test_without_gradient_matches_with_gradient():
    """Inference (chunks of 32) and training (chunks of 8) compute the same scan."""
    args = random_scan_inputs(2, 40, 6, 4, seed=12)
    with torch.no_grad():
        y_inf, h_inf = selective_scan_compiled(*args)
    y_train, h_train, _ = _grads(selective_scan_compiled, args, True)
    torch.testing.assert_close(y_inf, y_train.detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(h_inf, h_train.detach(), atol=1e-6, rtol=1e-6)


def test_all_states_are_refused_clearly():
    with pytest.raises(ValueError, match="cannot return all states"):
        selective_scan_compiled(*random_scan_inputs(1, 4, 6, 4), return_all_states=True)


def test_without_compiler_raises_and_auto_runs_fused(monkeypatch):
    """No C++ compiler: an explicit 'compiled' fails saying why; "auto" picks 'fused' (the policy table)."""
    scan_compiled.compiled_scan_unavailable_reason.cache_clear()
    monkeypatch.setattr(scan_compiled, "_cpp_compiler", lambda: None)
    try:
        with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
            selective_scan_compiled(*random_scan_inputs(1, 4, 6, 4))
        cpu = torch.device("cpu")
        assert choose_scan(Impl(), device=cpu, length=512, has_state=False, needs_grad=True) == "fused"
    finally:
        scan_compiled.compiled_scan_unavailable_reason.cache_clear()


@pytest.mark.parametrize(
    ("length", "needs_grad", "all_states", "expected"),
    [
        (COMPILED_MIN_LENGTH, False, False, "compiled"),  # a long inference call
        (COMPILED_MIN_LENGTH - 1, False, False, "fused"),  # short
        (1, False, False, "fused"),  # a decode step
        (1, True, False, "compiled"),  # any training call
        (COMPILED_MIN_LENGTH, False, True, "fused"),  # every state asked for
    ],
)
def test_auto_policy_on_cpu(length, needs_grad, all_states, expected):
    cpu = torch.device("cpu")
    kwargs = dict(device=cpu, length=length, has_state=False, needs_grad=needs_grad, all_states=all_states)
    assert choose_scan(Impl(), **kwargs) == expected
    assert choose_scan(Impl(scan="ref"), **kwargs) == "ref"  # an explicit name is never re-routed


def test_model_training_gradients_auto_equal_reference(tiny_model, monkeypatch):
    """A training forward + backward of the tiny model: "auto" runs the compiled scan in every layer and
    gives the reference scan's parameter gradients (atol 1e-5 / rtol 1e-4, float32 summation order)."""
    import minihymba.scans as scans

    seen: list[str] = []
    real = scans.scan_function

    def spy(name):
        seen.append(name)
        return real(name)

    monkeypatch.setattr(scans, "scan_function", spy)
    ids = torch.randint(0, tiny_model.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    grads = {}
    for impl in (Impl(scan="ref"), Impl()):
        tiny_model.zero_grad()
        tiny_model(ids, impl=impl).logits.square().mean().backward()
        grads[impl.scan] = {n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None}
    assert set(seen[tiny_model.config.num_layers :]) == {"compiled"}
    assert grads["auto"].keys() == grads["ref"].keys()
    for name, grad in grads["auto"].items():
        torch.testing.assert_close(grad, grads["ref"][name], **GRAD_TOL, msg=lambda m, n=name: f"{n}: {m}")
