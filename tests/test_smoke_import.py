"""``import minihymba`` is light and self-contained: no plotting or transformers at import time, and no
need for the optional CUDA kernels (``mamba_ssm``, ``causal_conv1d``). Checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_does_not_pull_heavy_optional_modules():
    result = run_python(
        """
        import sys
        import minihymba
        heavy = [m for m in ("matplotlib", "transformers", "ipywidgets", "mamba_ssm", "causal_conv1d",
                             "tokenizers", "sentencepiece") if m in sys.modules]
        print("HEAVY", heavy)
        print("VERSION", minihymba.__version__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
    assert "VERSION " in result.stdout


def test_works_without_mamba_ssm():
    result = run_python(
        """
        import sys
        for name in ("mamba_ssm", "causal_conv1d", "selective_scan_cuda", "causal_conv1d_cuda"):
            sys.modules[name] = None  # makes `import name` raise ImportError, as if not installed
        import torch
        import minihymba
        from minihymba import HymbaConfig, HymbaForCausalLM
        cfg = HymbaConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1,
                          intermediate_size=24, dt_rank=2, ssm_state_size=2, num_meta_tokens=2,
                          sliding_window=3, global_layers=(0,), kv_share_groups=(),
                          max_position_embeddings=64, orig_max_position_embeddings=32)
        model = HymbaForCausalLM(cfg).eval()
        with torch.no_grad():
            logits = model(torch.tensor([[1, 2, 3, 4, 5]])).logits
        print("OK", tuple(logits.shape), bool(torch.isfinite(logits).all()))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "OK (1, 5, 50) True" in result.stdout, result.stdout


def test_public_api():
    import minihymba

    for name in (
        "HymbaConfig",
        "HymbaForCausalLM",
        "HymbaOutput",
        "HymbaCache",
        "load_pretrained",
        "save_pretrained",
        "CheckpointError",
    ):
        assert name in minihymba.__all__ and hasattr(minihymba, name)
    assert issubclass(minihymba.CheckpointError, ValueError)
