"""Bad inputs to the model's forward raise clear TypeError/ValueError (matched on their message text)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def model(fixture_model):
    return fixture_model


def ids(*shape: int) -> torch.Tensor:
    return torch.randint(3, 200, shape)


@pytest.mark.parametrize(("bad", "message"), [
    (torch.tensor([[5, 256, 7]]), r"token id 256, outside the vocabulary \[0, 256\)"),
    (torch.tensor([[5, 1000]]), r"token id 1000, outside the vocabulary"),
    (torch.tensor([[-1, 5]]), r"token id -1, outside the vocabulary"),
    (torch.zeros(1, 0, dtype=torch.long), r"input_ids is empty"),
    (torch.zeros(0, 4, dtype=torch.long), r"input_ids is empty"),
    (torch.tensor([5, 6, 7]), r"input_ids must have shape \(batch, tokens\), got \(3,\)"),
    (torch.ones(1, 2, 3, dtype=torch.long), r"input_ids must have shape \(batch, tokens\), got \(1, 2, 3\)"),
])  # fmt: skip
def test_bad_input_ids_value(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model(bad)


@pytest.mark.parametrize(("bad", "message"), [
    (torch.tensor([[5.0, 6.0]]), r"input_ids must be an integer tensor, got dtype torch.float32"),
    (torch.tensor([[True, False]]), r"input_ids must be an integer tensor, got dtype torch.bool"),
    ([[5, 6]], r"input_ids must be a torch.Tensor, got list"),
])  # fmt: skip
def test_bad_input_ids_type(model, bad, message):
    with pytest.raises(TypeError, match=message):
        model(bad)


@pytest.mark.parametrize(("mask", "error", "message"), [
    (torch.ones(2, 4, dtype=torch.long), ValueError, r"attention_mask shape \(2, 4\) does not match input_ids shape \(2, 5\)"),  # noqa: E501
    (torch.ones(5, dtype=torch.long), ValueError, r"attention_mask shape \(5,\) does not match"),
    (torch.tensor([[1, 1, 2, 1, 1]] * 2), ValueError, r"attention_mask must hold only 0 \(padding\) and 1"),
    (torch.tensor([[1, 1, -1, 1, 1]] * 2), ValueError, r"attention_mask must hold only 0 \(padding\) and 1"),
    (torch.ones(2, 5), ValueError, r"attention_mask must hold only 0 \(padding\) and 1 \(token\) integers or bools"),  # noqa: E501
    ([[1] * 5] * 2, TypeError, r"attention_mask must be a torch.Tensor, got list"),
])  # fmt: skip
def test_bad_attention_mask(model, mask, error, message):
    with pytest.raises(error, match=message):
        model(ids(2, 5), attention_mask=mask)


def test_good_masks_are_accepted(model):
    x = ids(2, 5)
    with torch.no_grad():
        plain = model(x).logits
        for mask in (torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.bool),
                     torch.ones(2, 5, dtype=torch.int32)):  # fmt: skip
            torch.testing.assert_close(model(x, attention_mask=mask).logits, plain, atol=0, rtol=0)


def test_cache_batch_mismatch(model):
    cache = model.new_cache(2)
    with pytest.raises(ValueError, match=r"cache was made for batch size 2, input_ids has 3 rows"):
        model(ids(3, 4), cache=cache)


def test_unknown_impls(model):
    model.attn_impl = "flash"
    try:
        with pytest.raises(ValueError, match=r"unknown attn_impl 'flash'"):
            model(ids(1, 3))
    finally:
        model.attn_impl = "sdpa"
    model.scan_impl = "fancy"
    try:
        with pytest.raises(ValueError, match=r"unknown scan impl 'fancy'"):
            model(ids(1, 3))
    finally:
        model.scan_impl = "ref"
