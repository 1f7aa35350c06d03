"""Where a checkpoint lives: a local directory, or a Hugging Face hub repo id fetched into the HF cache.

:func:`resolve_checkpoint` turns either into a local directory. Hub downloads take only the files minihymba
reads (config, safetensors weights and index, tokenizer files; never pickles or code) into the standard HF
cache.

* Cache first: a snapshot already in the local HF cache that holds the config and every weight file is
  used without any network call.
* Bounded: every call to the hub has a timeout (huggingface_hub's ``HF_HUB_ETAG_TIMEOUT`` for metadata and
  ``HF_HUB_DOWNLOAD_TIMEOUT`` for file reads, 10 s each by default), so a server that accepts the connection
  but never answers gives an error instead of a hang.
* ``HF_HUB_OFFLINE=1`` is honoured: no network call at all.
"""

from __future__ import annotations

import json
import os
from fnmatch import fnmatch
from pathlib import Path

__all__ = ["DOWNLOAD_COMMAND", "HUB_FILES", "looks_like_repo_id", "resolve_checkpoint"]

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

# huggingface_hub's command line (``hf``, from huggingface_hub 0.34 on; the dependency floor)
DOWNLOAD_COMMAND = "hf download"


def looks_like_repo_id(name: str) -> bool:
    """True for names of the form ``owner/name`` that cannot be a local path."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~")) and os.sep not in parts[1]


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")
    return flag or bool(constants.HF_HUB_OFFLINE)


def _timeout() -> float:
    """Seconds a hub metadata call may take (huggingface_hub's ``HF_HUB_ETAG_TIMEOUT``, read when called)."""
    from huggingface_hub import constants

    return float(constants.HF_HUB_ETAG_TIMEOUT)


def _is_complete(directory: Path) -> bool:
    """True when ``directory`` holds config.json and every weight file it needs."""
    if not (directory / "config.json").is_file():
        return False
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            return True  # malformed: the loader says exactly what is wrong with it
        return all(isinstance(s, str) and (directory / s).is_file() for s in shards)
    return (directory / "model.safetensors").is_file()


def _cached_snapshot(repo_id: str, revision: str | None) -> tuple[Path | None, str]:
    """The complete snapshot in the local HF cache, or None and why not (no network call)."""
    from huggingface_hub import snapshot_download

    try:
        path = Path(
            snapshot_download(
                repo_id=repo_id, revision=revision, allow_patterns=HUB_FILES, local_files_only=True
            )
        )
    except Exception as err:  # not cached (huggingface_hub raises several types for it)
        return None, f"{type(err).__name__}: {err}"
    if not _is_complete(path):
        return None, f"the cached snapshot {path} lacks config.json or weight files"
    return path, ""


def _download(repo_id: str, revision: str | None) -> Path:
    """Fetch the files minihymba reads into the HF cache; every call has a timeout."""
    from huggingface_hub import HfApi, hf_hub_download

    timeout = _timeout()
    info = HfApi().model_info(repo_id, revision=revision, timeout=timeout)
    names = sorted(
        s.rfilename
        for s in info.siblings or ()
        if "/" not in s.rfilename and any(fnmatch(s.rfilename, p) for p in HUB_FILES)
    )
    if "config.json" not in names:
        raise FileNotFoundError(f"the hub repo {repo_id} has no config.json (files: {names})")
    path = None
    for name in names:
        path = Path(hf_hub_download(repo_id, name, revision=info.sha, etag_timeout=timeout))
    assert path is not None
    return path.parent


def resolve_checkpoint(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local directory holding the checkpoint: ``name_or_path`` itself, or the hub snapshot.

    For a hub id the local HF cache is tried first; the hub is asked only when the cache lacks a complete
    snapshot (and not at all with ``HF_HUB_OFFLINE=1``). Raises FileNotFoundError saying what failed.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"name_or_path must be a directory or a hub id (str or path), got {type(name_or_path).__name__}"
        )
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} is a file; pass the checkpoint directory that holds config.json")
    name = str(name_or_path)
    if not looks_like_repo_id(name):
        raise FileNotFoundError(f"no checkpoint directory at {path} (and {name!r} is not a hub repo id)")
    cached, why = _cached_snapshot(name, revision)
    if cached is not None:
        return cached
    fix = (
        f"Download it where there is network ({DOWNLOAD_COMMAND} {name}"
        + (f" --revision {revision}" if revision else "")
        + ") or pass a local directory."
    )
    if _offline():
        raise FileNotFoundError(
            f"could not get {name!r}: HF_HUB_OFFLINE is set and the model is not in the local HF cache "
            f"({why}). {fix}"
        )
    try:
        return _download(name, revision)
    except Exception as err:  # no network, timeout, no such repo, gated ...
        raise FileNotFoundError(
            f"could not get {name!r} from the Hugging Face hub: {type(err).__name__}: {err} "
            f"(local cache: {why}). {fix}"
        ) from err
