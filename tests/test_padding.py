"""Left padding is exact: each row of a padded batch gives what it gives alone, whatever the pads hold.

Checked on the fixture model (windows clip: W=16, M=8) and on ``tiny_config`` (every layer kind, W=5, M=3).
"""

from __future__ import annotations

import torch

from minihymba.generation import left_pad

ATOL = 1e-4


def random_rows(vocab: int, lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=gen) for n in lengths]


@torch.no_grad()
def test_padded_rows_equal_rows_alone(either_model, attention_impl):
    model, impl = either_model, attention_impl
    rows = random_rows(model.config.vocab_size, [30, 21, 7, 1, 30])
    ids, mask = left_pad(rows)
    out = model(ids, attention_mask=mask, output_hidden_states=True, impl=impl)
    assert torch.isfinite(out.logits).all()
    for i, row in enumerate(rows):
        alone = model(row[None], output_hidden_states=True, impl=impl)
        n = len(row)
        where = f"row {i} (length {n})"
        torch.testing.assert_close(
            out.logits[i, -n:], alone.logits[0], atol=ATOL, rtol=0, msg=lambda m, where=where: f"{where}: {m}"
        )
        for layer, (padded_h, alone_h) in enumerate(zip(out.hidden_states, alone.hidden_states, strict=True)):
            where = f"row {i}, hidden_states.{layer}"
            torch.testing.assert_close(
                padded_h[i, -n:],
                alone_h[0, -n:],
                atol=ATOL,
                rtol=0,
                msg=lambda m, where=where: f"{where}: {m}",
            )


@torch.no_grad()
def test_pad_contents_do_not_matter(either_model):
    model = either_model
    rows = random_rows(model.config.vocab_size, [25, 9, 3], seed=1)
    ids, mask = left_pad(rows)
    base = model(ids, attention_mask=mask).logits
    gen = torch.Generator().manual_seed(2)
    for _ in range(2):
        other = ids.clone()
        other[mask == 0] = torch.randint(0, model.config.vocab_size, (int((mask == 0).sum()),), generator=gen)
        assert not torch.equal(other, ids)
        logits = model(other, attention_mask=mask).logits
        real = mask.bool()
        torch.testing.assert_close(logits[real], base[real], atol=0, rtol=0)


@torch.no_grad()
def test_padding_is_not_ignored_without_a_mask(tiny_model):
    """Sanity check that the tests above can fail: without the mask the pads do change the real tokens."""
    rows = random_rows(tiny_model.config.vocab_size, [12, 4], seed=3)
    ids, mask = left_pad(rows)
    unmasked = tiny_model(ids).logits
    alone = tiny_model(rows[1][None]).logits
    assert (unmasked[1, -4:] - alone[0]).abs().max() > 10 * ATOL


@torch.no_grad()
def test_all_ones_mask_is_no_mask(either_model):
    model = either_model
    ids = torch.stack(random_rows(model.config.vocab_size, [11, 11], seed=4))
    plain = model(ids).logits
    torch.testing.assert_close(model(ids, attention_mask=torch.ones_like(ids)).logits, plain, atol=0, rtol=0)


@torch.no_grad()
def test_fully_padded_row_and_right_padding(either_model):
    model = either_model
    """An all-padding row stays finite and harmless; right padding leaves the real prefix exact (causal)."""
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(3, model.config.vocab_size, (3, 12), generator=gen)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1] = 0  # nothing real in row 1
    mask[2, 7:] = 0  # right padding in row 2
    logits = model(ids, attention_mask=mask).logits
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits[0], model(ids[:1]).logits[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[2, :7], model(ids[2:3, :7]).logits[0], atol=ATOL, rtol=0)
