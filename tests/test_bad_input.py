"""Bad inputs to the model's forward raise clear TypeError/ValueError (matched on their message text)."""

from __future__ import annotations

import pytest
import torch

from minihymba.impl import Impl


def ids(*shape: int) -> torch.Tensor:
    return torch.randint(3, 200, shape)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.tensor([[5, 256, 7]]), r"token id 256, outside the vocabulary \[0, 256\)"),
        (torch.tensor([[5, 1000]]), r"token id 1000, outside the vocabulary"),
        (torch.tensor([[-1, 5]]), r"token id -1, outside the vocabulary"),
        (torch.zeros(1, 0, dtype=torch.long), r"input_ids is empty"),
        (torch.zeros(0, 4, dtype=torch.long), r"input_ids is empty"),
        (torch.tensor([5, 6, 7]), r"input_ids must have shape \(batch, tokens\), got \(3,\)"),
        (
            torch.ones(1, 2, 3, dtype=torch.long),
            r"input_ids must have shape \(batch, tokens\), got \(1, 2, 3\)",
        ),
    ],
)
def test_bad_input_ids_value(fixture_model, bad, message):
    with pytest.raises(ValueError, match=message):
        fixture_model(bad)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.tensor([[5.0, 6.0]]), r"input_ids must be an integer tensor, got dtype torch.float32"),
        (torch.tensor([[True, False]]), r"input_ids must be an integer tensor, got dtype torch.bool"),
        ([[5, 6]], r"input_ids must be a torch.Tensor, got list"),
    ],
)
def test_bad_input_ids_type(fixture_model, bad, message):
    with pytest.raises(TypeError, match=message):
        fixture_model(bad)


@pytest.mark.parametrize(
    ("mask", "error", "message"),
    [
        (
            torch.ones(2, 4, dtype=torch.long),
            ValueError,
            r"attention_mask shape \(2, 4\) does not match input_ids shape \(2, 5\)",
        ),  # noqa: E501
        (torch.ones(5, dtype=torch.long), ValueError, r"attention_mask shape \(5,\) does not match"),
        (
            torch.tensor([[1, 1, 2, 1, 1]] * 2),
            ValueError,
            r"attention_mask must hold only 0 \(padding\) and 1",
        ),
        (
            torch.tensor([[1, 1, -1, 1, 1]] * 2),
            ValueError,
            r"attention_mask must hold only 0 \(padding\) and 1",
        ),
        (
            torch.ones(2, 5),
            ValueError,
            r"attention_mask must hold only 0 \(padding\) and 1 \(token\) integers or bools",
        ),  # noqa: E501
        ([[1] * 5] * 2, TypeError, r"attention_mask must be a torch.Tensor, got list"),
    ],
)
def test_bad_attention_mask(fixture_model, mask, error, message):
    with pytest.raises(error, match=message):
        fixture_model(ids(2, 5), attention_mask=mask)


def test_good_masks_are_accepted(fixture_model):
    x = ids(2, 5)
    with torch.no_grad():
        plain = fixture_model(x).logits
        for mask in (
            torch.ones(2, 5, dtype=torch.long),
            torch.ones(2, 5, dtype=torch.bool),
            torch.ones(2, 5, dtype=torch.int32),
        ):
            torch.testing.assert_close(fixture_model(x, attention_mask=mask).logits, plain, atol=0, rtol=0)


def test_cache_batch_mismatch(fixture_model):
    cache = fixture_model.new_cache(2)
    with pytest.raises(ValueError, match=r"cache was made for batch size 2, input_ids has 3 rows"):
        fixture_model(ids(3, 4), cache=cache)


def test_unknown_impls(fixture_model):
    with pytest.raises(ValueError, match=r"Impl.attention='flash' is not an implementation"):
        Impl(attention="flash")
    with pytest.raises(ValueError, match=r"Impl.scan='fancy' is not an implementation"):
        Impl(scan="fancy")
    with pytest.raises(ValueError, match=r"Impl.conv='fast' is not an implementation"):
        Impl(conv="fast")


def test_explicit_impl_never_silently_substituted(fixture_model):
    """An explicit choice runs or fails saying why: maps need eager; flex has no CPU backward."""
    x = ids(1, 6)
    with pytest.raises(ValueError, match=r"come only from the eager reference"):
        fixture_model(x, output_attentions=True, impl=Impl(attention="flex"))
    embed = fixture_model.model.embed_tokens.weight
    embed.requires_grad_(True)
    try:
        with pytest.raises(RuntimeError, match=r"FlexAttention has no backward on CPU"):
            fixture_model(x, impl=Impl(attention="flex"))
    finally:
        embed.requires_grad_(False)
