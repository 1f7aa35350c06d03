"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [--only S1,A1] [--json out.json]``.

Each benchmark compares minihymba with a baseline or a physical floor measured in the same process:

    S1  fused CPU scan and its compiled-chunk variant vs the scan that materialises (B, L, I, N) tensors
    S2  Blelloch parallel scan vs the fused loop (report only: slower on a few CPU cores)
    A1  attention: naive SDPA (Dk != Dv) vs q/k-padded SDPA vs compiled FlexAttention, real head geometry
    P1  prefill of 512 tokens (+128 meta) vs the same GEMMs alone (the floor), fp32 and bf16
    D1  cached decode tokens/s vs one GEMV sweep over the same weights (the floor), fp32 and bf16
    D2  one cached decode step vs re-running the full forward over prompt + 1 (what a no-cache loop pays)
    C1  cache bytes after an 8k prompt + 1 step: measured == formula; ratio to no-SWA/no-sharing
    P2  100-token prompt with the memoised meta-token cache vs recomputing the meta tokens
    L1  loading a real-shape 1.5B bf16 checkpoint: time vs reading its bytes, peak RSS vs its bytes

``--quick`` runs every benchmark at toy sizes in seconds (the smoke test); its numbers mean nothing.
Shapes: see each function; B = batch, L = sequence length, I = SSM inner width, N = SSM state size.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from minihymba import HymbaConfig, HymbaForCausalLM, save_pretrained
from minihymba.attention import attention_flex, attention_sdpa
from minihymba.generation import meta_prefix_cache
from minihymba.impl import Impl
from minihymba.masks import materialize, positional_mask_mod, to_block_mask
from minihymba.memory import cache_bytes, cache_variants
from minihymba.scan_fast import (
    selective_scan_blelloch,
    selective_scan_compiled,
    selective_scan_fused,
    selective_scan_materialized,
)
from minihymba.ssm import selective_scan_ref

from .harness import Row, format_table, interleaved, load_average, machine_info

REAL = HymbaConfig()  # the real Hymba-1.5B geometry


def _scan_inputs(length: int, width: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, length, width, generator=g)
    dt = F.softplus(torch.randn(1, length, width, generator=g) - 2)
    A = -torch.exp(torch.randn(width, n, generator=g))
    B, C = torch.randn(1, length, n, generator=g), torch.randn(1, length, n, generator=g)
    D, z = torch.randn(width, generator=g), torch.randn(1, length, width, generator=g)
    return x, dt, A, B, C, D, z


def bench_scan(quick: bool) -> list[Row]:
    """S1/S2: one layer's scan at Hymba's width (I=3200, N=16), B=1, fp32."""
    width, n = (256, 16) if quick else (REAL.d_inner, REAL.ssm_state_size)
    rows = []
    for length in (64,) if quick else (640, 2176):
        args = _scan_inputs(length, width, n)
        with torch.no_grad():
            y_mat, h_mat = selective_scan_materialized(*args)
            y_fused, h_fused = selective_scan_fused(*args)
            y_ref, _ = selective_scan_ref(*args)
            started = time.perf_counter()
            y_comp, h_comp = selective_scan_compiled(*args)  # the first call compiles this shape
            compile_s = time.perf_counter() - started
            candidates = {
                "materialized": partial(selective_scan_materialized, *args),
                "fused": partial(selective_scan_fused, *args),
                "compiled": partial(selective_scan_compiled, *args),
                "ref": partial(selective_scan_ref, *args),
                "materialized_time_major": partial(selective_scan_materialized, *args, time_major=True),
            }
            if length <= 640:
                candidates["blelloch"] = partial(selective_scan_blelloch, *args)
                y_bl, _ = selective_scan_blelloch(*args)
            stats = interleaved(candidates, repeat=3 if quick else 5)
        err = max(  # relative to the largest magnitude: y and h reach ~1e2 here
            ((y_fused - y_mat).abs().max() / y_mat.abs().max()).item(),
            ((h_fused - h_mat).abs().max() / h_mat.abs().max()).item(),
        )
        rel = ((y_fused - y_ref).norm() / y_ref.norm()).item()
        speedup = stats["materialized"].best / stats["fused"].best
        details = {k: vars(v) for k, v in stats.items()} | {
            "max_rel_err_vs_materialized": err,
            "rel_err_vs_ref": rel,
        }
        rows.append(
            Row(
                "S1",
                f"L={length} I={width} N={n} fp32",
                "fused speed-up vs materialising scan (mamba-ref layout B,I,L,N)",
                speedup,
                ">= 8x, rel err <= 1e-5",
                speedup >= 8 and err <= 1e-5,
                details,
            )
        )
        comp_err = max(
            ((y_comp - y_mat).abs().max() / y_mat.abs().max()).item(),
            ((h_comp - h_mat).abs().max() / h_mat.abs().max()).item(),
        )
        comp_speedup = stats["materialized"].best / stats["compiled"].best
        rows.append(
            Row(
                "S1",
                f"L={length} I={width} N={n} fp32",
                "compiled-chunk scan (opt-in) speed-up vs materialising scan",
                comp_speedup,
                ">= 8x, rel err <= 1e-5",
                comp_speedup >= 8 and comp_err <= 1e-5,
                {"max_rel_err_vs_materialized": comp_err, "first_call_s": compile_s},
            )
        )
        rows.append(
            Row(
                "S1",
                f"L={length}",
                "fused ms/layer (best)",
                1e3 * stats["fused"].best,
                "<= 60 @640",
                None if length != 640 else 1e3 * stats["fused"].best <= 60,
            )
        )
        rows.append(
            Row("S1", f"L={length}", "compiled ms/layer (best)", 1e3 * stats["compiled"].best, "report")
        )
        rows.append(
            Row(
                "S1",
                f"L={length}",
                "fused speed-up vs materialising scan, time-major (B,L,I,N) layout",
                stats["materialized_time_major"].best / stats["fused"].best,
                "report",
            )
        )
        rows.append(
            Row(
                "S1",
                f"L={length}",
                "fused speed-up vs ref loop (per-step allocations)",
                stats["ref"].best / stats["fused"].best,
                "report",
            )
        )
        if "blelloch" in stats:
            bl_err = (y_bl - y_ref).abs().max().item()
            rows.append(
                Row(
                    "S2",
                    f"L={length}",
                    "Blelloch speed vs fused (teaching path)",
                    stats["fused"].best / stats["blelloch"].best,
                    "report (< 1 expected on CPU)",
                    None,
                    {"max_abs_err_vs_ref": bl_err},
                )
            )
    return rows


def _naive_sdpa(q, k, v, mask, scale):
    """SDPA as one would first write it: dense mask, Dk=64 != Dv=128 (CPU falls back to the math path)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=scale, enable_gqa=True)


def bench_attention(quick: bool) -> list[Row]:
    """A1: one layer of sliding-window attention (W=1024, 128 meta), H=25, Hkv=5, Dk=64, Dv=128, B=1."""
    h, h_kv, dk, dv = (
        (5, 1, 16, 32) if quick else (REAL.num_heads, REAL.num_kv_heads, REAL.head_dim, REAL.v_head_dim)
    )
    window, n_meta = (32, 8) if quick else (REAL.sliding_window, REAL.num_meta_tokens)
    rows = []
    scale = 1 / math.sqrt(dk)
    for length in (128,) if quick else (640, 4224):
        pos = torch.arange(length)[None]
        mod = positional_mask_mod(pos, pos, torch.ones(1, length, dtype=torch.bool), window, n_meta)
        dense = materialize(mod, length, length, 1)
        block = to_block_mask(mod, length, length, 1)
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            q = torch.randn(1, h, length, dk, generator=g).to(dtype)
            k = torch.randn(1, h_kv, length, dk, generator=g).to(dtype)
            v = torch.randn(1, h_kv, length, dv, generator=g).to(dtype)
            name = f"L={length} {str(dtype).removeprefix('torch.')}"
            candidates = {
                "naive": partial(_naive_sdpa, q, k, v, dense, scale),
                "padded": partial(attention_sdpa, q, k, v, dense, scale),
            }
            plain_causal = length - n_meta - 1 <= window  # the SWA mask is lower-triangular here
            if plain_causal:  # what the model runs then: padded SDPA with the kernel's own causal mask
                candidates["causal"] = partial(attention_sdpa, q, k, v, None, scale)
            compile_s = None
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = _naive_sdpa(q.float(), k.float(), v.float(), dense, scale)
                if not quick:  # compiling takes 5-30 s per shape and dtype
                    start = time.perf_counter()
                    flex_out = attention_flex(q, k, v, block, scale, compiled=True)
                    compile_s = time.perf_counter() - start
                    candidates["flex"] = partial(attention_flex, q, k, v, block, scale, compiled=True)
                stats = interleaved(candidates, repeat=3)
                pad_err = (attention_sdpa(q, k, v, dense, scale).float() - ref).abs().max().item()
            details = {k: vars(s) for k, s in stats.items()} | {
                "padded_max_abs_err": pad_err,
                "flex_compile_s": compile_s,
            }
            ratio = stats["naive"].best / stats["padded"].best
            rows.append(
                Row("A1", name, "padded SDPA speed-up vs naive SDPA", ratio, ">= 2x", ratio >= 2, details)
            )
            if "causal" in stats:
                causal_err = (attention_sdpa(q, k, v, None, scale).float() - ref).abs().max().item()
                ratio = stats["naive"].best / stats["causal"].best
                metric = "causal-kernel padded SDPA (the mask is plain causal) vs naive"
                rows.append(Row("A1", name, metric, ratio, ">= 2x", ratio >= 2, {"max_abs_err": causal_err}))
            if "flex" in stats:
                flex_err = (flex_out.float() - ref).abs().max().item()
                ratio = stats["padded"].best / stats["flex"].best
                gated = length >= 4096 and dtype == torch.bfloat16
                rows.append(
                    Row(
                        "A1",
                        name,
                        "compiled flex speed-up vs padded SDPA",
                        ratio,
                        ">= 2x @4224 bf16" if gated else "report",
                        (ratio >= 2) if gated else None,
                        {"flex_max_abs_err": flex_err, "compile_s": compile_s},
                    )
                )
            else:
                rows.append(Row("A1", name, "compiled flex", "skipped in --quick", "report"))
    return rows


def _model_config(quick: bool, num_layers: int = 4) -> HymbaConfig:
    """Real widths, fewer layers: first and last global, layers 1-2 an SWA producer-consumer pair."""
    if quick:
        return REAL.replace(
            hidden_size=64,
            num_heads=4,
            num_kv_heads=2,
            intermediate_size=96,
            dt_rank=8,
            vocab_size=500,
            num_layers=4,
            global_layers=(0, 3),
            kv_share_groups=((1, 2),),
            num_meta_tokens=8,
            sliding_window=16,
        )
    return REAL.replace(num_layers=num_layers, global_layers=(0, num_layers - 1), kv_share_groups=((1, 2),))


def _make_model(cfg: HymbaConfig, dtype: torch.dtype) -> HymbaForCausalLM:
    model = HymbaForCausalLM(cfg)
    model.reset_parameters(seed=0)
    return model.to(dtype).eval()


def _linear_floor(model: HymbaForCausalLM, rows: int, head_rows: int):
    """A callable running every nn.Linear of ``model`` as a bare F.linear over ``rows`` input rows (lm_head:
    ``head_rows``): the GEMM (rows > 1) or GEMV (rows = 1) floor of a forward pass."""
    dtype = model.dtype
    jobs = []
    inputs: dict[tuple[int, int], torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            n = head_rows if name == "lm_head" else rows
            key = (n, module.in_features)
            if key not in inputs:
                inputs[key] = torch.randn(n, module.in_features).to(dtype)
            jobs.append((inputs[key], module.weight))

    def floor() -> None:
        for x, weight in jobs:
            F.linear(x, weight)

    return floor


def bench_prefill(quick: bool) -> list[Row]:
    """P1: prefill of 512 tokens (+128 meta), B=1, last-position logits, vs the same GEMMs alone."""
    cfg = _model_config(quick)
    prompt = 32 if quick else 512
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        model = _make_model(cfg, dtype)
        ids = torch.randint(3, cfg.vocab_size, (1, prompt), generator=torch.Generator().manual_seed(0))
        floor = _linear_floor(model, prompt + cfg.num_meta_tokens, 1)

        def prefill(scan_impl: str, model=model, ids=ids):
            return model(ids, last_only=True, impl=Impl(scan=scan_impl))

        with torch.no_grad():  # the warm-up call compiles the "compiled" scan for this shape
            stats = interleaved(
                {
                    "model": partial(prefill, "fused"),
                    "compiled": partial(prefill, "compiled"),
                    "floor": floor,
                },
                repeat=3,
            )
        name = f"{cfg.num_layers} layers real width, {prompt}+{cfg.num_meta_tokens} tok, {str(dtype)[6:]}"
        details = {k: vars(s) for k, s in stats.items()} | {"attention": "auto"}
        for key, scan in (("model", "fused scan (default)"), ("compiled", "compiled scan (opt-in)")):
            ratio = stats[key].best / stats["floor"].best
            rows.append(
                Row(
                    "P1",
                    f"{name}, {scan}",
                    "prefill time / GEMM floor",
                    ratio,
                    "<= 1.3x",
                    ratio <= 1.3,
                    details,
                )
            )
        del model
    return rows


def bench_decode(quick: bool) -> list[Row]:
    """D1: one-token decode steps after a 512-token prompt, B=1, vs one GEMV sweep over the same weights."""
    cfg = _model_config(quick)
    prompt = 32 if quick else 512
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        model = _make_model(cfg, dtype)
        ids = torch.randint(3, cfg.vocab_size, (1, prompt), generator=torch.Generator().manual_seed(0))
        floor = _linear_floor(model, 1, 1)
        with torch.no_grad():
            cache = model.new_cache(1)
            model(ids, cache=cache, last_only=True)
            token = ids[:, -1:]
            stats = interleaved({"decode": partial(model, token, cache=cache), "floor": floor}, repeat=10)
            # D2: one new token without the cache costs re-running the whole sequence (a no-cache loop)
            longer = torch.cat([ids, token], dim=1)  # (1, prompt + 1)
            recompute = interleaved(
                {
                    "decode": partial(model, token, cache=cache),
                    "full": partial(model, longer, last_only=True),
                },
                repeat=3,
            )
        fraction = stats["floor"].best / stats["decode"].best
        name = f"{cfg.num_layers} layers real width + lm_head, {str(dtype)[6:]}"
        details = {k: vars(s) for k, s in stats.items()} | {"tokens_per_s": 1 / stats["decode"].best}
        rows.append(
            Row("D1", name, "decode speed / GEMV-sweep floor", fraction, ">= 70%", fraction >= 0.7, details)
        )
        speedup = recompute["full"].best / recompute["decode"].best
        metric = "cached decode step speed-up vs re-running the full forward"
        details = {k: vars(s) for k, s in recompute.items()}
        rows.append(Row("D2", f"{name}, prompt {prompt}", metric, speedup, "report", None, details))
        del model
    return rows


def bench_cache(quick: bool) -> list[Row]:
    """C1: cache bytes after an 8k-token prompt + one decode step, real 1.5B cache geometry, bf16, B=1.

    Every cache tensor's shape depends only on layer roles, Hkv, Dk, Dv, I, N and K. The MLP width and
    the vocabulary size do not enter it, so the model run here is the real 32-layer config with the MLP
    removed (intermediate_size=0) and a 512-token vocabulary -- identical cache geometry, 40 % of the
    weights. The prompt is fed in 1024-token chunks through the cached forward (the result is the same
    cache a single prefill gives; chunking only bounds the memory of the global layers' attention).
    """
    cfg = REAL.replace(intermediate_size=0, vocab_size=512)
    chunk, prompt = (1024, 8192)
    if quick:
        cfg = _model_config(True).replace(intermediate_size=0)
        chunk, prompt = (16, 64)
    model = _make_model(cfg, torch.bfloat16)
    ids = torch.randint(3, cfg.vocab_size, (1, prompt + 1), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.no_grad():
        cache = model.new_cache(1)
        for i in range(0, prompt, chunk):
            model(ids[:, i : i + chunk], cache=cache, last_only=True)
        model(ids[:, prompt:], cache=cache)  # one decode step
    seconds = time.perf_counter() - start
    measured = cache.nbytes()
    measured_kv = sum(e.keys.nbytes + e.values.nbytes for e in cache.kv if e is not None)
    formula = cache_bytes(cfg, prompt + 1, dtype=torch.bfloat16)
    variants = cache_variants(cfg, prompt + 1, dtype=torch.bfloat16)
    full = variants["no_swa_no_sharing"]
    # The hub keeps every KV layer's cache untrimmed until the first decode step: M + T entries in each.
    entry = cfg.num_kv_heads * (cfg.head_dim + cfg.v_head_dim) * 2
    owners = sum(cfg.owns_kv(i) for i in range(cfg.num_layers))
    hub_untrimmed = owners * (cfg.num_meta_tokens + prompt) * entry
    name = f"T={prompt}+1, M={cfg.num_meta_tokens}, bf16, {cfg.num_layers} layers"
    details = {
        "measured": measured,
        "formula_kv": formula.kv_bytes,
        "formula_state": formula.state_bytes,
        "variants": {k: v.total for k, v in variants.items()},
        "hub_untrimmed_kv_after_prefill": hub_untrimmed,
        "fill_seconds": seconds,
        "kv_lengths": cache.kv_lengths(),
    }
    rows = [
        Row(
            "C1",
            name,
            "measured bytes == formula",
            f"{measured:,} vs {formula.total:,}",
            "exact",
            measured == formula.total,
            details,
        ),
        Row("C1", name, "KV MB (decimal), measured", measured_kv / 1e6, "78.9 (paper: 79)"),
        Row("C1", name, "all-global, unshared / Hymba (KV+state)", full.total / measured, "report (~6.2x)"),
        Row("C1", name, "hub after prefill, untrimmed KV MB", hub_untrimmed / 1e6, "reference: 271.6"),
    ]
    del model
    return rows


def bench_meta_cache(quick: bool) -> list[Row]:
    """P2: a 100-token prompt, B=1, prefill with the memoised meta-prefix cache vs recomputing meta tokens."""
    cfg = _model_config(quick)
    prompt = 12 if quick else 100
    rows = []
    for dtype in (torch.bfloat16,) if quick else (torch.float32, torch.bfloat16):
        model = _make_model(cfg, dtype)
        ids = torch.randint(3, cfg.vocab_size, (1, prompt), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            meta_prefix_cache(model, 1)  # memoise once, as a long-running server would
            fresh = model(ids, cache=model.new_cache(1), last_only=True).logits
            cached = model(ids, cache=meta_prefix_cache(model, 1), last_only=True).logits
            stats = interleaved(
                {
                    "recompute": partial(_prefill_fresh, model, ids),
                    "meta_cached": partial(_prefill_meta_cached, model, ids),
                },
                repeat=5,
            )
        ratio = stats["recompute"].best / stats["meta_cached"].best
        details = {k: vars(s) for k, s in stats.items()} | {
            "max_abs_logit_diff": (fresh - cached).abs().max().item()
        }
        name = f"{cfg.num_layers} layers real width, {prompt} tok, {str(dtype)[6:]}"
        rows.append(
            Row("P2", name, "speed-up with memoised meta cache", ratio, ">= 1.3x", ratio >= 1.3, details)
        )
        del model
    return rows


def _prefill_fresh(model: HymbaForCausalLM, ids: torch.Tensor):
    return model(ids, cache=model.new_cache(1), last_only=True)  # meta tokens computed again


def _prefill_meta_cached(model: HymbaForCausalLM, ids: torch.Tensor):
    return model(ids, cache=meta_prefix_cache(model, 1), last_only=True)  # meta state copied from the memo


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


def bench_loading(quick: bool) -> list[Row]:
    """L1: load a real-shape Hymba-1.5B bf16 checkpoint (random values, written here, deleted after)."""
    cfg = _model_config(True) if quick else REAL
    with tempfile.TemporaryDirectory(prefix="minihymba-bench-") as tmp:
        directory = Path(tmp)
        _write_random_checkpoint(cfg, directory)
        nbytes = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
        root = Path(__file__).resolve().parent.parent
        results = {}
        for mode in ("read", "load", "read", "load"):  # interleaved; the files are in the page cache by now
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
        Row(
            "L1",
            name,
            "load time (weights resident) / read-bytes time",
            load["seconds"] / read_s,
            "report",
            None,
            details,
        ),
        Row(
            "L1",
            name,
            "peak RSS (above import baseline) / checkpoint bytes",
            extra_rss / nbytes,
            "<= 1.2x",
            extra_rss / nbytes <= 1.2,
        ),
    ]


BENCHMARKS = {
    "S1": bench_scan,
    "A1": bench_attention,
    "P1": bench_prefill,
    "D1": bench_decode,
    "C1": bench_cache,
    "P2": bench_meta_cache,
    "L1": bench_loading,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="toy sizes, seconds (smoke test)")
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. S1,A1")
    parser.add_argument("--json", type=Path, help="write machine info and every row here")
    args = parser.parse_args(argv)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark ids {unknown}; choose from {list(BENCHMARKS)}")
    info = machine_info()
    print(f"# machine: {json.dumps(info)}", flush=True)
    rows, timings = [], {}
    start = time.perf_counter()
    for bench_id in chosen:
        t0 = time.perf_counter()
        new_rows = BENCHMARKS[bench_id](args.quick)
        timings[bench_id] = time.perf_counter() - t0
        rows += new_rows
        print(format_table(new_rows).split("\n", 2)[-1], f"   ({timings[bench_id]:.1f} s)", flush=True)
    if args.quick:  # toy sizes: the targets do not apply
        for row in rows:
            row.passed = None
    info["loadavg_end"] = load_average()
    info["wall_seconds"] = {**timings, "total": time.perf_counter() - start}
    print("\n" + format_table(rows))
    total = info["wall_seconds"]["total"]
    print(f"\nloadavg start {info['loadavg']} end {info['loadavg_end']}; total {total:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "quick": args.quick, "rows": [r.as_dict() for r in rows]},
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
