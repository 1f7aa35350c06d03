"""analysis: the attention statistics on hand-made attention maps whose answers are known."""

from __future__ import annotations

import pytest
import torch

from minihymba.analysis import induction_score, offset_profile, previous_token_score, sink_mass
from minihymba.masks import hymba_mask_mod, materialize

M, W = 3, 4


def uniform_probs(mask: torch.Tensor, heads: int = 2) -> torch.Tensor:
    p = mask.float() / mask.sum(-1, keepdim=True)
    return p[None, None].expand(1, heads, *mask.shape).clone()


def one_hot_probs(mask: torch.Tensor, target) -> torch.Tensor:
    """Every query q puts all its mass on key target(q) (when visible; else on itself)."""
    s = mask.shape[0]
    p = torch.zeros(1, 1, s, s)
    for q in range(s):
        k = target(q)
        p[0, 0, q, k if 0 <= k <= q and mask[q, k] else q] = 1.0
    return p


@pytest.mark.parametrize("window", [None, W])
def test_uniform_attention_scores_one_per_key(window):
    mask = materialize(hymba_mask_mod(window, M), M + 12)[0]
    stats = sink_mass(uniform_probs(mask), mask, M)
    torch.testing.assert_close(stats.meta_per_key, torch.ones(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(stats.first_per_key, torch.ones(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(stats.meta, stats.uniform_meta, atol=1e-6, rtol=0)
    score, uniform = previous_token_score(uniform_probs(mask), mask, M)
    torch.testing.assert_close(score, uniform, atol=1e-6, rtol=0)


def test_a_first_token_sink_and_a_meta_sink():
    mask = materialize(hymba_mask_mod(W, M), M + 12)[0]
    first = sink_mass(one_hot_probs(mask, lambda q: M), mask, M)  # every query reads the first real token
    assert float(first.first[0]) == pytest.approx(1.0) and float(first.meta[0]) == 0.0
    assert float(first.first_per_key[0]) > 5  # far above the uniform share
    meta = sink_mass(one_hot_probs(mask, lambda q: 0), mask, M)  # every query reads meta token 0
    assert float(meta.meta[0]) == pytest.approx(1.0) and float(meta.meta_per_key[0]) > 1.0


def test_previous_token_and_offset_profile():
    mask = materialize(hymba_mask_mod(W, M), M + 12)[0]
    probs = one_hot_probs(mask, lambda q: q - 1)
    score, uniform = previous_token_score(probs, mask, M)
    assert float(score[0]) == pytest.approx(1.0) and float(uniform[0]) < 0.5
    profile, _ = offset_profile(probs, mask, M, max_offset=W)
    assert int(profile[0].argmax()) == 1 and float(profile[0, 1]) == pytest.approx(1.0)


def test_induction_score():
    n = 5
    s = M + 1 + 2 * n
    mask = materialize(hymba_mask_mod(W, M), s)[0]  # n - 1 = 4 = W: every target is visible
    induction = one_hot_probs(mask, lambda q: q - n + 1)  # the token after the previous occurrence
    score, uniform = induction_score(induction, mask, M, n)
    assert float(score[0]) == pytest.approx(1.0) and float(uniform[0]) < 0.5
    score, _ = induction_score(one_hot_probs(mask, lambda q: q - 1), mask, M, n)
    assert float(score[0]) == 0.0  # a previous-token head is not an induction head
    with pytest.raises(ValueError, match="expected S"):
        induction_score(induction, mask, M, n + 1)


def test_kind_mass_against_uniform_and_a_one_kind_head():
    from minihymba.analysis import kind_mass

    mask = materialize(hymba_mask_mod(W, M), M + 12)[0]
    kinds = ["meta"] * M + ["even" if i % 2 == 0 else "odd" for i in range(12)]
    rows = list(range(M + 4, M + 12))
    mass, uniform = kind_mass(uniform_probs(mask), mask, kinds, rows)
    for kind in ("meta", "even", "odd"):  # uniform attention gets exactly the uniform share
        torch.testing.assert_close(mass[kind], torch.full((2,), uniform[kind]), atol=1e-6, rtol=0)
    assert sum(uniform.values()) == pytest.approx(1.0)
    back2 = one_hot_probs(mask, lambda q: q - 2)  # offset 2 keeps the parity of the query
    even_rows = [q for q in rows if (q - M) % 2 == 0]
    mass, _ = kind_mass(back2, mask, kinds, even_rows)
    assert float(mass["even"][0]) == pytest.approx(1.0) and float(mass["odd"][0]) == 0.0
    with pytest.raises(ValueError, match="kinds"):
        kind_mass(back2, mask, kinds[:-1], rows)
