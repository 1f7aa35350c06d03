"""Synthetic tasks: documented token layouts, targets, determinism, accuracy helper, bad input."""

from __future__ import annotations

import pytest
import torch

from minihymba.tasks import (
    BOS,
    IGNORE,
    NEEDLE,
    SEP,
    accuracy,
    associative_recall,
    copying,
    make_task,
    mqar,
    noisy_needle,
    vocab_ranges,
)


def _value_of(row: torch.Tensor, key: int, num_pairs: int) -> int:
    """The value stored after ``key`` in the pair section of a recall row (BOS k1 v1 ...)."""
    pairs = row[1 : 1 + 2 * num_pairs].view(num_pairs, 2)
    (hit,) = (pairs[:, 0] == key).nonzero()[:, 0].tolist()
    return int(pairs[hit, 1])


def test_mqar_layout():
    p, q, t, v = 5, 3, 30, 40
    ids, targets = mqar(4, num_pairs=p, num_queries=q, seq_len=t, vocab_size=v, seed=1)
    keys, values = vocab_ranges(v)
    assert ids.shape == targets.shape == (4, t)
    for row, tgt in zip(ids, targets, strict=True):
        assert row[0] == BOS and row[t - 2 * q - 1] == SEP
        pair_keys = row[1 : 1 + 2 * p : 2]
        assert len(set(pair_keys.tolist())) == p and all(k in keys for k in pair_keys.tolist())
        assert all(x in values for x in row[2 : 2 + 2 * p : 2].tolist())
        assert all(x in values for x in row[1 + 2 * p : t - 2 * q - 1].tolist())  # filler
        scored = (tgt != IGNORE).nonzero()[:, 0]
        assert scored.tolist() == list(range(t - 2 * q, t, 2))
        for pos in scored.tolist():
            key = int(row[pos])
            assert tgt[pos] == row[pos + 1] == _value_of(row, key, p)


def test_associative_recall_layout():
    ids, targets = associative_recall(3, num_pairs=4, vocab_size=32, seed=2)
    assert ids.shape == (3, 11)
    assert (ids[:, -2] == SEP).all()
    assert ((targets != IGNORE).nonzero()[:, 1] == 10).all()
    for row, tgt in zip(ids, targets, strict=True):
        assert tgt[-1] == _value_of(row, int(row[-1]), 4)
        assert tgt[-1] not in row[-2:].tolist()  # the answer is not given


def test_copying_layout():
    ids, targets = copying(2, copy_len=6, vocab_size=20, seed=0)
    assert ids.shape == (2, 14)
    assert (ids[:, 0] == BOS).all() and (ids[:, 7] == SEP).all()
    assert torch.equal(ids[:, 1:7], ids[:, 8:])
    # the target at column t is the next input token, on the copy part only
    assert torch.equal(targets[:, 7:13], ids[:, 8:14])
    assert (targets[:, :7] == IGNORE).all() and (targets[:, 13] == IGNORE).all()


def test_noisy_needle_layout():
    t = 24
    ids, targets = noisy_needle(16, seq_len=t, vocab_size=40, seed=5)
    assert ids.shape == (16, t)
    starts = set()
    for row, tgt in zip(ids, targets, strict=True):
        (at,) = (row == NEEDLE).nonzero()[:, 0].tolist()  # exactly one needle
        starts.add(at)
        key, value = int(row[at + 1]), int(row[at + 2])
        assert row[0] == BOS and row[-2] == SEP and row[-1] == key
        assert (row == key).sum() == 2  # the needle's key and the query, nowhere in the noise
        assert tgt[-1] == value and (tgt[:-1] == IGNORE).all()
    assert len(starts) > 3  # the needle moves


@pytest.mark.parametrize("name", ["mqar", "recall", "copy", "needle"])
def test_seeded_and_deterministic(name):
    a = make_task(name, 4, seed=7)
    b = make_task(name, 4, seed=7)
    c = make_task(name, 4, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].dtype == torch.int64 and a[0].min() >= 0


def test_accuracy():
    targets = torch.tensor([[IGNORE, 3, IGNORE, 1]])
    logits = torch.zeros(1, 4, 5)
    logits[0, 1, 3] = 1.0  # right
    logits[0, 3, 2] = 1.0  # wrong
    logits[0, 0, 4] = 1.0  # unscored
    assert accuracy(logits, targets) == 0.5
    with pytest.raises(ValueError, match="no scored"):
        accuracy(logits, torch.full((1, 4), IGNORE))
    with pytest.raises(ValueError, match="disagree"):
        accuracy(logits, targets[:, :3])


def test_bad_input():
    with pytest.raises(ValueError, match="too short"):
        mqar(2, num_pairs=4, seq_len=10)
    with pytest.raises(ValueError, match="exceed"):
        mqar(2, num_pairs=2, num_queries=3)
    with pytest.raises(ValueError, match="distinct"):
        mqar(2, num_pairs=10, vocab_size=16)
    with pytest.raises(ValueError, match="vocab_size"):
        copying(2, vocab_size=5)
    with pytest.raises(ValueError, match="unknown task"):
        make_task("sort", 2, seed=0)
    with pytest.raises(ValueError, match="positive"):
        noisy_needle(0)
