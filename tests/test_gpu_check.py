"""The CPU-side logic of ``benchmarks/gpu_check.py``: the no-CUDA exit, the parity and report helpers, and
the attention / model / kernel checks run on the CPU at toy sizes (the GPU run itself needs a GPU).

Tolerances are the script's own (its constants); these tests check that identical computations pass, that
a perturbed one fails, and that the report has the promised structure.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check
from minihymba import scan_compiled

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-CUDA path")
def test_script_without_cuda_says_so_and_exits_0(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # from anywhere: the script puts the checkout on sys.path itself
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == gpu_check.NO_CUDA
    assert not (tmp_path / "r.json").exists()


def test_parity_helper():
    want = torch.tensor([1.0, -2.0, 4.0])
    assert gpu_check.parity(want.clone(), want, 1e-6) | {} == {
        "max_abs": 0.0,
        "mean_abs": 0.0,
        "max_rel": 0.0,
        "tolerance_rel": 1e-6,
        "passed": True,
    }
    off = gpu_check.parity(want + torch.tensor([0.0, 0.0, 0.4]), want, 0.05)
    assert off["max_rel"] == pytest.approx(0.1) and not off["passed"]
    assert not gpu_check.parity(torch.tensor([1.0, float("nan"), 4.0]), want, 1.0)["passed"]
    assert gpu_check.parity(want.bfloat16(), want, 1e-2)["passed"]  # compared in float32 on the CPU


def test_section_and_summary():
    report: dict = {}
    gpu_check.section(report, "good", lambda: {"x": {"passed": True}})
    gpu_check.section(report, "bad", lambda: 1 / 0)
    assert "ZeroDivisionError" in report["bad"]["error"] and report["bad"]["passed"] is False
    assert "wall_s" in report["good"]
    summary = gpu_check.summary(report)
    assert summary == {"checks": {"good.x": True, "bad": False}, "all_passed": False}


def test_attention_check_on_cpu():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager flex on CPU warns that it materialises the scores
        out = gpu_check.check_attention(
            CPU, torch.float32, (40,), heads=(4, 2, 8, 16), window=8, n_meta=4, compiled=False
        )
    row = out["L=40"]
    assert row["sdpa_padded"]["parity_vs_eager"]["passed"]
    assert row["flex"]["parity_vs_eager"]["passed"]
    assert 0.0 <= row["blocks_skipped"] < 1.0  # one 128-block covers all 40 positions: nothing skipped
    assert row["eager"]["time"]["best_s"] > 0


def test_model_check_on_cpu(tiny_config):
    out = gpu_check.check_model(CPU, tiny_config, prompt=9, decode_steps=2)
    assert out["float32"]["forward"]["passed"] and out["float32"]["cached"]["passed"]
    assert out["float32"]["forward"]["max_abs"] == 0.0  # the same device and dtype: identical
    assert set(out["bfloat16"]) == {"forward", "cached"}


def test_kernels_check_reports_absent_packages(monkeypatch):
    monkeypatch.setattr(scan_compiled, "compiled_scan_available", lambda device: False)
    out = gpu_check.check_kernels(CPU, width=8, length=5)
    assert "absent" in out["mamba_selective_scan_fn"] and "absent" in out["causal_conv1d"]
    assert "absent" in out["compiled_scan"]
    assert gpu_check.summary({"kernels": out})["all_passed"] is None  # nothing ran: no verdict


def test_small_real_config_has_every_layer_kind():
    cfg = gpu_check.small_real_config()
    assert cfg.num_layers == 4 and cfg.global_layers == (0, 3) and cfg.kv_share_groups == ((1, 2),)
