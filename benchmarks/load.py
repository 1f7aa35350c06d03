"""L1: loading a real-shape Hymba-1.5B bf16 checkpoint (random values, written to a temp dir, then deleted).

``load_pretrained`` with every weight made resident, against reading the same files' bytes; and the peak
resident set size above the import baseline, against the checkpoint's size. Each measurement runs in a
fresh Python process (so that RSS is its own), read and load interleaved; the files are in the page cache
by then.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from minihymba import HymbaConfig, HymbaForCausalLM, save_pretrained

from .harness import Benchmark, Row, at_most, report
from .models import REAL, model_config

LOW_PEAK = at_most(1.2)  # peak RSS above the import baseline, over the checkpoint's bytes

_LOAD_SCRIPT = r"""
import json, sys, time
import torch
from minihymba import load_pretrained
from benchmarks.harness import peak_rss_bytes

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))

path, mode = sys.argv[1], sys.argv[2]
base = rss()
start = time.perf_counter()
if mode == "read":
    total = 0
    for file in sorted(__import__("pathlib").Path(path).glob("*.safetensors")):
        with open(file, "rb") as f:
            while chunk := f.read(1 << 26):
                total += len(chunk)
    lazy = seconds = time.perf_counter() - start
else:
    model = load_pretrained(path, dtype=torch.bfloat16)
    lazy = time.perf_counter() - start
    # Tensors may still be backed by the memory-mapped file: touch one number per 4 KiB page of every
    # parameter so that all weights are resident before time and RSS are read.
    with torch.no_grad():
        for p in model.parameters():
            p.reshape(-1)[:: 4096 // p.element_size()].float().sum()
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "lazy_seconds": lazy, "base_rss": base, "peak_rss": peak_rss_bytes()}))
"""


def _write_random_checkpoint(cfg: HymbaConfig, directory: Path) -> None:
    """A save_pretrained checkpoint of ``cfg`` in bf16 with random values, built without an fp32 copy."""
    with torch.device("meta"):
        model = HymbaForCausalLM(cfg)
    model = model.to(torch.bfloat16).to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).mul_(0.02))
    save_pretrained(model, directory, max_shard_bytes=2 * 10**9)


def run(quick: bool) -> list[Row]:
    """L1: read, load, read, load (``quick``: the toy config, read and load once each)."""
    cfg = model_config(True) if quick else REAL
    rounds = ("read", "load") if quick else ("read", "load", "read", "load")  # a process each
    with tempfile.TemporaryDirectory(prefix="minihymba-bench-") as tmp:
        directory = Path(tmp)
        _write_random_checkpoint(cfg, directory)
        nbytes = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
        root = Path(__file__).resolve().parent.parent
        results: dict[str, list[dict]] = {}
        for mode in rounds:
            out = subprocess.run(
                [sys.executable, "-c", _LOAD_SCRIPT, str(directory), mode],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results.setdefault(mode, []).append(json.loads(out.strip().splitlines()[-1]))
    read_s = min(r["seconds"] for r in results["read"])
    load = min(results["load"], key=lambda r: r["seconds"])
    extra_rss = max(r["peak_rss"] - r["base_rss"] for r in results["load"])
    details = {"checkpoint_bytes": nbytes, "read": results["read"], "load": results["load"]}
    name = f"{'toy' if quick else 'real 1.5B shapes'}, bf16, {nbytes / 1e9:.2f} GB"
    return [
        report().row(
            "L1", name, "load time (weights resident) / read-bytes time", load["seconds"] / read_s, details
        ),
        LOW_PEAK.row("L1", name, "peak RSS (above import baseline) / checkpoint bytes", extra_rss / nbytes),
    ]


BENCHMARKS = [Benchmark(("L1",), "checkpoint loading", run)]
