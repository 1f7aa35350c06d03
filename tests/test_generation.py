"""generate(): cached decoding equals the full forward, reproduces NVIDIA's cached decoding on request,
handles left-padded batches and early stops, starts from the memoised meta-prefix cache, samples
reproducibly, and rejects bad arguments.

Tolerances: logits within 1e-4 (float32 CPU; independent implementations agree to ~1e-5), greedy ids
exact; meta-prefix cache on/off within 1e-5 (+1e-5 relative).
"""

from __future__ import annotations

import pytest
import torch

from minihymba import HymbaForCausalLM, generate, generation
from minihymba.generation import (
    check_left_padded,
    clear_meta_cache,
    filter_logits,
    left_pad,
    meta_prefix_cache,
    pick_next_token,
)

ATOL = 1e-4


def random_ids(vocab: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randint(3, vocab, shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ the fixture: NVIDIA's numbers


def test_default_greedy_equals_uncached_reference(fixture_model, fixture_inputs, reference):
    gen = fixture_inputs["generation"]
    prompt = torch.tensor([gen["prompt_ids"]])
    ids, scores = fixture_model.generate(prompt, max_new_tokens=gen["max_new_tokens"], output_scores=True)
    assert ids.shape == (1, prompt.shape[1] + gen["max_new_tokens"])
    assert torch.equal(ids[:, : prompt.shape[1]], prompt)
    assert ids[0, prompt.shape[1] :].tolist() == gen["greedy_nocache_new_ids"]
    # the uncached greedy loop's step logits: the default cache sees what the full forward sees
    torch.testing.assert_close(scores[0], reference["nocache_step_logits"], atol=ATOL, rtol=0)


def test_hub_compat_equals_nvidia_cached_generate(fixture_model, fixture_inputs, reference):
    gen = fixture_inputs["generation"]
    prompt = torch.tensor([gen["prompt_ids"]])
    ids, scores = fixture_model.generate(
        prompt, max_new_tokens=gen["max_new_tokens"], hub_compat=True, output_scores=True
    )
    assert ids[0, prompt.shape[1] :].tolist() == gen["greedy_cached_new_ids"]
    assert gen["greedy_cached_new_ids"] != gen["greedy_nocache_new_ids"]  # the two modes really differ
    torch.testing.assert_close(scores[0], reference["generate_step_logits"], atol=ATOL, rtol=0)


def test_default_return_is_a_long_tensor(fixture_model, fixture_inputs):
    prompt = torch.tensor([fixture_inputs["generation"]["prompt_ids"]])
    ids = fixture_model.generate(prompt, max_new_tokens=3)
    assert isinstance(ids, torch.Tensor) and ids.dtype == torch.long and ids.shape == (1, prompt.shape[1] + 3)
    assert torch.equal(generate(fixture_model, prompt, max_new_tokens=3), ids)  # method == function


# ------------------------------------------------------------------ every layer kind, long sequences


@pytest.mark.parametrize("prompt_len", [2, 13])
def test_decode_equals_teacher_forced_full_forward(tiny_model, prompt_len, attention_impl):
    cfg, impl = tiny_model.config, attention_impl
    n_new = 20
    assert prompt_len + n_new > 2 * (cfg.num_meta_tokens + cfg.sliding_window)  # windows clip and slide
    prompt = random_ids(cfg.vocab_size, (2, prompt_len), seed=prompt_len)
    ids, scores = tiny_model.generate(
        prompt, max_new_tokens=n_new, eos_token_id=None, output_scores=True, impl=impl
    )
    assert scores.shape == (2, n_new, cfg.vocab_size)
    with torch.no_grad():
        full = tiny_model(ids, impl=impl).logits  # (2, T + N, V): one forward over everything, no cache
    torch.testing.assert_close(scores, full[:, prompt_len - 1 : -1], atol=ATOL, rtol=0)
    assert torch.equal(ids[:, prompt_len:], full[:, prompt_len - 1 : -1].argmax(-1))  # greedy = argmax


def test_hub_compat_is_full_forward_with_window_minus_one(tiny_model):
    """NVIDIA's cached decode == a full forward with sliding window W - 1."""
    from minihymba import HymbaForCausalLM

    cfg = tiny_model.config
    prompt = random_ids(cfg.vocab_size, (1, 4), seed=5)  # prefill fits W - 1: only decode differs
    ids, scores = tiny_model.generate(
        prompt, max_new_tokens=15, eos_token_id=None, hub_compat=True, output_scores=True
    )
    narrow = HymbaForCausalLM(cfg.replace(sliding_window=cfg.sliding_window - 1)).eval()
    narrow.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        full = narrow(ids).logits
    torch.testing.assert_close(scores, full[:, 3:-1], atol=ATOL, rtol=0)
    default = tiny_model.generate(prompt, max_new_tokens=15, eos_token_id=None)
    assert not torch.equal(default, ids)  # with W=5 the one-key difference changes the greedy path


# ------------------------------------------------------------------ left padding and early stop


def test_left_padded_batch_equals_rows_alone(either_model):
    model = either_model
    rows = [random_ids(model.config.vocab_size, (n,), seed=n) for n in (11, 4, 1, 7)]
    ids, mask = left_pad(rows)
    n_new = 12
    batch_ids, batch_scores = model.generate(
        ids, attention_mask=mask, max_new_tokens=n_new, eos_token_id=None, output_scores=True
    )
    assert batch_ids.shape == (len(rows), ids.shape[1] + n_new)
    assert torch.equal(batch_ids[:, : ids.shape[1]], ids)
    for i, row in enumerate(rows):
        alone_ids, alone_scores = model.generate(
            row[None], max_new_tokens=n_new, eos_token_id=None, output_scores=True
        )
        assert batch_ids[i, ids.shape[1] :].tolist() == alone_ids[0, len(row) :].tolist(), f"row {i}"
        torch.testing.assert_close(
            batch_scores[i], alone_scores[0], atol=ATOL, rtol=0, msg=lambda m, i=i: f"row {i}: {m}"
        )


def test_eos_stops_a_row_and_pads_the_rest(tiny_model):
    cfg = tiny_model.config
    rows = [random_ids(cfg.vocab_size, (n,), seed=10 + n) for n in (6, 3, 9)]
    ids, mask = left_pad(rows)
    n_new = 10
    free = tiny_model.generate(ids, attention_mask=mask, max_new_tokens=n_new, eos_token_id=None)
    new = free[:, ids.shape[1] :]
    eos = int(new[0, 3])  # a token row 0 emits at step 3 (maybe earlier too): use it as the eos
    stop0 = int((new[0] == eos).nonzero()[0])
    pad = 60
    out = tiny_model.generate(
        ids, attention_mask=mask, max_new_tokens=n_new, eos_token_id=eos, pad_token_id=pad
    )
    assert out.shape == free.shape
    got = out[:, ids.shape[1] :]
    for i in range(len(rows)):
        hits = (new[i] == eos).nonzero()
        stop = int(hits[0]) if len(hits) else n_new
        assert got[i, : stop + 1].tolist() == new[i, : stop + 1].tolist(), f"row {i} before its eos"
        assert (got[i, stop + 1 :] == pad).all(), f"row {i} must be padding after its eos"
        alone = tiny_model.generate(rows[i][None], max_new_tokens=n_new, eos_token_id=eos, pad_token_id=pad)
        assert got[i].tolist() == alone[0, len(rows[i]) :].tolist(), f"row {i} differs from the row alone"
    assert stop0 <= 3 and (got[0, stop0 + 1 :] == pad).all() and stop0 + 1 < n_new


def test_all_rows_stopped_ends_early_with_full_width(tiny_model):
    prompt = random_ids(tiny_model.config.vocab_size, (1, 5), seed=3)
    free = tiny_model.generate(prompt, max_new_tokens=8, eos_token_id=None)
    eos = int(free[0, 5])  # the very first new token
    calls = []
    ids, scores = tiny_model.generate(
        prompt,
        max_new_tokens=8,
        eos_token_id=[eos, 999],
        pad_token_id=0,
        streamer=calls.append,
        output_scores=True,
    )
    assert ids.shape == (1, 13) and int(ids[0, 5]) == eos and (ids[0, 6:] == 0).all()
    assert len(calls) == 1 and scores.shape[1] == 1  # stopped after one step


def test_eos_defaults_to_the_config(tiny_model):
    prompt = random_ids(tiny_model.config.vocab_size, (1, 5), seed=3)
    free = tiny_model.generate(prompt, max_new_tokens=6, eos_token_id=None)
    eos = int(free[0, 6])
    model_cfg = tiny_model.config
    try:
        tiny_model.config = model_cfg.replace(eos_token_id=eos, pad_token_id=None)
        out = tiny_model.generate(prompt, max_new_tokens=6)
    finally:
        tiny_model.config = model_cfg
    first = int((free[0, 5:] == eos).nonzero()[0])
    assert (out[0, 5 + first + 1 :] == 0).all()  # stopped at the config's eos, padded with 0 (no pad id)


def test_rejects_right_padding(tiny_model):
    ids = torch.tensor([[5, 6, 7], [5, 6, 7]])
    with pytest.raises(ValueError, match="left padding"):
        tiny_model.generate(ids, attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]), max_new_tokens=2)
    with pytest.raises(ValueError, match="left padding"):
        tiny_model.generate(ids, attention_mask=torch.tensor([[1, 1, 1], [0, 1, 0]]), max_new_tokens=2)
    with pytest.raises(ValueError, match="padding after a token"):
        check_left_padded(torch.tensor([[1, 0, 1]]))
    check_left_padded(torch.tensor([[0, 0, 1], [1, 1, 1]]))  # fine


# ------------------------------------------------------------------ the meta-prefix cache


def meta_atol(model) -> float:
    """1e-5 on the fixture. The tiny model's std-0.1 weights grow activations to ~8, so the 1-ulp
    differences of a differently chunked first layer (other matmul shapes) reach ~2e-5 in the logits."""
    return 1e-5 if model.config.vocab_size == 256 else 3e-5


@pytest.mark.parametrize("padded", [False, True])
def test_meta_prefix_cache_equals_recomputing(either_model, padded):
    model = either_model
    rows = [random_ids(model.config.vocab_size, (n,), seed=20 + n) for n in ((9, 3) if padded else (9, 9))]
    ids, mask = left_pad(rows)
    kw = dict(
        attention_mask=mask if padded else None, max_new_tokens=10, eos_token_id=None, output_scores=True
    )
    with_memo, scores_memo = model.generate(ids, use_meta_cache=True, **kw)
    without, scores_plain = model.generate(ids, use_meta_cache=False, **kw)
    assert torch.equal(with_memo, without)
    torch.testing.assert_close(scores_memo, scores_plain, atol=meta_atol(model), rtol=0)


def test_meta_prefix_cache_holds_only_meta_and_is_a_fresh_copy(tiny_model):
    cfg = tiny_model.config
    cache = meta_prefix_cache(tiny_model, 3)
    assert cache.batch_size == 3 and not cache.has_tokens and not cache.is_empty
    assert cache.length == cfg.num_meta_tokens
    owners = [i for i in range(cfg.num_layers) if cfg.owns_kv(i)]
    assert [cache.kv_lengths()[i] for i in owners] == [cfg.num_meta_tokens] * len(owners)
    assert torch.equal(cache.next_position, torch.full((3,), cfg.num_meta_tokens))
    memo = generation._META_MEMO[tiny_model][1]
    memo_state = memo.ssm_states[1].clone()
    with torch.no_grad():  # using a copy must not touch the memo
        tiny_model(torch.tensor([[5, 6]] * 3), cache=cache)
    assert not torch.equal(cache.ssm_states[1][:1], memo_state)  # the copy moved on ...
    assert torch.equal(memo.ssm_states[1], memo_state)  # ... the memo did not
    again = meta_prefix_cache(tiny_model, 3)
    assert again.length == cfg.num_meta_tokens and not again.has_tokens
    assert again.conv_states[0] is not meta_prefix_cache(tiny_model, 3).conv_states[0]  # fresh copies
    assert generation._META_MEMO[tiny_model][1] is memo  # unchanged weights: the memo is reused


def test_meta_prefix_cache_follows_weight_changes(tiny_model):
    cfg = tiny_model.config
    prompt = random_ids(cfg.vocab_size, (1, 6), seed=4)
    tiny_model.generate(prompt, max_new_tokens=2)  # fill the memo
    stale = meta_prefix_cache(tiny_model, 1).ssm_states[1].clone()
    with torch.no_grad():
        tiny_model.model.memory_tokens.mul_(-1.5)  # in place: the memo must notice
    fresh = meta_prefix_cache(tiny_model, 1).ssm_states[1]
    assert not torch.allclose(stale, fresh)
    kw = dict(max_new_tokens=8, eos_token_id=None, output_scores=True)
    a, sa = tiny_model.generate(prompt, use_meta_cache=True, **kw)
    b, sb = tiny_model.generate(prompt, use_meta_cache=False, **kw)
    assert torch.equal(a, b)
    torch.testing.assert_close(sa, sb, atol=meta_atol(tiny_model), rtol=0)


def test_load_state_dict_refreshes_the_meta_prefix_cache(tiny_model):
    """Loading other weights (copied in place) must not leave the old meta state in the memo."""
    before = meta_prefix_cache(tiny_model, 1).ssm_states[1].clone()
    other = HymbaForCausalLM(tiny_model.config)
    other.reset_parameters(std=0.1, seed=123)
    tiny_model.load_state_dict(other.state_dict())
    after = meta_prefix_cache(tiny_model, 1).ssm_states[1]
    expected = meta_prefix_cache(other, 1).ssm_states[1]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, atol=0, rtol=0)
    clear_meta_cache(tiny_model)
    assert tiny_model not in generation._META_MEMO


# ------------------------------------------------------------------ sampling


def test_seeded_sampling_is_reproducible(tiny_model):
    prompt = random_ids(tiny_model.config.vocab_size, (2, 5), seed=7)
    kw = dict(max_new_tokens=16, do_sample=True, temperature=1.5, eos_token_id=None)
    a = tiny_model.generate(prompt, generator=torch.Generator().manual_seed(123), **kw)
    b = tiny_model.generate(prompt, generator=torch.Generator().manual_seed(123), **kw)
    c = tiny_model.generate(prompt, generator=torch.Generator().manual_seed(456), **kw)
    greedy = tiny_model.generate(prompt, max_new_tokens=16, eos_token_id=None)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # 32 draws at temperature 1.5 from 61 tokens: a collision is ~impossible
    assert not torch.equal(a, greedy)


def test_top_k_1_and_tiny_top_p_are_greedy(tiny_model):
    prompt = random_ids(tiny_model.config.vocab_size, (2, 5), seed=8)
    greedy = tiny_model.generate(prompt, max_new_tokens=12, eos_token_id=None)
    gen = torch.Generator().manual_seed(0)
    top1 = tiny_model.generate(
        prompt, max_new_tokens=12, eos_token_id=None, do_sample=True, top_k=1, temperature=3.0, generator=gen
    )
    nucleus = tiny_model.generate(
        prompt,
        max_new_tokens=12,
        eos_token_id=None,
        do_sample=True,
        top_p=1e-6,
        temperature=3.0,
        generator=gen,
    )
    assert torch.equal(top1, greedy)
    assert torch.equal(nucleus, greedy)


def test_filter_logits_top_k_top_p_temperature():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    logits = probs.log()
    kept = lambda out: torch.isfinite(out[0]).nonzero().flatten().tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_k=2)) == [1, 3]
    assert kept(filter_logits(logits, top_p=0.8)) == [1, 3]  # 0.5 + 0.3 reaches 0.8
    assert kept(filter_logits(logits, top_p=0.81)) == [1, 2, 3]
    assert kept(filter_logits(logits, top_p=0.1)) == [1]  # the top token is always kept
    assert kept(filter_logits(logits, top_p=1.0)) == [0, 1, 2, 3]
    torch.testing.assert_close(filter_logits(logits, temperature=2.0), logits / 2)
    # sampling frequencies follow the filtered distribution
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [pick_next_token(logits, do_sample=True, top_p=0.8, generator=gen) for _ in range(2000)]
    )
    share = (draws == 1).float().mean().item()
    assert set(draws.flatten().tolist()) == {1, 3}
    assert abs(share - 0.5 / 0.8) < 0.05


# ------------------------------------------------------------------ streamer and arguments


def test_streamer_callable_and_object(tiny_model):
    prompt = random_ids(tiny_model.config.vocab_size, (2, 4), seed=9)
    seen = []
    ids = tiny_model.generate(prompt, max_new_tokens=5, eos_token_id=None, streamer=seen.append)
    assert len(seen) == 5 and all(s.shape == (2,) for s in seen)
    assert torch.equal(torch.stack(seen, 1), ids[:, 4:])

    class Recorder:
        def __init__(self):
            self.put_ids, self.ended = [], 0

        def put(self, ids):
            self.put_ids.append(ids)

        def end(self):
            self.ended += 1

    rec = Recorder()
    tiny_model.generate(prompt, max_new_tokens=5, eos_token_id=None, streamer=rec)
    assert len(rec.put_ids) == 5 and rec.ended == 1


def test_zero_new_tokens_returns_the_prompt(tiny_model):
    prompt = random_ids(tiny_model.config.vocab_size, (2, 4), seed=1)
    out = tiny_model.generate(prompt, max_new_tokens=0)
    assert torch.equal(out, prompt) and out.data_ptr() != prompt.data_ptr()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(max_new_tokens=2.5), "max_new_tokens"),
        (dict(max_new_tokens=2, attention_mask=torch.ones(2, 3, dtype=torch.long)), "attention_mask shape"),
        (dict(max_new_tokens=2, do_sample=True, temperature=0.0), "temperature"),
        (dict(max_new_tokens=2, do_sample=True, temperature=-1.0), "temperature"),
        (dict(max_new_tokens=2, do_sample=True, top_p=0.0), "top_p"),
        (dict(max_new_tokens=2, do_sample=True, top_p=1.5), "top_p"),
        (dict(max_new_tokens=2, do_sample=True, top_k=0), "top_k"),
    ],
)
def test_bad_arguments(tiny_model, kwargs, match):
    prompt = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    with pytest.raises(ValueError, match=match):
        tiny_model.generate(prompt, **kwargs)


def test_bad_input_ids(tiny_model):
    with pytest.raises(ValueError, match="batch, tokens"):
        tiny_model.generate(torch.tensor([5, 6, 7]), max_new_tokens=2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny_model.generate(torch.tensor([[5, 6, 700]]), max_new_tokens=2)


def test_left_pad_layout_and_errors():
    ids, mask = left_pad([[5, 6, 7], torch.tensor([9])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 9]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    check_left_padded(mask)  # the layout generate expects
    with pytest.raises(ValueError, match="no empty rows"):
        left_pad([[1, 2], []])
