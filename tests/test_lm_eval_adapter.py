"""The lm-evaluation-harness hook (``minihymba.lm_eval_adapter``) on the tiny fixture checkpoint.

Scores are checked against log-softmax sums taken straight from ``model(ids).logits``, batched requests
against one-at-a-time ones, ``generate_until`` against ``model.generate``; then lm_eval runs the local
six-question task ``tests/fixtures/lm_eval_tasks`` end to end, in process and through the command line.
Skipped without lm_eval (``pip install -e ".[eval]"``).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval", reason='lm_eval missing: pip install -e ".[eval]"')
adapter = importlib.import_module("minihymba.lm_eval_adapter")
from lm_eval.api.instance import Instance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_A = REPO_ROOT / "tests" / "fixtures" / "hymba-tiny-a"
TOKENIZER_DIR = REPO_ROOT / "tests" / "fixtures" / "tokenizer-tiny"
TASKS_DIR = REPO_ROOT / "tests" / "fixtures" / "lm_eval_tasks"
TASK = "minihymba_tiny_mc"
MODEL_ARGS = f"pretrained={TINY_A},tokenizer={TOKENIZER_DIR}"
ATOL = 1e-4

PAIRS = [  # (context, continuation): different lengths, an empty context, a context ending in a space
    ("Question: What do bees make?\nAnswer:", " honey"),
    ("The", " cat sat on the mat, and then it slept for a very long time"),
    ("", "Hello world"),
    ("Hi there ", "friend"),
    ("A much longer context that goes on and on, so that its row is padded least of all", " end"),
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A tiny model runs fastest on one thread (and does not fight other processes for the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lm():
    return adapter.MinihymbaLM(pretrained=str(TINY_A), tokenizer=str(TOKENIZER_DIR), batch_size=1)


def requests(kind: str, args_list: list[tuple]) -> list[Instance]:
    return [Instance(kind, {}, args, i) for i, args in enumerate(args_list)]


@torch.no_grad()
def direct_loglikelihood(lm, context: str, continuation: str) -> tuple[float, bool]:
    """The reference: BOS + context tokens + continuation tokens, one unpadded forward, log-softmax sum."""
    tok = lm.tokenizer
    if context:
        stripped = context.rstrip()  # lm_eval moves the context's trailing spaces into the continuation
        context, continuation = stripped, context[len(stripped) :] + continuation
        ctx = tok(context)["input_ids"]  # BOS added by the tokenizer
        whole = tok(context + continuation)["input_ids"]
    else:
        ctx = [tok.bos_token_id]
        whole = ctx + tok(continuation, add_special_tokens=False)["input_ids"]
    assert ctx[0] == tok.bos_token_id
    targets = torch.tensor(whole[len(ctx) :])
    logprobs = lm.model(torch.tensor([whole[:-1]])).logits[0].log_softmax(-1)  # (T, V)
    scored = logprobs[len(ctx) - 1 :]  # (n, V): the predictions of the continuation's tokens
    return scored.gather(-1, targets[:, None]).sum().item(), bool((scored.argmax(-1) == targets).all())


# ------------------------------------------------------------------ (a) scores


def test_loglikelihood_equals_log_softmax_of_the_logits(lm):
    results = lm.loglikelihood(requests("loglikelihood", PAIRS), disable_tqdm=True)
    for (context, continuation), (logprob, greedy) in zip(PAIRS, results, strict=True):
        expected, expected_greedy = direct_loglikelihood(lm, context, continuation)
        assert logprob == pytest.approx(expected, abs=ATOL), (context, continuation)
        assert greedy == expected_greedy
        assert logprob < 0


@torch.no_grad()
def test_is_greedy_is_true_exactly_for_the_argmax_continuation(lm):
    context = lm.tok_encode("Hello world")
    greedy_ids = lm.model.generate(torch.tensor([context]), max_new_tokens=4, eos_token_id=None)[0, -4:]
    greedy = greedy_ids.tolist()
    other = greedy[:-1] + [(greedy[-1] + 1) % lm.model.config.vocab_size]
    (lp_greedy, is_greedy), (lp_other, is_other) = lm._loglikelihood_tokens(
        [(None, context, greedy), (None, context, other)], disable_tqdm=True
    )
    assert is_greedy and not is_other
    assert lp_greedy > lp_other


def test_long_inputs_keep_the_end_of_the_context(lm):
    short = adapter.MinihymbaLM(pretrained=str(TINY_A), tokenizer=str(TOKENIZER_DIR), max_length=8)
    context, continuation = list(range(3, 30)), [40, 41, 42]
    ((logprob, _),) = short._loglikelihood_tokens([(None, context, continuation)], disable_tqdm=True)
    kept = (context + continuation)[-9:]  # max_length + 1 tokens: 8 inputs, the last 3 scored
    with torch.no_grad():
        scored = short.model(torch.tensor([kept[:-1]])).logits[0, -3:].log_softmax(-1)
    assert logprob == pytest.approx(scored.gather(-1, torch.tensor([continuation]).T).sum().item(), abs=ATOL)


def test_rolling_loglikelihood_scores_every_token_once(lm):
    text = "The cat sat on the mat, and then it slept for a very long time."
    (rolling,) = lm.loglikelihood_rolling(requests("loglikelihood_rolling", [(text,)]), disable_tqdm=True)
    expected, _ = direct_loglikelihood(lm, "", text)  # fits one window: BOS, then every token scored
    assert rolling == pytest.approx(expected, abs=ATOL)


# ------------------------------------------------------------------ (b) batching


def test_batched_equals_one_at_a_time(lm):
    reqs = requests("loglikelihood", PAIRS)
    max_length = lm.max_length
    alone = lm.loglikelihood(reqs, disable_tqdm=True)
    lm.batch_size = 3  # two padded batches of rows with different lengths
    try:
        batched = lm.loglikelihood(reqs, disable_tqdm=True)
        texts = requests("loglikelihood_rolling", [("The cat sat on the mat, then it slept. " * 4,), ("Hi",)])
        lm.max_length = 16  # several windows per text
        rolling_batched = lm.loglikelihood_rolling(texts, disable_tqdm=True)
        lm.batch_size = 1
        rolling_alone = lm.loglikelihood_rolling(texts, disable_tqdm=True)
    finally:
        lm.batch_size, lm.max_length = 1, max_length
    for (a, greedy_a), (b, greedy_b) in zip(alone, batched, strict=True):
        assert b == pytest.approx(a, abs=ATOL) and greedy_a == greedy_b
    assert rolling_batched == pytest.approx(rolling_alone, abs=ATOL)


# ------------------------------------------------------------------ (c) generation


def expected_generation(lm, prompt: str, n: int) -> str:
    ids = lm.tokenizer(prompt)["input_ids"]
    out = lm.model.generate(torch.tensor([ids]), max_new_tokens=n, eos_token_id=lm.tokenizer.eos_token_id)
    new = out[0, len(ids) :].tolist()
    if lm.tokenizer.eos_token_id in new:
        new = new[: new.index(lm.tokenizer.eos_token_id)]
    return lm.tokenizer.decode(new, skip_special_tokens=True)


def test_generate_until_equals_model_generate_and_stops_at_until(lm):
    prompts = ["The", "Question: What do bees make?\nAnswer:", "Hello world"]
    full = [expected_generation(lm, p, 12) for p in prompts]
    assert all(len(text) >= 8 for text in full)
    no_stop = {"until": ["@@@"], "max_gen_toks": 12}
    lm.batch_size = 2  # one left-padded batch of two prompts, then one alone
    try:
        reqs = requests("generate_until", [(p, no_stop) for p in prompts])
        got = lm.generate_until(reqs, disable_tqdm=True)
        assert got == full
        stops = [text[4:6] for text in full]  # a string each continuation reaches after a few characters
        cut = [text[: text.index(stop)] for text, stop in zip(full, stops, strict=True)]
        reqs = [(p, {"until": ["@@@", s], "max_gen_toks": 12}) for p, s in zip(prompts, stops, strict=True)]
        got = lm.generate_until(requests("generate_until", reqs), disable_tqdm=True)
    finally:
        lm.batch_size = 1
    assert got == cut
    assert all(len(c) < len(f) for c, f in zip(cut, full, strict=True))


# ------------------------------------------------------------------ (d, e) lm_eval end to end


def expected_accuracy(lm) -> float:
    """What the task's acc must be: the argmax over choices of the directly computed log-likelihoods."""
    docs = [json.loads(line) for line in (TASKS_DIR / "tiny_mc.jsonl").read_text().splitlines()]
    right = 0
    for doc in docs:
        context = f"Question: {doc['question']}\nAnswer:"
        scores = [direct_loglikelihood(lm, context, " " + choice)[0] for choice in doc["choices"]]
        right += scores.index(max(scores)) == doc["answer"]
    return right / len(docs)


def test_simple_evaluate_runs_the_local_task(lm, monkeypatch):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    monkeypatch.chdir(REPO_ROOT)  # the task's data_files path is relative to the repository root
    task_manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    results = simple_evaluate(
        model="minihymba",
        model_args=MODEL_ARGS,
        tasks=[TASK],
        batch_size=4,
        device="cpu",
        task_manager=task_manager,
    )
    acc = results["results"][TASK]["acc,none"]
    assert 0.0 <= acc <= 1.0
    assert acc == pytest.approx(expected_accuracy(lm))
    assert results["n-samples"][TASK]["effective"] == 6


def test_import_minihymba_does_not_import_lm_eval():
    code = "import sys, minihymba; print('lm_eval' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_command_line_runs_the_local_task(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "datasets"),
    }
    command = [
        sys.executable,
        "-m",
        "minihymba.lm_eval_adapter",
        "--model",
        "minihymba",
        "--model_args",
        MODEL_ARGS,
        "--tasks",
        TASK,
        "--include_path",
        str(TASKS_DIR),
        "--device",
        "cpu",
        "--batch_size",
        "4",
        "--output_path",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert TASK in result.stdout and "acc" in result.stdout
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    acc = json.loads(results_file.read_text())["results"][TASK]["acc,none"]
    assert 0.0 <= acc <= 1.0


# ------------------------------------------------------------------ (f) defaults and errors


def test_command_line_defaults_to_the_best_device(monkeypatch):
    args = ["--model", "minihymba", "--tasks", TASK]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert adapter.with_default_device(args) == [*args, "--device", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert adapter.with_default_device(args) == [*args, "--device", "cuda"]
    assert adapter.with_default_device(["run", *args]) == ["run", *args, "--device", "cuda"]
    for given in (["--device", "cpu"], ["--device=cuda:1"], ["--config", "run.yaml"], ["--help"]):
        assert adapter.with_default_device(args + given) == args + given  # the user's choice stands
    for other in (["ls", "tasks"], ["validate", "--tasks", TASK], []):
        assert adapter.with_default_device(other) == other  # not an evaluation


def test_missing_model_raises_model_not_found(tmp_path):
    with pytest.raises(adapter.ModelNotFoundError, match="no checkpoint directory") as info:
        adapter.MinihymbaLM(pretrained=str(tmp_path / "no-such-model"))
    assert isinstance(info.value, FileNotFoundError)


def test_command_line_missing_model_is_one_line_on_the_default_device(tmp_path):
    missing = tmp_path / "no-such-model"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "minihymba.lm_eval_adapter", "--model", "minihymba"]
    command += ["--model_args", f"pretrained={missing}", "--tasks", TASK, "--include_path", str(TASKS_DIR)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    (line,) = errors  # one line saying what is missing
    assert line.startswith("minihymba.lm_eval_adapter: error: ") and str(missing) in line
    if not torch.cuda.is_available():  # no --device given: cpu, without lm_eval's cuda:0 and its warning
        assert "CUDA is not available" not in result.stderr
