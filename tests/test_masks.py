"""Mask functions: the drawing in masks.py's docstring, window row counts, and the positional form."""

from __future__ import annotations

import pytest
import torch

from minihymba import masks
from minihymba.masks import causal, hymba_mask_mod, layer_mask_mod, materialize, positional_mask_mod


def docstring_triangle() -> torch.Tensor:
    """The 0/1 picture drawn in ``minihymba.masks.__doc__`` (rows of '1' and '.')."""
    rows = []
    for line in masks.__doc__.splitlines():
        cells = line.split()
        if cells and all(c in ("1", ".") for c in cells):
            rows.append([c == "1" for c in cells])
    return torch.tensor(rows)


def test_docstring_drawing_is_the_mask():
    drawn = docstring_triangle()
    assert drawn.shape == (7, 7), "the docstring should draw one 7 x 7 mask (M=2, W=2)"
    torch.testing.assert_close(materialize(hymba_mask_mod(2, 2), 7)[0], drawn, atol=0, rtol=0)


def expected_row_count(q: int, window: int, n_meta: int) -> int:
    """Visible keys of query q: itself and W before it, plus meta tokens that fell out of the window."""
    meta_outside = max(0, min(n_meta, q - window))
    return min(q + 1, window + 1 + meta_outside)


@pytest.mark.parametrize(
    ("window", "n_meta", "s"), [(2, 2, 7), (1, 0, 9), (4, 3, 20), (16, 8, 56), (5, 10, 12)]
)
def test_window_row_counts(window, n_meta, s):
    mask = materialize(hymba_mask_mod(window, n_meta), s)[0]
    counts = mask.sum(-1).tolist()
    assert counts == [expected_row_count(q, window, n_meta) for q in range(s)]
    assert bool((mask <= torch.ones(s, s, dtype=torch.bool).tril()).all())  # never sees the future
    assert bool(mask[:, :n_meta].tril().eq(torch.ones(s, min(n_meta, s), dtype=torch.bool).tril()).all())


def test_global_is_causal():
    torch.testing.assert_close(
        materialize(hymba_mask_mod(None, 4), 9)[0], torch.ones(9, 9, dtype=torch.bool).tril(), atol=0, rtol=0
    )
    torch.testing.assert_close(
        materialize(causal, 5, 5, batch=3), torch.ones(3, 5, 5, dtype=torch.bool).tril()
    )


def rule_written_out(layer_is_global: bool, window: int, n_meta: int, s: int) -> torch.Tensor:
    """The paper's rule as a plain double loop, independent of minihymba.masks: (S, S) bool."""
    mask = torch.zeros(s, s, dtype=torch.bool)
    for q in range(s):
        for k in range(s):
            if k > q:
                continue  # causal: never a later position
            mask[q, k] = layer_is_global or k < n_meta or q - k <= window  # meta always, else within W
    return mask


def test_layer_mask_mod_against_the_rule_written_out(tiny_config):
    cfg, s = tiny_config, 15
    for layer in range(cfg.num_layers):
        expected = rule_written_out(layer in cfg.global_layers, cfg.sliding_window, cfg.num_meta_tokens, s)
        torch.testing.assert_close(materialize(layer_mask_mod(cfg, layer), s)[0], expected, atol=0, rtol=0)
    assert not torch.equal(materialize(layer_mask_mod(cfg, 0), s), materialize(layer_mask_mod(cfg, 1), s))


@pytest.mark.parametrize(
    ("window", "n_meta", "seq_len"), [(5, 3, 0), (5, 3, 4), (5, 3, 5), (5, 3, 40), (1, 0, 9)]
)
def test_cache_keeps_what_the_next_query_sees(window, n_meta, seq_len):
    """still_visible / keys_kept: the keys the query after M + T columns can see, by the loop above."""
    s = n_meta + seq_len
    seen_by_next = rule_written_out(False, window, n_meta, s + 1)[s, :s]  # row of the next query
    torch.testing.assert_close(masks.still_visible(s, window, n_meta), seen_by_next, atol=0, rtol=0)
    assert masks.keys_kept(window, n_meta, seq_len) == n_meta + min(seq_len, window)
    assert masks.keys_kept(None, n_meta, seq_len) == s  # a global layer keeps everything


POSITIONAL_CASES = [(None, 3, 10), (2, 2, 7), (3, 0, 12), (4, 3, 20), (16, 8, 56), (1, 5, 9)]


@pytest.mark.parametrize(("window", "n_meta", "s"), POSITIONAL_CASES)
def test_positional_equals_index_form(window, n_meta, s):
    batch = 2
    pos = torch.arange(s).expand(batch, s)
    valid = torch.ones(batch, s, dtype=torch.bool)
    positional = materialize(positional_mask_mod(pos, pos, valid, window, n_meta), s, s, batch)
    torch.testing.assert_close(
        positional, materialize(hymba_mask_mod(window, n_meta), s, batch=batch), atol=0, rtol=0
    )
    # a decode-shaped call (the last 3 queries against all keys) gives the last rows
    q_pos = pos[:, -3:]
    decode = materialize(positional_mask_mod(q_pos, pos, valid, window, n_meta, q_offset=s - 3), 3, s, batch)
    torch.testing.assert_close(decode, positional[:, -3:], atol=0, rtol=0)


def test_positional_padding():
    """Left padding: pad keys are invisible, pad queries see only themselves, real rows shift unchanged."""
    window, n_meta, pads = 3, 2, 2
    valid = torch.tensor([[False] * pads + [True] * 8])  # (1, 10)
    pos = (valid.long().cumsum(1) - 1).clamp(min=0)
    mask = materialize(positional_mask_mod(pos, pos, valid, window, n_meta, q_valid=valid), 10)[0]
    assert not mask[pads:, :pads].any()  # no real query sees a pad key
    torch.testing.assert_close(mask[:pads], torch.eye(10, dtype=torch.bool)[:pads], atol=0, rtol=0)
    unpadded = materialize(hymba_mask_mod(window, n_meta), 8)[0]
    torch.testing.assert_close(mask[pads:, pads:], unpadded, atol=0, rtol=0)
