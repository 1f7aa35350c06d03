"""One-shot GPU check: ``python benchmarks/gpu_check.py [--out gpu_check.json] [--quick]``.

Runs from a source checkout with only torch installed (no ``pip install``): the repository root is put on
``sys.path`` when the file is run as a script. About 3-6 minutes on one GPU, compiles included. On a
machine without CUDA it prints one ``no CUDA`` line and exits with code 0 (nothing to check is not a
failure); every other outcome writes the JSON report and exits 0 as well -- a failed check is a
``"passed": false`` or an ``"error"`` in the report, never a crash -- except for bad arguments (2).

What it checks, at the real Hymba-1.5B widths, bf16 on the GPU:

a. ``attention``: compiled FlexAttention over the model's BlockMask vs q/k-padded SDPA with the dense mask
   vs the eager reference (fp32 maths), sliding window W = 1024 + 128 meta tokens, at 640 and 8192+128
   positions: parity, timings, and the fraction of 128 x 128 blocks the BlockMask skips.
b. ``model``: a random-weight model of real widths and 4 layers (global, SWA producer/consumer, global):
   full forward and cached prefill + decode steps on the GPU (bf16, and fp32) vs the same model on the CPU
   in fp32.
c. ``kernels``: mamba-ssm's ``selective_scan_fn`` and causal-conv1d's kernels (``Impl(scan="cuda")``,
   ``conv="cuda"``) vs the references, when the packages import; the compiled chunked scan on CUDA
   (Triton) vs the reference, forward and gradients. Absent packages are reported, not failed.
d. ``memory``: peak GPU memory of an 8192-token bf16 prefill with a cache vs the weights + the cache size
   of :func:`minihymba.memory.cache_bytes` (and the cache measured == the formula).

Shapes: q (B, H, S, Dk), k (B, Hkv, S, Dk), v (B, Hkv, S, Dv); ids (B, T).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script from a checkout: make `minihymba` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

NO_CUDA = "no CUDA: benchmarks/gpu_check.py needs a CUDA GPU; nothing was checked (exit code 0)"

# Tolerances (max |a - b| / max |b|): bf16 carries 8 bits of mantissa, so one layer's outputs agree to
# ~1e-2 relative; fp32 on two devices only in summation order (1e-4 after a few layers).
BF16_REL = 3e-2
FP32_REL = 1e-4


def parity(got: torch.Tensor, want: torch.Tensor, max_rel: float) -> dict[str, Any]:
    """How close ``got`` is to ``want``: max / mean absolute error, error relative to max |want|, verdict."""
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    diff = (got - want).abs()
    scale = want.abs().max().clamp_min(1e-12)
    rel = (diff.max() / scale).item() if diff.numel() else 0.0
    finite = bool(torch.isfinite(got).all())
    return {
        "max_abs": diff.max().item() if diff.numel() else 0.0,
        "mean_abs": diff.mean().item() if diff.numel() else 0.0,
        "max_rel": rel,
        "tolerance_rel": max_rel,
        "passed": finite and rel <= max_rel,
    }


def timed(fn: Callable[[], object], device: torch.device, repeat: int = 5) -> dict[str, float]:
    """Best and median seconds of ``repeat`` calls after one warm-up (which also compiles)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    started = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - started
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    times.sort()
    return {"first_s": first, "best_s": times[0], "median_s": times[len(times) // 2]}


def section(report: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one check into ``report[name]``; an exception becomes ``{"error": ..., "passed": False}``."""
    started = time.perf_counter()
    print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
    try:
        result = fn()
    except Exception as err:  # report, never crash: the other checks still run
        result = {"error": repr(err), "traceback": traceback.format_exc(limit=8), "passed": False}
    result["wall_s"] = round(time.perf_counter() - started, 2)
    report[name] = result


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Every ``"passed"`` in the report, by path, and whether all of them hold."""
    found: dict[str, bool] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("passed"), bool):
                found[path] = node["passed"]
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)

    walk(report, "")
    return {"checks": found, "all_passed": all(found.values()) if found else None}


# ------------------------------------------------------------------------------------------ a. attention
def check_attention(
    device: torch.device,
    dtype: torch.dtype,
    lengths: tuple[int, ...],
    *,
    heads: tuple[int, int, int, int] | None = None,
    window: int = 1024,
    n_meta: int = 128,
    compiled: bool = True,
) -> dict[str, Any]:
    """Flex (BlockMask) vs padded SDPA vs eager, for each total length; ``heads`` = (H, Hkv, Dk, Dv)."""
    from minihymba.config import HymbaConfig
    from minihymba.masks import materialize, positional_mask_mod, to_block_mask

    if heads is None:
        real = HymbaConfig()
        heads = (real.num_heads, real.num_kv_heads, real.head_dim, real.v_head_dim)
    h, h_kv, dk, dv = heads
    out: dict[str, Any] = {"heads": heads, "window": window, "meta": n_meta, "dtype": str(dtype)}
    g = torch.Generator().manual_seed(0)
    for length in lengths:
        q = torch.randn(1, h, length, dk, generator=g).to(device, dtype)
        k = torch.randn(1, h_kv, length, dk, generator=g).to(device, dtype)
        v = torch.randn(1, h_kv, length, dv, generator=g).to(device, dtype)
        pos = torch.arange(length, device=device)[None]
        mod = positional_mask_mod(pos, pos, torch.ones_like(pos, dtype=torch.bool), window, n_meta)
        dense = materialize(mod, length, length, 1, device)
        block = to_block_mask(mod, length, length, 1, device)
        tol = BF16_REL if dtype != torch.float32 else 1e-4
        out[f"L={length}"] = _attention_row(q, k, v, dense, block, device, tol, compiled)
    return out


def _attention_row(q, k, v, dense, block, device: torch.device, tol: float, compiled: bool) -> dict[str, Any]:
    """One length of :func:`check_attention`: parity with fp32 eager and timings of each implementation."""
    from minihymba.attention import attention_eager, attention_flex, attention_sdpa

    with torch.no_grad():
        ref, _ = attention_eager(q.float(), k.float(), v.float(), dense)
        runs = {
            "sdpa_padded": lambda: attention_sdpa(q, k, v, dense),
            "flex_compiled" if compiled else "flex": lambda: attention_flex(
                q, k, v, block, compiled=compiled
            ),
        }
        row: dict[str, Any] = {"blocks_skipped": 1 - _block_density(block)}
        for name, fn in runs.items():
            row[name] = {"parity_vs_eager": parity(fn(), ref, tol), "time": timed(fn, device)}
        row["eager"] = {"time": timed(lambda: attention_eager(q, k, v, dense), device, repeat=2)}
    return row


def _block_density(block_mask: Any) -> float:
    """Fraction of (q-block, kv-block) tiles the BlockMask computes (partial + full blocks, of all tiles)."""
    q_len, kv_len = block_mask.seq_lengths
    rows = block_mask.kv_num_blocks  # (B, H, q blocks): partial blocks per query block
    tiles = rows.numel() * -(-kv_len // block_mask.BLOCK_SIZE[1])
    full = block_mask.full_kv_num_blocks  # (B, H, q blocks) or None: blocks computed without a mask
    computed = rows.sum() + (0 if full is None else full.sum())
    return float(computed) / tiles


# -------------------------------------------------------------------------------------------- b. model
def small_real_config(num_layers: int = 4):
    """Real Hymba widths, ``num_layers`` layers: first and last global, layers 1-2 an SWA KV pair."""
    from minihymba.config import HymbaConfig

    return HymbaConfig().replace(
        num_layers=num_layers, global_layers=(0, num_layers - 1), kv_share_groups=((1, 2),)
    )


def check_model(device: torch.device, config: Any, prompt: int, decode_steps: int) -> dict[str, Any]:
    """Forward + cached prefill and decode on ``device`` (bf16 and fp32) vs the CPU fp32 model."""
    from minihymba import HymbaForCausalLM

    cpu_model = HymbaForCausalLM(config)
    cpu_model.reset_parameters(seed=0)
    cpu_model.eval()
    ids = torch.randint(
        3, config.vocab_size, (2, prompt + decode_steps), generator=torch.Generator().manual_seed(1)
    )

    def run(model: HymbaForCausalLM, dev: torch.device) -> dict[str, torch.Tensor]:
        x = ids.to(dev)
        with torch.no_grad():
            full = model(x).logits
            cache = model.new_cache(2)
            steps = [model(x[:, :prompt], cache=cache).logits]
            for t in range(prompt, prompt + decode_steps):
                steps.append(model(x[:, t : t + 1], cache=cache).logits)
        return {"forward": full, "cached": torch.cat(steps, dim=1)}

    want = run(cpu_model, torch.device("cpu"))
    out: dict[str, Any] = {"layers": config.num_layers, "prompt": prompt, "decode_steps": decode_steps}
    for dtype, tol in ((torch.float32, FP32_REL), (torch.bfloat16, BF16_REL * 5)):
        model = copy.deepcopy(cpu_model).to(device, dtype)
        got = run(model, device)
        out[str(dtype)[6:]] = {
            name: parity(got[name], want[name], tol) | {"argmax_agreement": _agreement(got[name], want[name])}
            for name in want
        }
        del model
    return out


def _agreement(got: torch.Tensor, want: torch.Tensor) -> float:
    return (got.float().cpu().argmax(-1) == want.float().cpu().argmax(-1)).float().mean().item()


# ------------------------------------------------------------------------------------------ c. kernels
def check_kernels(device: torch.device, width: int, length: int) -> dict[str, Any]:
    """mamba-ssm / causal-conv1d kernels (when importable) and the compiled scan vs the references."""
    from minihymba import kernels
    from minihymba.scan_compiled import compiled_scan_available, selective_scan_compiled
    from minihymba.ssm import causal_conv1d, random_scan_inputs, selective_scan_ref

    out: dict[str, Any] = {"width": width, "length": length}
    args = random_scan_inputs(2, length, width, 16, seed=0)
    y_ref, h_ref = selective_scan_ref(*args[:7])  # from a zero state: what selective_scan_fn covers
    on_dev = [t.to(device) for t in args]
    if kernels.available():
        y, h = kernels.selective_scan_cuda(*on_dev[:7])
        out["mamba_selective_scan_fn"] = {"y": parity(y, y_ref, FP32_REL), "h": parity(h, h_ref, FP32_REL)}
    else:
        out["mamba_selective_scan_fn"] = {"absent": kernels.unavailable_reason()}
    if kernels.conv_available():
        x = on_dev[0]
        weight = torch.randn(width, 4, generator=torch.Generator().manual_seed(2))
        bias = torch.randn(width, generator=torch.Generator().manual_seed(3))
        y_want, s_want = causal_conv1d(args[0], weight, bias)
        y, s = kernels.causal_conv1d_cuda(x, weight.to(device), bias.to(device))
        out["causal_conv1d"] = {"y": parity(y, y_want, FP32_REL), "state": parity(s, s_want, FP32_REL)}
    else:
        out["causal_conv1d"] = {"absent": kernels.unavailable_reason() or "causal-conv1d is not installed"}
    if compiled_scan_available(device):
        leaves = [t.clone().requires_grad_() for t in on_dev]
        y, h = selective_scan_compiled(*leaves)
        grads = torch.autograd.grad(y.sum() + h.sum(), leaves)
        ref_leaves = [t.clone().requires_grad_() for t in args]
        y_r, h_r = selective_scan_ref(*ref_leaves)
        ref_grads = torch.autograd.grad(y_r.sum() + h_r.sum(), ref_leaves)
        names = ("x", "dt", "A", "B", "C", "D", "z", "h0")
        out["compiled_scan"] = {
            "y": parity(y, y_r, FP32_REL),
            "h": parity(h, h_r, FP32_REL),
            "grads": {n: parity(a, b, 1e-3) for n, a, b in zip(names, grads, ref_grads, strict=True)},
        }
    else:
        out["compiled_scan"] = {"absent": "torch.compile cannot run here (no Triton)"}
    return out


# ------------------------------------------------------------------------------------------ d. memory
def check_memory(device: torch.device, config: Any, tokens: int) -> dict[str, Any]:
    """Peak GPU memory of a ``tokens``-token bf16 prefill with a cache vs weights + cache_bytes."""
    from minihymba import HymbaForCausalLM
    from minihymba.memory import cache_bytes

    model = HymbaForCausalLM(config)
    model.reset_parameters(seed=0)
    model = model.to(device, torch.bfloat16).eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    ids = torch.randint(3, config.vocab_size, (1, tokens), device=device)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.no_grad():
        cache = model.new_cache(1)
        model(ids, cache=cache, last_only=True)
        model(ids[:, -1:], cache=cache, last_only=True)  # one decode step trims the windows
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated(device) - base
    formula = cache_bytes(config, tokens + 1, dtype=torch.bfloat16).total
    measured = cache.nbytes()
    return {
        "tokens": tokens,
        "layers": config.num_layers,
        "weights_bytes": weights,
        "cache_bytes_formula": formula,
        "cache_bytes_measured": measured,
        "cache": {"passed": measured == formula},
        "peak_above_weights_bytes": peak,
        "peak_over_cache_formula": peak / formula,
    }


# ------------------------------------------------------------------------------------------------- main
def build_report(device: torch.device, quick: bool) -> dict[str, Any]:
    """Every check on ``device``; ``quick``: short sequences (a smoke run of this script)."""
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "quick": quick,
    }
    cfg = small_real_config()
    lengths = (256,) if quick else (640, 8192 + 128)
    section(report, "attention", lambda: check_attention(device, torch.bfloat16, lengths))
    section(report, "model", lambda: check_model(device, cfg, 64 if quick else 512, 4))
    section(report, "kernels", lambda: check_kernels(device, cfg.d_inner, 64 if quick else 640))
    section(report, "memory", lambda: check_memory(device, cfg, 512 if quick else 8192))
    report["summary"] = summary(report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/gpu_check.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the JSON report")
    parser.add_argument("--quick", action="store_true", help="short sequences: a smoke run")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    report = build_report(torch.device("cuda"), args.quick)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    verdict = report["summary"]["all_passed"]
    failed = [k for k, v in report["summary"]["checks"].items() if not v]
    print(f"gpu_check: all passed: {verdict}; failed: {failed or 'none'}; report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
