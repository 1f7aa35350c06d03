"""The Instruct chat format and load_tokenizer on a real (tiny) tokenizer.

No Llama tokenizer file is available offline; ``tests/fixtures/tokenizer-tiny`` is a 250-piece BPE built by
its own ``make_tokenizer.py`` (same special ids 0/1/2 as Llama, BOS added on plain encode).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from minihymba import load_tokenizer, render_chat
from minihymba.tokenizer import encode_chat

TOKENIZER_DIR = Path(__file__).parent / "fixtures" / "tokenizer-tiny"
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "Hi there"}


# ------------------------------------------------------------------ chat format


def test_spec_example():
    expected = (
        "<extra_id_0>System\nYou are a helpful assistant.\n\n"  # the spec's string, split in two
        "<extra_id_1>User\nHi there\n<extra_id_1>Assistant\n"
    )
    assert render_chat([SYSTEM, USER]) == expected


def test_no_system_message_and_no_generation_prompt():
    assert (
        render_chat([USER], add_generation_prompt=False)
        == "<extra_id_0>System\n\n<extra_id_1>User\nHi there\n"
    )


def test_multi_turn_with_assistant_and_tool_turns_and_stripping():
    messages = [
        {"role": "system", "content": "  Be brief. "},
        {"role": "user", "content": "What is 2+3?\n"},
        {"role": "assistant", "content": " <toolcall> add(2, 3) </toolcall>"},
        {"role": "tool", "content": "5"},
        {"role": "assistant", "content": "It is 5."},
        {"role": "system", "content": "Second system line."},
        {"role": "user", "content": "Thanks"},
    ]
    expected = (
        "<extra_id_0>System\nBe brief.\nSecond system line.\n\n"
        "<extra_id_1>User\nWhat is 2+3?\n"
        "<extra_id_1>Assistant\n<toolcall> add(2, 3) </toolcall>\n"
        "<extra_id_1>Tool\n5\n"
        "<extra_id_1>Assistant\nIt is 5.\n"
        "<extra_id_1>User\nThanks\n"
        "<extra_id_1>Assistant\n"
    )
    assert render_chat(messages) == expected


def test_tools_and_contexts():
    tools = [{"name": "search", "parameters": {"q": "string"}}, {"name": "calc"}]
    contexts = ["  Paris is the capital of France. ", "Berlin is in Germany."]
    tool_lines = (
        '\n<tool> {"name": "search", "parameters": {"q": "string"}} </tool>\n<tool> {"name": "calc"} </tool>'
    )
    context_lines = (
        "\n<context> Paris is the capital of France. </context>\n<context> Berlin is in Germany. </context>"
    )
    head = "<extra_id_0>System\nYou are a helpful assistant.\n"
    tail = "\n\n<extra_id_1>User\nHi there\n<extra_id_1>Assistant\n"
    assert (
        render_chat([SYSTEM, USER], tools=tools, contexts=contexts)
        == head + tool_lines + "\n" + context_lines + tail
    )
    assert render_chat([SYSTEM, USER], tools=tools) == head + tool_lines + tail
    assert render_chat([SYSTEM, USER], contexts=contexts) == head + context_lines + tail
    assert render_chat([USER], contexts=["c"]) == "<extra_id_0>System\n\n<context> c </context>" + tail


def test_tool_json_keeps_unicode():
    assert '<tool> {"name": "café"} </tool>' in render_chat([USER], tools=[{"name": "café"}])


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "robot", "content": "x"}],
        [{"content": "no role"}],
        ["just a string"],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": ["a", "list"]}],
    ],
)
def test_bad_messages(messages):
    with pytest.raises(ValueError, match="message 0"):
        render_chat(messages)


# ------------------------------------------------------------------ load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TOKENIZER_DIR)


def test_plain_encode_adds_bos_and_round_trips(tokenizer):
    ids = tokenizer("Hello world")["input_ids"]
    assert ids[0] == 1 and 1 not in ids[1:]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (1, 2, 0)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Hello world"
    assert tokenizer.padding_side == "left"


def test_chat_encoding_has_no_bos_and_fits_the_fixture_vocab(tokenizer):
    ids = encode_chat(tokenizer, [SYSTEM, USER])
    assert ids[0] != 1 and 0 not in ids  # no BOS, no <unk>: every character is in the alphabet
    assert max(ids) < 256  # hymba-tiny-a has 256 embeddings
    assert tokenizer.decode(ids) == render_chat([SYSTEM, USER])


def test_load_from_a_checkpoint_directory(tmp_path, fixture_dir):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fixture_dir / name, tmp_path / name)
    for file in TOKENIZER_DIR.glob("*.json"):
        shutil.copy(file, tmp_path / file.name)
    tok = load_tokenizer(str(tmp_path))
    assert tok("Hello world")["input_ids"] == load_tokenizer(TOKENIZER_DIR)("Hello world")["input_ids"]


def test_missing_tokenizer_is_a_clear_error(tmp_path, fixture_dir):
    shutil.copy(fixture_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        load_tokenizer(tmp_path / "does-not-exist")


def test_offline_hub_id_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(FileNotFoundError, match="nobody-here/no-such-model"):
        load_tokenizer("nobody-here/no-such-model")


def test_shipped_files_match_the_generating_script():
    spec = importlib.util.spec_from_file_location("make_tokenizer", TOKENIZER_DIR / "make_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rebuilt = json.loads(module.build().to_str())
    shipped = json.loads((TOKENIZER_DIR / "tokenizer.json").read_text())
    assert rebuilt["model"]["vocab"] == shipped["model"]["vocab"], "re-run make_tokenizer.py"
    assert rebuilt["model"]["merges"] == shipped["model"]["merges"], "re-run make_tokenizer.py"
