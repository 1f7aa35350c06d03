"""Subprocess worker for ``test_real_size.py`` (run as a script, so each step has a clean process and RSS).

    python tests/real_size_worker.py write DIR SHAPES_JSON CONFIG_JSON SHARD_BYTES
        Write a sharded bfloat16 checkpoint with the given {key: shape} map and random values. The
        safetensors files are written by hand, one tensor at a time (header first, then each tensor's
        bytes), so the writer never holds more than one tensor -- and the loader is checked against files
        that minihymba's own ``save_pretrained`` did not write.

    python tests/real_size_worker.py load DIR RESULT_JSON N_TOKENS
        Import torch + minihymba, note the baseline RSS, ``load_pretrained(DIR)`` (stored dtype), run one
        forward over N_TOKENS tokens, and write load time, RSS numbers and logits facts to RESULT_JSON.
        The sums of a few tensors, recorded by the writer in ``probes.json``, are compared after loading.

RSS numbers are bytes; ``peak`` is ``ru_maxrss`` (the high-water mark of the whole process).
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import struct
import sys
import time
from pathlib import Path


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _current_rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return _max_rss_bytes()
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def write_checkpoint(
    directory: Path, shapes: dict[str, list[int]], config_path: Path, shard_bytes: int
) -> None:
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(config_path, directory / "config.json")
    keys = [k for k in shapes if k != "lm_head.weight"]  # tied head: omitted, as save_pretrained does
    shards: list[list[str]] = [[]]
    size = 0
    for key in keys:
        nbytes = math.prod(shapes[key]) * 2  # bfloat16
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    weight_map, probes = {}, {}
    gen = torch.Generator().manual_seed(0)
    for i, shard_keys in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for key in shard_keys:
            nbytes = math.prod(shapes[key]) * 2
            header[key] = {"dtype": "BF16", "shape": shapes[key], "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # the format pads the header to 8-byte alignment
        with open(directory / name, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for key in shard_keys:
                tensor = torch.empty(shapes[key], dtype=torch.bfloat16)
                if key.endswith("A_log.0"):
                    tensor.uniform_(0.0, 2.0, generator=gen)  # A = -exp(A_log): a decay
                elif "layernorm" in key:
                    tensor.uniform_(0.5, 1.5, generator=gen)
                else:
                    tensor.uniform_(-0.05, 0.05, generator=gen)
                f.write(tensor.view(torch.int16).numpy().tobytes())
                if key in (shard_keys[0], shard_keys[-1]):
                    probes[key] = float(tensor.double().sum())  # checked after loading
                del tensor
        weight_map.update(dict.fromkeys(shard_keys, name))
    total = sum(math.prod(shapes[k]) * 2 for k in keys)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    (directory / "probes.json").write_text(json.dumps(probes))


def load_and_run(directory: Path, result_path: Path, n_tokens: int) -> None:
    import torch

    import minihymba
    from minihymba.loading import checkpoint_nbytes

    baseline_peak = _max_rss_bytes()
    baseline_current = _current_rss_bytes()
    start = time.perf_counter()
    model = minihymba.load_pretrained(directory)
    load_s = time.perf_counter() - start
    after_load_peak = _max_rss_bytes()
    after_load_current = _current_rss_bytes()
    # safetensors may hand back memory-mapped tensors that are paged in on first use: touch every weight
    # once so that reading the data is timed too (and counted in RSS before the forward runs)
    start = time.perf_counter()
    with torch.no_grad():
        checksum = sum(float(p.float().sum()) for p in model.parameters())
    touch_s = time.perf_counter() - start
    after_touch_current = _current_rss_bytes()
    ids = torch.arange(10, 10 + n_tokens)[None]  # (1, T)
    start = time.perf_counter()
    with torch.no_grad():
        logits = model(ids).logits
    forward_s = time.perf_counter() - start
    state = model.state_dict()
    probes = json.loads((directory / "probes.json").read_text())
    probe_errors = {k: abs(float(state[k].double().sum()) - v) for k, v in probes.items()}
    result = {
        "checkpoint_bytes": checkpoint_nbytes(directory),
        "num_parameters": model.num_parameters(),
        "param_dtypes": sorted({str(p.dtype) for p in model.parameters()}),
        "tied": model.lm_head.weight is model.model.embed_tokens.weight,
        "load_s": load_s,
        "touch_s": touch_s,
        "after_touch_current_rss": after_touch_current,
        "checksum_finite": math.isfinite(checksum),
        "forward_s": forward_s,
        "n_tokens": n_tokens,
        "baseline_peak_rss": baseline_peak,
        "baseline_current_rss": baseline_current,
        "after_load_peak_rss": after_load_peak,
        "after_load_current_rss": after_load_current,
        "peak_rss": _max_rss_bytes(),
        "logits_shape": list(logits.shape),
        "logits_dtype": str(logits.dtype),
        "logits_finite": bool(torch.isfinite(logits).all()),
        "logits_std": float(logits.std()),
        "probe_max_abs_error": max(probe_errors.values()),
        "n_probes": len(probe_errors),
    }
    result_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "write":
        write_checkpoint(Path(args[0]), json.loads(Path(args[1]).read_text()), Path(args[2]), int(args[3]))
    elif command == "load":
        load_and_run(Path(args[0]), Path(args[1]), int(args[2]))
    else:
        raise SystemExit(f"unknown command {command!r}")
