"""Shared fixtures for the minihymba test suite.

* ``fixture_dir`` / ``real_config_path``: the checked-in checkpoints (tests never read ``../shared``).
* ``reference``: NVIDIA's reference outputs for ``hymba-tiny-a`` ({name: float32 tensor}).
* ``fixture_inputs``: ``inputs_and_generation.json`` as a dict.
* ``fixture_model``: the tiny checkpoint loaded once per session (float32, eval). Read-only.
* ``tiny_config``: ``HymbaConfig.tiny()``, a small config with every layer kind -- global layers, an
  unshared sliding-window layer, a two-layer KV group and a three-layer KV group -- and ``tiny_model``, a
  freshly seeded random model of it.
* ``either_model``: each test runs on ``fixture_model`` and on ``tiny_model``.
* ``attention_impl``: each test runs with the eager reference attention and with SDPA (an ``Impl``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minihymba import HymbaConfig, HymbaForCausalLM, load_pretrained
from minihymba.impl import Impl

FIXTURES = Path(__file__).parent / "fixtures"
TINY_A = FIXTURES / "hymba-tiny-a"
REAL = FIXTURES / "hymba-1.5b"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """The ``hymba-tiny-a`` checkpoint directory (config.json + model.safetensors + references)."""
    return TINY_A


@pytest.fixture(scope="session")
def real_config_path() -> Path:
    """The real Hymba-1.5B ``config.json``."""
    return REAL / "config.json"


@pytest.fixture(scope="session")
def real_shapes() -> dict[str, list[int]]:
    """{key: shape} of the real Hymba-1.5B state dict (612 keys, tied ``lm_head.weight`` included)."""
    return json.loads((REAL / "state_dict_shapes.json").read_text())


@pytest.fixture(scope="session")
def reference() -> dict[str, torch.Tensor]:
    """NVIDIA's float32 outputs for the fixture (logits, hidden states, generation logits)."""
    return load_file(TINY_A / "reference_outputs.safetensors")


@pytest.fixture(scope="session")
def fixture_inputs() -> dict:
    """``inputs_and_generation.json``: input_ids (2 x 48), the prompt and greedy continuations."""
    return json.loads((TINY_A / "inputs_and_generation.json").read_text())


@pytest.fixture(scope="session")
def fixture_model() -> HymbaForCausalLM:
    """The tiny fixture checkpoint, float32 on CPU (shared by the session: do not modify its weights)."""
    return load_pretrained(TINY_A)


@pytest.fixture(scope="session")
def tiny_config() -> HymbaConfig:
    """See :meth:`HymbaConfig.tiny`."""
    return HymbaConfig.tiny()


@pytest.fixture
def tiny_model(tiny_config: HymbaConfig) -> HymbaForCausalLM:
    """A freshly random-initialised (seeded) model of ``tiny_config``, float32, eval mode."""
    torch.manual_seed(0)
    model = HymbaForCausalLM(tiny_config)
    model.reset_parameters(std=0.1, seed=0)  # 5x the 0.02 default: logits of a few units
    return model.eval()


@pytest.fixture(params=["fixture", "tiny"])
def either_model(request, fixture_model: HymbaForCausalLM, tiny_model: HymbaForCausalLM) -> HymbaForCausalLM:
    """The fixture checkpoint, then the random tiny model."""
    return fixture_model if request.param == "fixture" else tiny_model


@pytest.fixture(params=["eager", "sdpa"])
def attention_impl(request) -> Impl:
    """The eager reference attention, then SDPA."""
    return Impl(attention=request.param)
