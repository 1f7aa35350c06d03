"""Parity with NVIDIA's reference outputs on the ``hymba-tiny-a`` fixture (float32, CPU).

The fixture's forward input is 2 x 48 tokens after 8 meta tokens with a sliding window of 16, so the
windows clip; the references come from the hub's own modeling code (see the fixture README).

Tolerance: atol 1e-4, rtol 0 (an independent correct implementation lands near 1e-5).
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from minihymba.impl import Impl

ATOL = 1e-4


IMPLS = {
    "reference": Impl.reference(),
    "auto": Impl(),
    "sdpa+fused": Impl(attention="sdpa", scan="fused"),
    "eager+blelloch": Impl(attention="eager", scan="blelloch"),
}


@pytest.fixture(params=list(IMPLS))
def impl(request) -> Impl:
    """Every parity test runs with the references and with the fast paths."""
    return IMPLS[request.param]


def test_fixture_is_what_the_readme_says(fixture_model, fixture_inputs):
    cfg = fixture_model.config
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_meta_tokens, cfg.sliding_window) == (6, 64, 8, 16)
    assert fixture_model.num_parameters() == fixture_inputs["checks"]["num_parameters"]
    ids = torch.tensor(fixture_inputs["input_ids"])
    assert ids.shape == (2, 48) and cfg.num_meta_tokens + ids.shape[1] > cfg.sliding_window


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "reference_outputs.safetensors"])
def test_fixture_files_are_intact(fixture_dir, fixture_inputs, name):
    digest = hashlib.sha256((fixture_dir / name).read_bytes()).hexdigest()
    assert digest == fixture_inputs["sha256"][name], f"{name} changed since the references were made"


@torch.no_grad()
def test_logits_and_hidden_states_match_reference(fixture_model, impl, reference, fixture_inputs):
    ids = torch.tensor(fixture_inputs["input_ids"])
    out = fixture_model(ids, output_hidden_states=True, impl=impl)
    assert out.logits.dtype == torch.float32 and out.logits.shape == (2, 48, 256)
    torch.testing.assert_close(out.logits, reference["logits"], atol=ATOL, rtol=0)
    n = fixture_model.config.num_layers
    assert len(out.hidden_states) == n + 1
    for i in range(n + 1):
        expected = reference[f"hidden_states.{i}"]  # (1, M + T, D), batch row 0
        torch.testing.assert_close(
            out.hidden_states[i][:1],
            expected,
            atol=ATOL,
            rtol=0,
            msg=lambda m, i=i: f"hidden_states.{i}: {m}",
        )


@torch.no_grad()
def test_batch_rows_are_independent(fixture_model, fixture_inputs):
    ids = torch.tensor(fixture_inputs["input_ids"])
    both = fixture_model(ids).logits
    for row in range(2):
        alone = fixture_model(ids[row : row + 1]).logits
        torch.testing.assert_close(alone[0], both[row], atol=1e-5, rtol=0)


@torch.no_grad()
def test_teacher_forced_logits_match_reference(fixture_model, impl, reference, fixture_inputs):
    gen = fixture_inputs["generation"]
    ids = torch.tensor([gen["prompt_ids"] + gen["greedy_cached_new_ids"]])  # (1, 50)
    logits = fixture_model(ids, impl=impl).logits[0]
    torch.testing.assert_close(logits, reference["teacher_forced_logits"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_uncached_greedy_steps_match_reference(fixture_model, impl, reference, fixture_inputs):
    """The reference's greedy loop re-ran the whole sequence each step; causality gives all steps at once."""
    gen = fixture_inputs["generation"]
    prompt, new = gen["prompt_ids"], gen["greedy_nocache_new_ids"]
    logits = fixture_model(torch.tensor([prompt + new[:-1]]), impl=impl).logits[0]  # (P + 19, V)
    steps = logits[len(prompt) - 1 :]  # step j predicts new[j]
    torch.testing.assert_close(steps, reference["nocache_step_logits"], atol=ATOL, rtol=0)
    assert steps.argmax(-1).tolist() == new


@torch.no_grad()
def test_last_only_is_the_last_column(fixture_model, fixture_inputs):
    ids = torch.tensor(fixture_inputs["input_ids"])
    full = fixture_model(ids).logits
    last = fixture_model(ids, last_only=True).logits
    assert last.shape == (2, 1, 256)
    torch.testing.assert_close(last[:, 0], full[:, -1], atol=1e-5, rtol=0)


@torch.no_grad()
def test_output_attentions(fixture_model, fixture_inputs):
    cfg = fixture_model.config
    ids = torch.tensor(fixture_inputs["input_ids"])
    b, t = ids.shape
    s = cfg.num_meta_tokens + t
    out = fixture_model(ids, output_attentions=True)
    assert len(out.attentions) == cfg.num_layers
    q = torch.arange(s)[:, None]
    k = torch.arange(s)[None, :]
    for i, probs in enumerate(out.attentions):
        assert probs.shape == (b, cfg.num_heads, s, s), f"layer {i}"
        torch.testing.assert_close(probs.sum(-1), torch.ones(b, cfg.num_heads, s), atol=1e-5, rtol=0)
        visible = k <= q  # the rule written out here, independently of minihymba.masks
        if i not in cfg.global_layers:
            visible &= (q - k <= cfg.sliding_window) | (k < cfg.num_meta_tokens)
        assert bool((probs[..., ~visible] == 0).all()), f"layer {i} attends outside its mask"
        assert bool((probs[..., visible] > 0).all()), f"layer {i} ignores a visible key"
    # asking for attention maps (eager path) does not change the logits beyond eager-vs-sdpa rounding
    torch.testing.assert_close(out.logits, fixture_model(ids).logits, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match=r"attention maps .* come only from the eager reference"):
        fixture_model(ids, output_attentions=True, impl=Impl(attention="sdpa"))
