"""Where a checkpoint lives: a local directory, or a Hugging Face hub repo id fetched into the HF cache.

:func:`resolve_checkpoint` turns either into a local directory. Hub downloads take only the files minihymba
reads (config, safetensors weights and index, tokenizer files; never pickles or code) into the standard HF
cache; ``HF_HUB_OFFLINE=1`` is honoured.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HUB_FILES", "looks_like_repo_id", "resolve_checkpoint"]

HUB_FILES = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
]


def looks_like_repo_id(name: str) -> bool:
    """True for names of the form ``owner/name`` that cannot be a local path."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~")) and os.sep not in parts[1]


def resolve_checkpoint(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local directory holding the checkpoint: ``name_or_path`` itself, or the hub snapshot."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} is a file; pass the checkpoint directory that holds config.json")
    name = str(name_or_path)
    if not looks_like_repo_id(name):
        raise FileNotFoundError(f"no checkpoint directory at {path} (and {name!r} is not a hub repo id)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=name, revision=revision, allow_patterns=HUB_FILES))
    except Exception as err:  # offline, not cached, no such repo, gated ...
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        hint = " (HF_HUB_OFFLINE is set and the model is not in the local HF cache)" if offline else ""
        raise FileNotFoundError(
            f"could not get {name!r} from the Hugging Face hub{hint}: {type(err).__name__}: {err}. "
            "Download it where there is network (huggingface-cli download "
            f"{name}) or pass a local directory."
        ) from err
