"""Synthetic recall tasks, generated in code: associative recall, MQAR, copying, noisy-needle retrieval.

Every generator returns ``(input_ids, targets)``, both (B, T) int64. ``targets[b, t]`` is the token the
model should predict *from position t* (read ``logits[:, t]``); it is ``IGNORE = -100`` wherever there is
no loss, so ``F.cross_entropy(logits.transpose(1, 2), targets)`` scores only the answers.

Vocabulary (V = ``vocab_size``, at least 8): four special tokens, then keys, then values::

    PAD = 0   BOS = 1   SEP = 2   NEEDLE = 3
    keys    = 4 .. 4 + K - 1              K = (V - 4) // 2
    values  = 4 + K .. V - 1              (V - 4 - K values)

Randomness comes only from a ``torch.Generator`` seeded with ``seed``: the same arguments give the same
batch on every machine.

Shapes: B batch, T sequence length, P key-value pairs, Q queries, L copied tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "IGNORE",
    "PAD",
    "BOS",
    "SEP",
    "NEEDLE",
    "TASKS",
    "vocab_ranges",
    "associative_recall",
    "mqar",
    "copying",
    "noisy_needle",
    "make_task",
    "accuracy",
]

IGNORE = -100
PAD, BOS, SEP, NEEDLE = 0, 1, 2, 3
_FIRST = 4  # first non-special token


def vocab_ranges(vocab_size: int) -> tuple[range, range]:
    """The (keys, values) token ranges of a vocabulary of ``vocab_size`` tokens (see the module docstring)."""
    if not isinstance(vocab_size, int) or vocab_size < 8:
        raise ValueError(
            f"vocab_size must be an integer >= 8 (4 special tokens + keys + values), got {vocab_size!r}"
        )
    num_keys = (vocab_size - _FIRST) // 2
    return range(_FIRST, _FIRST + num_keys), range(_FIRST + num_keys, vocab_size)


def _generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


def _distinct(batch: int, pool: range, count: int, gen: torch.Generator) -> Tensor:
    """(B, count) distinct tokens per row drawn from ``pool`` (a random permutation's first ``count``)."""
    if count > len(pool):
        raise ValueError(
            f"asked for {count} distinct tokens but only {len(pool)} are available; raise vocab_size"
        )
    order = torch.rand(batch, len(pool), generator=gen).argsort(dim=-1)[:, :count]  # (B, count)
    return order + pool.start


def _uniform(batch: int, length: int, pool: range, gen: torch.Generator) -> Tensor:
    """(B, length) tokens drawn uniformly (with repetition) from ``pool``."""
    return torch.randint(pool.start, pool.stop, (batch, length), generator=gen)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def mqar(
    batch_size: int,
    num_pairs: int = 4,
    num_queries: int | None = None,
    seq_len: int | None = None,
    vocab_size: int = 64,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Multi-query associative recall: store P key-value pairs, then answer Q queries about them.

    Layout (T = ``seq_len``, at least 2 + 2P + 2Q; default exactly that)::

        BOS k1 v1 k2 v2 .. kP vP | filler .. | SEP q1 a1 q2 a2 .. qQ aQ
                                   values, T - (2 + 2P + 2Q) of them

    Keys in a row are distinct; queries are Q distinct keys of the row in random order, each followed by
    its value ``a_i``. Targets: at each query position the answer ``a_i``; IGNORE elsewhere. The filler is
    random value tokens (it lengthens the gap between storing and recalling).
    """
    num_queries = num_pairs if num_queries is None else num_queries
    _check_positive(batch_size=batch_size, num_pairs=num_pairs, num_queries=num_queries)
    if num_queries > num_pairs:
        raise ValueError(f"num_queries ({num_queries}) cannot exceed num_pairs ({num_pairs})")
    needed = 2 + 2 * num_pairs + 2 * num_queries
    seq_len = needed if seq_len is None else seq_len
    if seq_len < needed:
        raise ValueError(
            f"seq_len={seq_len} is too short for {num_pairs} pairs and {num_queries} queries "
            f"(needs at least {needed})"
        )
    key_pool, value_pool = vocab_ranges(vocab_size)
    gen = _generator(seed)
    keys = _distinct(batch_size, key_pool, num_pairs, gen)  # (B, P)
    values = _uniform(batch_size, num_pairs, value_pool, gen)  # (B, P)
    which = torch.rand(batch_size, num_pairs, generator=gen).argsort(dim=-1)[:, :num_queries]  # (B, Q)
    filler = _uniform(batch_size, seq_len - needed, value_pool, gen)  # (B, T - needed)

    pairs = torch.stack([keys, values], dim=-1).flatten(1)  # (B, 2P): k1 v1 k2 v2 ...
    queries = torch.stack([keys.gather(1, which), values.gather(1, which)], dim=-1).flatten(1)  # (B, 2Q)
    bos = torch.full((batch_size, 1), BOS)
    sep = torch.full((batch_size, 1), SEP)
    input_ids = torch.cat([bos, pairs, filler, sep, queries], dim=1)  # (B, T)

    targets = torch.full_like(input_ids, IGNORE)
    query_pos = seq_len - 2 * num_queries + 2 * torch.arange(num_queries)  # (Q,) columns of q_i
    targets[:, query_pos] = input_ids[:, query_pos + 1]
    return input_ids, targets


def associative_recall(
    batch_size: int, num_pairs: int = 4, seq_len: int | None = None, vocab_size: int = 64, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Single-query associative recall: store P pairs, then ask for one key's value at the last position.

    Layout (T at least 2P + 3)::

        BOS k1 v1 .. kP vP | filler .. | SEP q        target at q's column: the value stored with q

    The answer is not in the input (the model must produce it from the last position).
    """
    _check_positive(batch_size=batch_size, num_pairs=num_pairs)
    needed = 2 * num_pairs + 3
    seq_len = needed if seq_len is None else seq_len
    if seq_len < needed:
        raise ValueError(f"seq_len={seq_len} is too short for {num_pairs} pairs (needs at least {needed})")
    ids, tgt = mqar(batch_size, num_pairs, 1, seq_len + 1, vocab_size, seed)  # ... SEP q a
    return ids[:, :-1], tgt[:, :-1]  # drop the answer token; its target stays at q's column


def copying(batch_size: int, copy_len: int = 8, vocab_size: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Copy a random string after a separator.

    Layout (T = 2L + 2)::

        BOS x1 x2 .. xL SEP x1 x2 .. xL

    Targets: from SEP's column on, the next token of the copy (x1 at SEP, x2 at the first copied x1, ...,
    xL at the copied x_{L-1}); IGNORE before SEP and at the last column. Tokens are drawn from keys and
    values alike.
    """
    _check_positive(batch_size=batch_size, copy_len=copy_len)
    key_pool, value_pool = vocab_ranges(vocab_size)
    gen = _generator(seed)
    string = _uniform(batch_size, copy_len, range(key_pool.start, value_pool.stop), gen)  # (B, L)
    bos = torch.full((batch_size, 1), BOS)
    sep = torch.full((batch_size, 1), SEP)
    input_ids = torch.cat([bos, string, sep, string], dim=1)  # (B, 2L + 2)
    targets = torch.full_like(input_ids, IGNORE)
    targets[:, copy_len + 1 : 2 * copy_len + 1] = string
    return input_ids, targets


def noisy_needle(
    batch_size: int, seq_len: int = 32, vocab_size: int = 64, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Find one marked key-value pair in a haystack of random tokens.

    Layout (T at least 7)::

        BOS noise .. NEEDLE k v noise .. SEP k        target at the last column: v

    The noise is uniform over keys and values but never contains ``k``, so the only exact match of the
    query is the needle (whose position is uniform over the haystack). The marker NEEDLE flags it too.
    """
    _check_positive(batch_size=batch_size, seq_len=seq_len)
    if seq_len < 7:
        raise ValueError(f"seq_len must be at least 7 for noisy_needle, got {seq_len}")
    key_pool, value_pool = vocab_ranges(vocab_size)
    gen = _generator(seed)
    content = range(key_pool.start, value_pool.stop)
    hay = seq_len - 6  # noise tokens: T minus BOS, NEEDLE, k, v, SEP, k
    key = _uniform(batch_size, 1, key_pool, gen)  # (B, 1)
    value = _uniform(batch_size, 1, value_pool, gen)  # (B, 1)
    noise = _uniform(batch_size, hay, content, gen)  # (B, hay)
    # Redraw any noise token equal to the key by shifting it to the next key (stays a key, never k).
    clash = noise == key
    noise = torch.where(clash, (noise - key_pool.start + 1) % len(key_pool) + key_pool.start, noise)
    where = torch.randint(0, hay + 1, (batch_size,), generator=gen)  # noise tokens before the needle

    rows = []
    for b in range(batch_size):
        w = int(where[b])
        needle = torch.tensor([NEEDLE, int(key[b]), int(value[b])])
        rows.append(
            torch.cat(
                [torch.tensor([BOS]), noise[b, :w], needle, noise[b, w:], torch.tensor([SEP, int(key[b])])]
            )
        )
    input_ids = torch.stack(rows)  # (B, T)
    targets = torch.full_like(input_ids, IGNORE)
    targets[:, -1] = value[:, 0]
    return input_ids, targets


TASKS = {"mqar": mqar, "recall": associative_recall, "copy": copying, "needle": noisy_needle}


def make_task(name: str, batch_size: int, seed: int, **kwargs) -> tuple[Tensor, Tensor]:
    """Dispatch by name (``mqar``, ``recall``, ``copy``, ``needle``); ``kwargs`` go to the generator."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name](batch_size, seed=seed, **kwargs)


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Fraction of scored positions (targets != IGNORE) where argmax(logits) equals the target.

    logits (B, T, V), targets (B, T). Raises ValueError when nothing is scored.
    """
    if logits.shape[:2] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree on (B, T)"
        )
    scored = targets != IGNORE
    if not scored.any():
        raise ValueError("no scored positions: every target is IGNORE")
    correct = (logits.argmax(dim=-1) == targets) & scored
    return correct.sum().item() / scored.sum().item()
