"""Small trained models shipped inside the package (safetensors + config.json, hub layout), read offline.

``assets_path(name)`` is the directory of one of them; ``load_tiny(name)`` loads it in float32:

* ``"tiny-mqar"`` (the default): a 4-layer Hymba trained on multi-query associative recall;
* ``"tiny-text"``: a 6-layer Hymba trained on English (the Python documentation), with its tokenizer;
* ``"tiny-text-no-meta"``: its twin without meta tokens (same budget, same batches in the same order).

Each directory's README says how the model was trained and how to reproduce it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..loading import load_pretrained
from ..model import HymbaForCausalLM

__all__ = ["ASSETS_DIR", "assets_path", "load_tiny"]

ASSETS_DIR = Path(__file__).resolve().parent


def assets_path(name: str) -> Path:
    """The directory of the shipped asset ``name`` (e.g. ``"tiny-mqar"``); FileNotFoundError if absent."""
    path = ASSETS_DIR / name
    if not (path / "config.json").is_file():
        available = sorted(p.name for p in ASSETS_DIR.iterdir() if (p / "config.json").is_file())
        raise FileNotFoundError(f"no shipped asset {name!r} in {ASSETS_DIR}; available: {available}")
    return path


def load_tiny(name: str = "tiny-mqar") -> HymbaForCausalLM:
    """Load a shipped tiny model (float32 whatever its storage dtype, CPU, eval mode), offline."""
    return load_pretrained(assets_path(name), dtype=torch.float32).eval()
