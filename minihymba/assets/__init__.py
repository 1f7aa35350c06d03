"""Small trained models shipped inside the package (safetensors + config.json, hub layout), read offline.

``assets_path("tiny-mqar")`` is the directory of one of them; ``load_tiny()`` loads the MQAR model
(see ``tiny-mqar/README.md`` for how it was trained and how to reproduce it bit for bit).
"""

from __future__ import annotations

from pathlib import Path

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
    """Load a shipped tiny model (float32, CPU, eval mode), offline."""
    return load_pretrained(assets_path(name)).eval()
