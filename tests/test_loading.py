"""Loading and saving checkpoints: layouts, dtypes, the hub path (offline) and every way a file can be bad.

All checkpoints are written to ``tmp_path`` with ``save_pretrained`` or by hand with ``safetensors``; no
network is used (hub downloads are replaced by a monkeypatch or a pre-populated offline HF cache).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import minihymba.loading as loading
from minihymba import CheckpointError, HymbaForCausalLM, load_pretrained, save_pretrained

ATOL = 1e-4
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fixture_ids(fixture_inputs) -> torch.Tensor:
    return torch.tensor(fixture_inputs["input_ids"])


def assert_same_weights(a: HymbaForCausalLM, b: HymbaForCausalLM) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], atol=0, rtol=0, msg=key)


def copy_fixture(fixture_dir: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fixture_dir / name, dest / name)
    return dest


# ---------------------------------------------------------------------------------------------- layouts
def test_fixture_loads_and_matches_reference(fixture_dir, reference, fixture_ids):
    model = load_pretrained(fixture_dir, device="cpu")
    assert not model.training and model.dtype == torch.float32 and model.device.type == "cpu"
    assert "lm_head.weight" not in load_file(fixture_dir / "model.safetensors")  # tied head absent
    assert model.lm_head.weight is model.model.embed_tokens.weight
    with torch.no_grad():
        torch.testing.assert_close(model(fixture_ids).logits, reference["logits"], atol=ATOL, rtol=0)


def test_single_file_round_trip(fixture_model, tmp_path, reference, fixture_ids):
    save_pretrained(fixture_model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert "lm_head.weight" not in load_file(tmp_path / "model.safetensors")  # tied head omitted
    loaded = load_pretrained(tmp_path)
    assert_same_weights(loaded, fixture_model)
    assert loaded.config == fixture_model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(fixture_ids).logits, reference["logits"], atol=ATOL, rtol=0)


def test_sharded_round_trip(fixture_model, tmp_path, reference, fixture_ids):
    save_pretrained(fixture_model, tmp_path, max_shard_bytes=400_000)
    shards = sorted(tmp_path.glob("model-*-of-*.safetensors"))
    assert len(shards) > 2 and not (tmp_path / "model.safetensors").exists()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {p.name for p in shards}
    assert set(index["weight_map"]) == set(fixture_model.state_dict()) - {"lm_head.weight"}
    assert index["metadata"]["total_size"] == sum(
        t.nbytes for k, t in fixture_model.state_dict().items() if k != "lm_head.weight"
    )
    loaded = load_pretrained(tmp_path)
    assert_same_weights(loaded, fixture_model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(fixture_ids).logits, reference["logits"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("layouts", [(400_000, None), (None, 400_000), (200_000, 400_000)])
def test_saving_over_another_layout_leaves_no_stale_weights(fixture_model, tmp_path, layouts):
    """An index left from an earlier sharded save would shadow a new single file (the loader prefers it)."""
    first, second = layouts
    save_pretrained(fixture_model, tmp_path, max_shard_bytes=first)
    other = load_pretrained(tmp_path)
    other.reset_parameters(seed=7)  # same config, different weights
    save_pretrained(other, tmp_path, max_shard_bytes=second)
    assert_same_weights(load_pretrained(tmp_path), other)
    names = {p.name for p in tmp_path.iterdir()}
    if second is None:
        assert names == {"config.json", "model.safetensors"}
    else:
        index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
        assert names == {"config.json", "model.safetensors.index.json", *index["weight_map"].values()}


def test_save_in_place_over_the_loaded_files(fixture_dir, fixture_model, tmp_path):
    """Loaded weights may be memory-mapped views of the files: re-saving into the same directory works."""
    copy_fixture(fixture_dir, tmp_path)
    model = load_pretrained(tmp_path)
    save_pretrained(model, tmp_path, dtype="bfloat16")
    reloaded = load_pretrained(tmp_path)
    for key, value in fixture_model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value.bfloat16(), atol=0, rtol=0, msg=key)
    for key, value in fixture_model.state_dict().items():  # the model that was saved is unharmed
        torch.testing.assert_close(model.state_dict()[key], value, atol=0, rtol=0, msg=key)


def test_tied_head_present_in_file(fixture_dir, tmp_path, fixture_model):
    state = load_file(fixture_dir / "model.safetensors")
    state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()
    save_file(state, tmp_path / "model.safetensors")
    shutil.copy(fixture_dir / "config.json", tmp_path)
    loaded = load_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert_same_weights(loaded, fixture_model)


def test_untied_config_needs_lm_head(tiny_config, tmp_path):
    untied = HymbaForCausalLM(tiny_config.replace(tie_word_embeddings=False))
    untied.reset_parameters(seed=1)
    save_pretrained(untied, tmp_path)
    assert "lm_head.weight" in load_file(tmp_path / "model.safetensors")
    loaded = load_pretrained(tmp_path)
    assert loaded.lm_head.weight is not loaded.model.embed_tokens.weight
    assert_same_weights(loaded, untied)

    state = load_file(tmp_path / "model.safetensors")
    del state["lm_head.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing tensor.*lm_head\.weight"):
        load_pretrained(tmp_path)


# ---------------------------------------------------------------------------------------------- dtypes
def test_dtype_conversion(fixture_model, fixture_dir, tmp_path, fixture_ids):
    save_pretrained(fixture_model, tmp_path, dtype="bfloat16")
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert all(t.dtype == torch.bfloat16 for t in load_file(tmp_path / "model.safetensors").values())

    stored = load_pretrained(tmp_path)  # default: keep the stored dtype
    assert all(p.dtype == torch.bfloat16 for p in stored.parameters())
    up = load_pretrained(tmp_path, dtype="float32")
    assert all(p.dtype == torch.float32 for p in up.parameters())
    for key, value in stored.state_dict().items():
        torch.testing.assert_close(up.state_dict()[key], value.float(), atol=0, rtol=0, msg=key)

    short = load_pretrained(tmp_path, dtype="fp32", device=torch.device("cpu"))
    assert all(p.dtype == torch.float32 for p in short.parameters())
    down = load_pretrained(fixture_dir, dtype=torch.bfloat16)  # fp32 file read as bf16
    assert_same_weights(down, load_pretrained(fixture_dir, dtype="bf16"))
    assert all(p.dtype == torch.bfloat16 for p in down.parameters())
    assert down.lm_head.weight is down.model.embed_tokens.weight
    with torch.no_grad():
        logits = down(fixture_ids).logits
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    with torch.no_grad():
        ref = fixture_model(fixture_ids).logits
    # bf16 weights and activations: close to fp32, not equal (a loose sanity bound, not a parity claim)
    assert (logits - ref).abs().max() < 0.1 * ref.abs().max()


def test_unknown_dtype(fixture_dir):
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        load_pretrained(fixture_dir, dtype="float8")


# ---------------------------------------------------------------------------------------------- hub ids
def test_hub_id_uses_snapshot_download(monkeypatch, fixture_dir, tmp_path):
    snapshot = copy_fixture(fixture_dir, tmp_path / "snapshot")
    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append((repo_id, revision, allow_patterns))
        return str(snapshot)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = load_pretrained("someorg/Hymba-Tiny", revision="v1")
    assert calls and calls[0][:2] == ("someorg/Hymba-Tiny", "v1")
    assert "*.safetensors" in calls[0][2] and "config.json" in calls[0][2]
    assert not any(p.endswith((".bin", ".pt", ".py")) for p in calls[0][2])  # never fetch pickles or code
    assert model.config.num_layers == 6


def test_hub_error_becomes_file_not_found(monkeypatch):
    import huggingface_hub

    def failing(**kw):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)  # not in the cache
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, *a, **kw: failing())  # no hub
    with pytest.raises(FileNotFoundError, match=r"someorg/Nothing.*no network.*hf download someorg/Nothing"):
        load_pretrained("someorg/Nothing")


def run_offline(code: str, hf_home: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with an empty, offline HF cache at ``hf_home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_CACHE=str(hf_home / "hub"), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hub_id_from_offline_cache(fixture_dir, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someorg--Hymba-Tiny"
    copy_fixture(fixture_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    result = run_offline(
        """
        import torch
        from minihymba import load_pretrained
        model = load_pretrained("someorg/Hymba-Tiny")
        with torch.no_grad():
            print("OK", model.config.num_layers, float(model(torch.tensor([[5, 6, 7]])).logits.abs().sum()))
        """,
        tmp_path / "hf",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK 6 ")


def test_offline_and_not_cached_is_a_clear_error(tmp_path):
    result = run_offline(
        """
        from minihymba import load_pretrained
        try:
            load_pretrained("someorg/Not-Cached")
        except FileNotFoundError as err:
            print("FNF", err)
        """,
        tmp_path / "hf",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("FNF")
    assert "someorg/Not-Cached" in result.stdout and "HF_HUB_OFFLINE" in result.stdout


# ------------------------------------------------------------------------------------------ bad checkpoints
@pytest.fixture
def fixture_state(fixture_dir) -> dict[str, torch.Tensor]:
    return load_file(fixture_dir / "model.safetensors")


@pytest.fixture
def no_tensor_reads(monkeypatch):
    """Fail the test if any tensor data is read: every check must happen on the headers first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("tensor data was read before the checkpoint was validated")

    monkeypatch.setattr(loading, "_stream_tensors", forbidden)


def write_checkpoint(directory: Path, fixture_dir: Path, state: dict[str, torch.Tensor]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(fixture_dir / "config.json", directory)
    save_file(state, directory / "model.safetensors")
    return directory


def test_no_tensor_reads_guard_is_live(fixture_dir, no_tensor_reads):
    """The guard used below really intercepts reads (so the tests using it can fail)."""
    with pytest.raises(AssertionError, match="tensor data was read"):
        load_pretrained(fixture_dir)


def test_missing_tensor(fixture_dir, fixture_state, tmp_path, no_tensor_reads):
    del fixture_state["model.layers.3.mamba.A_log.0"]
    write_checkpoint(tmp_path, fixture_dir, fixture_state)
    with pytest.raises(CheckpointError, match=r"1 missing tensor\(s\): model\.layers\.3\.mamba\.A_log\.0"):
        load_pretrained(tmp_path)


def test_unexpected_tensor(fixture_dir, fixture_state, tmp_path, no_tensor_reads):
    fixture_state["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(64, 64)
    write_checkpoint(tmp_path, fixture_dir, fixture_state)
    with pytest.raises(
        CheckpointError, match=r"1 unexpected tensor\(s\): model\.layers\.0\.self_attn\.q_proj"
    ):
        load_pretrained(tmp_path)


def test_wrong_shape(fixture_dir, fixture_state, tmp_path, no_tensor_reads):
    # a consumer layer (4) given an own-KV in_proj: the most likely real-world mix-up
    fixture_state["model.layers.4.mamba.in_proj.weight"] = torch.zeros(416, 64)
    write_checkpoint(tmp_path, fixture_dir, fixture_state)
    with pytest.raises(
        CheckpointError,
        match=r"model\.layers\.4\.mamba\.in_proj\.weight: checkpoint \[416, 64\] vs model \[320, 64\]",
    ):  # noqa: E501
        load_pretrained(tmp_path)


def test_all_problems_in_one_error(fixture_dir, fixture_state, tmp_path, no_tensor_reads):
    del fixture_state["model.final_layernorm.weight"]
    del fixture_state["model.memory_tokens"]
    fixture_state["model.extra.weight"] = torch.zeros(3)
    fixture_state["model.layers.1.mamba.D.0"] = torch.zeros(127)
    write_checkpoint(tmp_path, fixture_dir, fixture_state)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(tmp_path)
    message = str(info.value)
    expected = [
        "2 missing",
        "model.final_layernorm.weight",
        "model.memory_tokens",
        "1 unexpected",
        "model.extra.weight",
        "1 tensor(s) with the wrong shape",
        "model.layers.1.mamba.D.0",
    ]
    for part in expected:
        assert part in message, message


def test_tensor_in_two_shards(fixture_model, tmp_path):
    save_pretrained(fixture_model, tmp_path, max_shard_bytes=400_000)
    first, second = sorted(tmp_path.glob("model-*-of-*.safetensors"))[:2]
    key, tensor = next(iter(load_file(first).items()))
    state = load_file(second)
    state[key] = tensor
    save_file(state, second)
    with pytest.raises(CheckpointError, match=f"{re.escape(repr(key))} appears in both"):
        load_pretrained(tmp_path)


def test_truncated_file(fixture_dir, tmp_path):
    copy_fixture(fixture_dir, tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_pretrained(tmp_path)


def test_garbage_header(fixture_dir, tmp_path):
    copy_fixture(fixture_dir, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_pretrained(tmp_path)


def test_index_names_missing_shard(fixture_model, tmp_path, no_tensor_reads):
    save_pretrained(fixture_model, tmp_path, max_shard_bytes=400_000)
    victim = sorted(tmp_path.glob("model-*-of-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(CheckpointError, match=victim.name):
        load_pretrained(tmp_path)


def test_bad_index_json(fixture_model, tmp_path):
    save_pretrained(fixture_model, tmp_path, max_shard_bytes=400_000)
    (tmp_path / "model.safetensors.index.json").write_text('{"metadata": {}}')
    with pytest.raises(CheckpointError, match="index"):
        load_pretrained(tmp_path)


def test_pickle_only_directory_is_refused(fixture_dir, tmp_path, monkeypatch):
    import pickle

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a pickle was opened")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    shutil.copy(fixture_dir / "config.json", tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(os.urandom(1024))
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin.*safetensors only"):
        load_pretrained(tmp_path)


def test_empty_directory(fixture_dir, tmp_path):
    shutil.copy(fixture_dir / "config.json", tmp_path)
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_pretrained(tmp_path)


def test_bad_config_json(fixture_dir, tmp_path):
    copy_fixture(fixture_dir, tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_pretrained(tmp_path)
    hf = json.loads((fixture_dir / "config.json").read_text())
    hf["num_key_value_heads"] = 3
    (tmp_path / "config.json").write_text(json.dumps(hf))
    with pytest.raises(ValueError, match="num_kv_heads"):
        load_pretrained(tmp_path)


def test_config_not_matching_weights(fixture_dir, tmp_path, no_tensor_reads):
    copy_fixture(fixture_dir, tmp_path)
    hf = json.loads((fixture_dir / "config.json").read_text())
    hf["kv_reuse_group"] = None  # layer 4 would own its KV: its in_proj is too small
    (tmp_path / "config.json").write_text(json.dumps(hf))
    with pytest.raises(CheckpointError, match=r"model\.layers\.4\.mamba\.in_proj\.weight"):
        load_pretrained(tmp_path)


def test_nonexistent_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        load_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="is a file"):
        load_pretrained(Path(__file__))


def test_failed_load_returns_nothing(fixture_dir, fixture_state, tmp_path):
    """All or nothing: a bad file raises, no model object escapes, and the next good load works."""
    del fixture_state["model.embed_tokens.weight"]
    write_checkpoint(tmp_path / "bad", fixture_dir, fixture_state)
    model = None
    with pytest.raises(CheckpointError, match="model.embed_tokens.weight"):
        model = load_pretrained(tmp_path / "bad")
    assert model is None
    assert load_pretrained(fixture_dir).config.num_layers == 6
