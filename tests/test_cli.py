"""``python -m minihymba generate``: streams the same text as ``model.generate``, reports problems on one
line with a non-zero exit code (no traceback). Runs the real command in a subprocess on the fixture
checkpoint with the tiny test tokenizer copied next to it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minihymba import assets_path, load_pretrained, load_tokenizer, render_chat

TOKENIZER_DIR = Path(__file__).parent / "fixtures" / "tokenizer-tiny"
REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "minihymba", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=full_env,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, fixture_dir) -> Path:
    directory = tmp_path_factory.mktemp("checkpoint")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fixture_dir / name, directory / name)
    for file in TOKENIZER_DIR.glob("*.json"):
        shutil.copy(file, directory / file.name)
    return directory


def expected_text(checkpoint: Path, ids: list[int], n: int, **sampling) -> str:
    """What the CLI should print: model.generate in this process, decoded up to the eos."""
    model, tok = load_pretrained(checkpoint), load_tokenizer(checkpoint)
    out = model.generate(torch.tensor([ids]), max_new_tokens=n, eos_token_id=tok.eos_token_id, **sampling)
    new = out[0, len(ids) :].tolist()
    if tok.eos_token_id in new:
        new = new[: new.index(tok.eos_token_id)]
    return tok.decode(new, skip_special_tokens=True)


def test_greedy_generation_streams_the_model_output(checkpoint):
    result = run_cli(
        "generate", "--model", str(checkpoint), "--prompt", "Hello world", "--max-new-tokens", "12"
    )
    assert result.returncode == 0, result.stderr
    assert "loading weights" in result.stderr and "Traceback" not in result.stderr
    tok = load_tokenizer(checkpoint)
    expected = expected_text(checkpoint, tok("Hello world")["input_ids"], 12)
    assert expected.strip()
    assert result.stdout == expected + "\n"


def test_chat_prompt_with_seeded_sampling(checkpoint):
    chat = [
        "generate",
        "--model",
        str(checkpoint),
        "--prompt",
        "Hi there",
        "--chat",
        "--system",
        "Be brief.",
        "--max-new-tokens",
        "10",
    ]
    sampled = run_cli(*chat, "--temperature", "0.9", "--top-p", "0.95", "--seed", "7")
    greedy = run_cli(*chat)
    assert sampled.returncode == 0 and greedy.returncode == 0, sampled.stderr + greedy.stderr
    tok = load_tokenizer(checkpoint)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    ids = tok(render_chat(messages), add_special_tokens=False)["input_ids"]  # chat prompts carry no BOS
    assert greedy.stdout == expected_text(checkpoint, ids, 10) + "\n"
    expected = expected_text(
        checkpoint,
        ids,
        10,
        do_sample=True,
        temperature=0.9,
        top_p=0.95,
        generator=torch.Generator().manual_seed(7),
    )
    assert sampled.stdout == expected + "\n"
    assert sampled.stdout != greedy.stdout


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("minihymba: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_model_not_found_offline(tmp_path):
    hf_home = tmp_path / "hf"  # an empty cache: nothing to fall back on
    env = {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub")}
    result = run_cli("generate", "--model", "nobody-here/no-such-model", "--prompt", "hi", env=env)
    line = one_error_line(result)
    assert "nobody-here/no-such-model" in line and "HF_HUB_OFFLINE" in line


def test_missing_local_directory_and_missing_tokenizer(tmp_path, fixture_dir):
    line = one_error_line(run_cli("generate", "--model", str(tmp_path / "nope"), "--prompt", "hi"))
    assert "no checkpoint directory" in line
    shutil.copy(fixture_dir / "config.json", tmp_path / "config.json")
    line = one_error_line(run_cli("generate", "--model", str(tmp_path), "--prompt", "hi"))
    assert "no tokenizer files" in line


def test_usage_errors():
    assert run_cli().returncode != 0  # no subcommand: help on stderr
    result = run_cli("generate")  # --prompt missing: argparse's usage error
    assert result.returncode == 2 and "--prompt" in result.stderr


def test_default_model_is_the_shipped_text_model_offline():
    """No --model: the shipped tiny-text model and its tokenizer, with the network off (HF_HUB_OFFLINE)."""
    model_dir = assets_path("tiny-text")
    result = run_cli("generate", "--prompt", "The", "--max-new-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert str(model_dir) in result.stderr and "Traceback" not in result.stderr
    expected = expected_text(model_dir, load_tokenizer(model_dir)("The")["input_ids"], 8)
    assert expected.strip()
    assert result.stdout == expected + "\n"
