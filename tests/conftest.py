"""Shared fixtures for the minihymba test suite.

* ``fixture_dir`` / ``real_config_path``: the checked-in checkpoints (tests never read ``../shared``).
* ``reference``: NVIDIA's reference outputs for ``hymba-tiny-a`` ({name: float32 tensor}).
* ``fixture_inputs``: ``inputs_and_generation.json`` as a dict.
* ``fixture_model``: the tiny checkpoint loaded once per session (float32, eval). Treat it as read-only;
  tests that change ``attn_impl`` set it back.
* ``tiny_config``: a small config with every layer kind -- global layers, an unshared sliding-window
  layer, a two-layer KV group and a three-layer KV group -- and ``tiny_model`` built from it.

Other helpers may add fixtures here with small additive edits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minihymba import HymbaConfig, HymbaForCausalLM, load_pretrained

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


def make_tiny_config(**changes) -> HymbaConfig:
    """8 layers with every role: 0, 7 global; 1 SWA with its own unshared KV; (2, 3) and (4, 5, 6) KV groups.

    Sizes: D=32, H=4, Hkv=2 (Dk=8, Dv=16), I=64, N=4, M=3 meta tokens, W=5, vocab 61.
    """
    base = HymbaConfig(
        vocab_size=61,
        hidden_size=32,
        num_layers=8,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=48,
        mamba_expand=2,
        ssm_state_size=4,
        conv_kernel=4,
        dt_rank=2,
        num_meta_tokens=3,
        sliding_window=5,
        global_layers=(0, 7),
        kv_share_groups=((2, 3), (4, 5, 6)),
        max_position_embeddings=256,
        orig_max_position_embeddings=64,
        torch_dtype="float32",
    )
    return base.replace(**changes) if changes else base


@pytest.fixture(scope="session")
def tiny_config() -> HymbaConfig:
    """See :func:`make_tiny_config`."""
    return make_tiny_config()


@pytest.fixture
def tiny_model(tiny_config: HymbaConfig) -> HymbaForCausalLM:
    """A freshly random-initialised (seeded) model of ``tiny_config``, float32, eval mode."""
    torch.manual_seed(0)
    model = HymbaForCausalLM(tiny_config)
    model.reset_parameters(std=0.1, seed=0)  # 5x the 0.02 default: logits of a few units
    return model.eval()
