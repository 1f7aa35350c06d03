"""Real size: a 1.5B-shaped bfloat16 checkpoint loads within a memory bound and runs a forward.

Two fresh subprocesses (``tests/real_size_worker.py``): one writes a sharded checkpoint with the real
Hymba-1.5B keys and shapes and random values (about 3 GB, ~1 GB shards, one tensor in memory at a time);
the other imports minihymba, records its baseline RSS, loads the checkpoint in its stored dtype, runs an
8-token forward and reports load time and peak RSS. The peak must stay within 1.3 x the checkpoint bytes
plus the baseline: the loader may not hold the weights twice.

Run with ``pytest -m slow -s tests/test_real_size.py`` to see the numbers (also written to JSON in the
test's tmp dir). Needs ~3 GB of disk and ~4 GB of RAM.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("real_size_worker.py")
FIXTURES = Path(__file__).parent / "fixtures" / "hymba-1.5b"
SHARD_BYTES = 1 << 30
GIB = 1 << 30


def run_worker(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, str(WORKER), *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"worker {args[0]} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_real_size_load_memory_and_forward(tmp_path):
    checkpoint = tmp_path / "hymba-1.5b-random-bf16"
    result_path = tmp_path / "real_size_result.json"
    try:
        run_worker(
            "write", checkpoint, FIXTURES / "state_dict_shapes.json", FIXTURES / "config.json", SHARD_BYTES
        )
        shards = sorted(checkpoint.glob("model-*.safetensors"))
        assert len(shards) >= 3
        run_worker("load", checkpoint, result_path, 8)
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)  # pytest keeps old tmp dirs: do not leave 3 GB behind
    r = json.loads(result_path.read_text())

    bound = 1.3 * r["checkpoint_bytes"] + r["baseline_peak_rss"]
    lines = [
        f"real-size load: checkpoint {r['checkpoint_bytes'] / GIB:.2f} GiB in {len(shards)} shards",
        f"  load_pretrained {r['load_s']:.2f} s, {r['n_tokens']}-token forward {r['forward_s']:.2f} s",
        f"  RSS baseline {r['baseline_peak_rss'] / GIB:.2f} GiB",
        f"  RSS right after load_pretrained {r['after_load_current_rss'] / GIB:.2f} GiB, "
        f"after reading each weight once ({r['touch_s']:.2f} s) {r['after_touch_current_rss'] / GIB:.2f} GiB",
        f"  peak RSS {r['peak_rss'] / GIB:.2f} GiB (bound {bound / GIB:.2f} GiB)",
        f"  results: {result_path}",
    ]
    print("\n" + "\n".join(lines))
    assert r["num_parameters"] == 1_522_797_824
    assert r["param_dtypes"] == ["torch.bfloat16"] and r["tied"]
    assert r["n_probes"] >= 4 and r["probe_max_abs_error"] == 0.0
    assert r["logits_shape"] == [1, 8, 32001] and r["logits_dtype"] == "torch.float32"
    assert r["logits_finite"] and r["logits_std"] > 0 and r["checksum_finite"]
    assert r["peak_rss"] <= bound, (
        f"peak RSS {r['peak_rss']} exceeds 1.3 x checkpoint + baseline = {bound:.0f}"
    )
