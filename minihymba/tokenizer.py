"""The tokenizer (loaded with ``transformers``) and the Hymba-Instruct chat format (plain Python).

Hymba uses the stock Llama-2 SentencePiece tokenizer (32000 pieces + ``[PAD]``); plain encoding adds the
BOS id 1. :func:`load_tokenizer` loads it from a checkpoint directory or a hub id, never running code
from the checkpoint. ``transformers`` is imported only when a tokenizer is loaded.

The Instruct chat format (as the checkpoint's chat template writes it), rendered by :func:`render_chat`::

    <extra_id_0>System
    {system message}            one line per system message ("\\n" + text)
    <tool> {json} </tool>       one per tool, if any
    <context> {text} </context> one per context, if any
                                (an empty line ends the system block)
    <extra_id_1>User
    {user message}
    <extra_id_1>Assistant
    {assistant message}
    <extra_id_1>Tool
    {tool output}
    <extra_id_1>Assistant       the generation prompt

``<extra_id_*>`` are ordinary text, not special tokens. The rendered chat is encoded *without* a BOS
token (as ``apply_chat_template`` does for this model).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .hub import resolve_checkpoint

__all__ = ["CHAT_ROLES", "load_tokenizer", "render_chat", "encode_chat"]

CHAT_ROLES = ("system", "user", "assistant", "tool")
_TURN_HEADERS = {"user": "User", "assistant": "Assistant", "tool": "Tool"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def load_tokenizer(name_or_path: str | os.PathLike, *, revision: str | None = None) -> Any:
    """The tokenizer of a checkpoint directory or hub repo id (``transformers.AutoTokenizer``).

    Raises FileNotFoundError when the directory has no tokenizer files or the hub id cannot be fetched,
    ValueError naming the file when a tokenizer file is broken (not JSON, or not a tokenizer).
    """
    directory = resolve_checkpoint(name_or_path, revision=revision)
    if not any((directory / name).is_file() for name in _TOKENIZER_FILES):
        raise FileNotFoundError(
            f"no tokenizer files in {directory} (expected one of {', '.join(_TOKENIZER_FILES)})"
        )
    for name in _JSON_FILES:  # a broken JSON file is named here, not deep inside transformers
        path = directory / name
        if path.is_file():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as err:
                raise ValueError(f"{path} is not valid JSON ({err}): re-download or re-create it") from err
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # silence "model of type hymba" notes: only the tokenizer is loaded
    try:
        return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
    except Exception as err:  # transformers raises many types for a tokenizer it cannot build
        present = [name for name in _TOKENIZER_FILES if (directory / name).is_file()]
        raise ValueError(
            f"cannot load the tokenizer from {directory} (files {', '.join(present)}): "
            f"{type(err).__name__}: {err}"
        ) from err
    finally:
        hf_logging.set_verbosity(verbosity)


def _content(message: Mapping[str, Any], index: int) -> str:
    content = message.get("content")
    if not isinstance(content, str):
        raise ValueError(f"message {index} needs a string 'content', got {type(content).__name__}")
    return content.strip()


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    tools: Sequence[Any] | None = None,
    contexts: Sequence[str] | None = None,
) -> str:
    """The Hymba-Instruct prompt text for ``messages`` ({"role": ..., "content": ...} dicts).

    Roles: system (all collected into the system block), user, assistant, tool. ``tools`` are
    JSON-serialisable tool descriptions (written with ``json.dumps(tool, ensure_ascii=False)``);
    ``contexts`` are retrieved passages. ``add_generation_prompt`` ends with the assistant header.
    """
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in CHAT_ROLES:
            role = message.get("role") if isinstance(message, Mapping) else type(message).__name__
            raise ValueError(f"message {i} has role {role!r}; expected one of {CHAT_ROLES}")
        _content(message, i)
    parts = ["<extra_id_0>System"]
    parts += ["\n" + _content(m, i) for i, m in enumerate(messages) if m["role"] == "system"]
    if tools or contexts:
        parts.append("\n")
    for tool in tools or ():
        parts.append("\n<tool> " + json.dumps(tool, ensure_ascii=False) + " </tool>")
    if contexts:
        if tools:
            parts.append("\n")
        parts += ["\n<context> " + context.strip() + " </context>" for context in contexts]
    parts.append("\n\n")
    for i, message in enumerate(messages):
        if message["role"] != "system":
            parts.append(f"<extra_id_1>{_TURN_HEADERS[message['role']]}\n{_content(message, i)}\n")
    if add_generation_prompt:
        parts.append("<extra_id_1>Assistant\n")
    return "".join(parts)


def encode_chat(tokenizer: Any, messages: Sequence[Mapping[str, Any]], **render_kwargs: Any) -> list[int]:
    """Token ids of :func:`render_chat` (no BOS, matching the model's ``apply_chat_template``)."""
    return tokenizer(render_chat(messages, **render_kwargs), add_special_tokens=False)["input_ids"]
