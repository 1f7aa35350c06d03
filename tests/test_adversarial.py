"""Adversarial inputs: every bad config, checkpoint, shard index, generate argument and command line gives
one clear error naming the culprit -- never a silently different model or output, a traceback or a hang.

Every fixture is built here, in ``tmp_path``, from the tiny ``hymba-tiny-a`` checkpoint. Tables list the
cases (what is changed, the exception type, a pattern the message must contain); the property tests
(hypothesis) check that random valid configs round-trip and that random corruptions never load silently.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import minihymba.config as config_module
import minihymba.loading as loading
from minihymba import CheckpointError, HymbaConfig, HymbaForCausalLM, load_pretrained, save_pretrained
from minihymba.__main__ import main
from minihymba.config import HUB_DEFAULTS
from minihymba.tokenizer import load_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = Path(__file__).parent / "fixtures" / "tokenizer-tiny"
NAN = float("nan")
INF = float("inf")


@pytest.fixture
def hub_config(fixture_dir) -> dict:
    """The fixture's config.json as a dict (vocab 256, 6 layers, window 16, max positions 512)."""
    return json.loads((fixture_dir / "config.json").read_text())


@pytest.fixture
def fixture_state(fixture_dir) -> dict[str, torch.Tensor]:
    return load_file(fixture_dir / "model.safetensors")


@pytest.fixture
def no_tensor_reads(monkeypatch):
    """Fail if any tensor data is read: these checks must happen on the headers."""

    def forbidden(*args, **kwargs):
        raise AssertionError("tensor data was read before the checkpoint was validated")

    monkeypatch.setattr(loading, "_stream_tensors", forbidden)


def write_checkpoint(directory: Path, hf: dict, state: dict[str, torch.Tensor]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(hf))
    save_file(state, directory / "model.safetensors")
    return directory


# ------------------------------------------------------------------------------------------ config values
# (hub field, bad value, the message must name the field)
BAD_CONFIG_VALUES = [
    ("tie_word_embeddings", "false"),
    ("tie_word_embeddings", 0),
    ("rope", "true"),
    ("rope", 1),
    ("mamba_conv_bias", "false"),
    ("mamba_inner_layernorms", None),
    ("hidden_size", 64.7),
    ("hidden_size", 64.0),
    ("hidden_size", "64"),
    ("hidden_size", True),
    ("num_hidden_layers", 6.0),
    ("intermediate_size", -1),
    ("vocab_size", "256"),
    ("num_memory_tokens", None),
    ("num_memory_tokens", 8.5),
    ("sliding_window", 16.0),
    ("sliding_window", "16"),
    ("mamba_d_state", False),
    ("mamba_dt_rank", "big"),
    ("mamba_dt_rank", 0),
    ("rope_theta", 0),
    ("rope_theta", -10000.0),
    ("rope_theta", NAN),
    ("rope_theta", INF),
    ("rope_theta", "10000"),
    ("rms_norm_eps", INF),
    ("rms_norm_eps", 0.0),
    ("rms_norm_eps", NAN),
    ("rms_norm_eps", -1e-6),
    ("max_position_embeddings", 0),
    ("orig_max_position_embeddings", 1024),  # larger than max_position_embeddings (512)
    ("orig_max_position_embeddings", -1),
    ("orig_max_position_embeddings", 0),
    ("orig_max_position_embeddings", "128"),
    ("eos_token_id", 256),  # vocab_size is 256
    ("eos_token_id", -1),
    ("eos_token_id", "2"),
    ("eos_token_id", 2.0),
    ("eos_token_id", True),
    ("pad_token_id", 300),
    ("pad_token_id", -1),
    ("bos_token_id", [1]),
    ("global_attn_idx", [0, 2.0, 5]),
    ("global_attn_idx", "0,2,5"),
    ("kv_reuse_group", [[3, "4"]]),
    ("kv_reuse_group", [3, 4]),
    ("num_key_value_heads", 2.0),
    ("num_experts", True),  # True == 1 in Python, but not in JSON
    ("num_experts", 16),
    ("kv_weight_reuse", "false"),
    ("layer_type", ["h"] * 5),  # 6 layers
    ("mlp_hidden_act", None),
    ("rope_type", 1),
    ("torch_dtype", 32),
    ("model_type", None),
]


@pytest.mark.parametrize(
    ("key", "value"), BAD_CONFIG_VALUES, ids=[f"{k}={v!r}" for k, v in BAD_CONFIG_VALUES]
)
def test_bad_config_value_is_refused_naming_the_field(hub_config, key, value):
    hub_config[key] = value
    with pytest.raises(ValueError, match=key):
        HymbaConfig.from_hf_config(hub_config)


def test_config_json_that_is_not_an_object(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="JSON object"):
        HymbaConfig.from_hf_config(tmp_path)


# Missing fields NVIDIA's configuration class has no usable default for: refused, naming the field.
REFUSED_WHEN_MISSING = ["num_key_value_heads", "mlp_hidden_act", "num_experts", "vocab_size", "hidden_size"]


@pytest.mark.parametrize("key", REFUSED_WHEN_MISSING)
def test_missing_field_without_a_usable_default_is_refused(hub_config, key):
    del hub_config[key]
    with pytest.raises(ValueError, match=f"missing the required field '{key}'"):
        HymbaConfig.from_hf_config(hub_config)


def test_missing_global_layers_with_a_window_is_refused(hub_config):
    del hub_config["global_attn_idx"]
    with pytest.raises(ValueError, match="global_attn_idx"):
        HymbaConfig.from_hf_config(hub_config)


# Missing fields take NVIDIA's default: (fields deleted, attribute, expected value)
NVIDIA_DEFAULTS = [
    (["tie_word_embeddings"], "tie_word_embeddings", False),
    (["rope"], "rope", False),
    (["rope_type"], "rope_type", "default"),
    (["num_memory_tokens"], "num_meta_tokens", 0),
    (["sliding_window", "global_attn_idx", "kv_reuse_group"], "sliding_window", None),
    (["max_position_embeddings"], "max_position_embeddings", 262144),
    (["rope_theta"], "rope_theta", 10000.0),
    (["rms_norm_eps"], "rms_norm_eps", 1e-6),
    (["orig_max_position_embeddings", "rope_type"], "orig_max_position_embeddings", None),
    (["bos_token_id"], "bos_token_id", 1),
    (["eos_token_id"], "eos_token_id", 2),
    (["pad_token_id"], "pad_token_id", 0),
    (["mamba_proj_bias"], "proj_bias", False),
    (["mamba_conv_bias"], "conv_bias", True),
    (["kv_reuse_group"], "kv_share_groups", ()),
    (["layer_type"], "num_layers", 6),
]


@pytest.mark.parametrize(
    ("deleted", "attribute", "expected"), NVIDIA_DEFAULTS, ids=[a for _, a, _ in NVIDIA_DEFAULTS]
)
def test_missing_field_takes_nvidias_default(hub_config, deleted, attribute, expected):
    for key in deleted:
        del hub_config[key]
    assert getattr(HymbaConfig.from_hf_config(hub_config), attribute) == expected


def test_defaults_table_documents_every_field():
    """The table in the config module's docstring lists every field HUB_DEFAULTS decides."""
    doc = config_module.__doc__
    assert doc is not None
    for key in HUB_DEFAULTS:
        assert key in doc, key


BAD_CONFIG_FIELDS = [
    (dict(rope_theta=NAN), "rope_theta"),
    (dict(rope_theta=-1.0), "rope_theta"),
    (dict(rms_norm_eps=INF), "rms_norm_eps"),
    (dict(orig_max_position_embeddings=512), "orig_max_position_embeddings"),  # max is 256
    (dict(eos_token_id=61), "eos_token_id"),  # vocab is 61
    (dict(pad_token_id=-1), "pad_token_id"),
    (dict(global_layers=(0, 7.0)), "global_layers"),
    (dict(kv_share_groups=((2, 3.0),)), "kv_share_groups"),
    (dict(rope="yes"), "rope"),
    (dict(tie_word_embeddings=1), "tie_word_embeddings"),
    (dict(num_meta_tokens=True), "num_meta_tokens"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_CONFIG_FIELDS, ids=[str(c) for c, _ in BAD_CONFIG_FIELDS])
def test_bad_dataclass_field(tiny_config, changes, field):
    with pytest.raises(ValueError, match=field):
        tiny_config.replace(**changes)


# ------------------------------------------------------------------------------------------ tied heads
def different_head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = dict(state)
    state["lm_head.weight"] = state["model.embed_tokens.weight"].flip(0).contiguous()
    return state


def test_own_head_with_tied_config_that_differs_is_refused(tmp_path, hub_config, fixture_state):
    directory = write_checkpoint(tmp_path, hub_config, different_head(fixture_state))
    with pytest.raises(CheckpointError, match=r"lm_head\.weight.*tie_word_embeddings"):
        load_pretrained(directory)


@pytest.mark.parametrize("how", ["missing", "false"])
def test_own_head_with_untied_or_missing_tie_is_used(tmp_path, hub_config, fixture_state, how):
    """NVIDIA's default is tie_word_embeddings=false: the checkpoint's own head is kept, not discarded."""
    if how == "missing":
        del hub_config["tie_word_embeddings"]
    else:
        hub_config["tie_word_embeddings"] = False
    state = different_head(fixture_state)
    model = load_pretrained(write_checkpoint(tmp_path, hub_config, state))
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert torch.equal(model.lm_head.weight, state["lm_head.weight"])


def test_string_false_tie_is_refused(tmp_path, hub_config, fixture_state):
    hub_config["tie_word_embeddings"] = "false"
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        load_pretrained(write_checkpoint(tmp_path, hub_config, different_head(fixture_state)))


def test_missing_tie_without_a_head_says_why(tmp_path, hub_config, fixture_state):
    del hub_config["tie_word_embeddings"]
    with pytest.raises(CheckpointError, match=r"lm_head\.weight.*tie_word_embeddings"):
        load_pretrained(write_checkpoint(tmp_path, hub_config, fixture_state))


# -------------------------------------------------------------------------------------- tensor contents
@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize("key", ["model.layers.2.mamba.D.0", "model.embed_tokens.weight"])
def test_non_finite_weight_is_refused_naming_it(tmp_path, hub_config, fixture_state, key, value):
    fixture_state[key].view(-1)[3] = value
    directory = write_checkpoint(tmp_path, hub_config, fixture_state)
    with pytest.raises(CheckpointError, match=rf"{key}.*NaN or infinite"):
        load_pretrained(directory)
    model = load_pretrained(directory, check_finite=False)  # the escape hatch loads it as stored
    assert not torch.isfinite(model.state_dict()[key]).all()


def test_overflow_on_conversion_is_refused(tmp_path, hub_config, fixture_state):
    fixture_state["model.layers.0.mamba.D.0"][0] = 1e6  # finite in float32, inf in float16
    directory = write_checkpoint(tmp_path, hub_config, fixture_state)
    load_pretrained(directory)
    with pytest.raises(CheckpointError, match=r"model\.layers\.0\.mamba\.D\.0.*float16"):
        load_pretrained(directory, dtype="fp16")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
def test_non_float_tensor_is_refused_before_reading(
    tmp_path, hub_config, fixture_state, no_tensor_reads, dtype
):
    key = "model.layers.1.mamba.conv1d.bias"
    fixture_state[key] = fixture_state[key].to(dtype)
    directory = write_checkpoint(tmp_path, hub_config, fixture_state)
    with pytest.raises(CheckpointError, match=rf"not stored as floating point.*{key}"):
        load_pretrained(directory)


def test_mixed_float_dtypes_need_a_dtype(tmp_path, hub_config, fixture_state, no_tensor_reads, monkeypatch):
    key = "model.layers.1.mamba.A_log.0"
    fixture_state[key] = fixture_state[key].bfloat16()
    directory = write_checkpoint(tmp_path, hub_config, fixture_state)
    with pytest.raises(CheckpointError, match=r"mixed floating-point dtypes.*BF16.*F32.*dtype="):
        load_pretrained(directory)
    monkeypatch.undo()  # reading allowed again: with a dtype, every tensor is converted to it
    model = load_pretrained(directory, dtype="float32")
    assert {p.dtype for p in model.parameters()} == {torch.float32}


# ---------------------------------------------------------------------------------------- shard indexes
def sharded(tmp_path: Path, fixture_model) -> Path:
    save_pretrained(fixture_model, tmp_path, max_shard_bytes=200_000)
    return tmp_path


def first_key(directory: Path) -> str:
    return next(iter(json.loads((directory / "model.safetensors.index.json").read_text())["weight_map"]))


BAD_INDEXES = [
    ("weight_map is a list", lambda idx, key: {**idx, "weight_map": list(idx["weight_map"].values())}),
    ("weight_map is missing", lambda idx, key: {"metadata": idx["metadata"]}),
    ("weight_map is empty", lambda idx, key: {**idx, "weight_map": {}}),
    ("index is a list", lambda idx, key: [idx]),
    ("shard name is a number", lambda idx, key: {**idx, "weight_map": {**idx["weight_map"], key: 5}}),
    ("shard name is null", lambda idx, key: {**idx, "weight_map": {**idx["weight_map"], key: None}}),
    (
        "shard path escapes",
        lambda idx, key: {
            **idx,
            "weight_map": {**idx["weight_map"], key: "../model-00001-of-00002.safetensors"},
        },
    ),
    (
        "absolute shard path",
        lambda idx, key: {**idx, "weight_map": {**idx["weight_map"], key: "/etc/model.safetensors"}},
    ),
    (
        "shard in a sub-directory",
        lambda idx, key: {**idx, "weight_map": {**idx["weight_map"], key: "sub/model.safetensors"}},
    ),
]


@pytest.mark.parametrize(("case", "corrupt"), BAD_INDEXES, ids=[c for c, _ in BAD_INDEXES])
def test_malformed_shard_index(tmp_path, fixture_model, case, corrupt):
    directory = sharded(tmp_path / "ckpt", fixture_model)
    index_path = directory / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps(corrupt(index, first_key(directory))))
    with pytest.raises(CheckpointError, match=r"model\.safetensors\.index\.json.*weight_map"):
        load_pretrained(directory)


def test_escaping_shard_is_refused_even_when_the_file_exists(tmp_path, fixture_model):
    """A ``..`` path must be refused for what it is, not followed to a file outside the checkpoint."""
    directory = sharded(tmp_path / "ckpt", fixture_model)
    index_path = directory / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = sorted(set(index["weight_map"].values()))[0]
    shutil.copy(directory / shard, tmp_path / shard)  # the same file, outside the checkpoint directory
    index["weight_map"] = {k: (f"../{v}" if v == shard else v) for k, v in index["weight_map"].items()}
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"weight_map.*'\.\./model-00001"):
        load_pretrained(directory)


# -------------------------------------------------------------------------------------------- devices
def test_bad_device_names_it(fixture_dir):
    with pytest.raises(ValueError, match="bogus"):
        load_pretrained(fixture_dir, device="bogus")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_clear_error(fixture_dir):
    with pytest.raises(ValueError, match=r"device cuda is not available here.*device='cpu'"):
        load_pretrained(fixture_dir, device="cuda")


# -------------------------------------------------------------------------------------------- generate
PROMPT = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])

# (generate keyword arguments, exception type, pattern naming the argument)
BAD_GENERATE_ARGUMENTS = [
    (dict(eos_token_id="2"), TypeError, "eos_token_id"),
    (dict(eos_token_id=2.0), TypeError, "eos_token_id"),
    (dict(eos_token_id=torch.tensor(2)), TypeError, "eos_token_id"),
    (dict(eos_token_id=[2, "3"]), TypeError, "eos_token_id"),
    (dict(eos_token_id=True), TypeError, "eos_token_id"),
    (dict(eos_token_id=-1), ValueError, "eos_token_id"),
    (dict(eos_token_id=5000), ValueError, "eos_token_id"),
    (dict(pad_token_id=-1), ValueError, "pad_token_id"),
    (dict(pad_token_id=61), ValueError, "pad_token_id"),  # vocab is 61
    (dict(pad_token_id="0"), TypeError, "pad_token_id"),
    (dict(do_sample=True, temperature="0.7"), TypeError, "temperature"),
    (dict(temperature="0.7"), TypeError, "temperature"),
    (dict(do_sample=True, temperature=NAN), ValueError, "temperature"),
    (dict(do_sample=True, temperature=INF), ValueError, "temperature"),
    (dict(do_sample=True, top_p="0.9"), TypeError, "top_p"),
    (dict(do_sample=True, top_p=NAN), ValueError, "top_p"),
    (dict(do_sample=True, top_k=2.0), TypeError, "top_k"),
    (dict(do_sample="yes"), TypeError, "do_sample"),
    (dict(max_new_tokens=2.5), TypeError, "max_new_tokens"),
    (dict(max_new_tokens="3"), TypeError, "max_new_tokens"),
    (dict(max_new_tokens=True), TypeError, "max_new_tokens"),
    (dict(input_ids=PROMPT.to(torch.uint8)), TypeError, "input_ids.*uint8"),
    (dict(input_ids=PROMPT.to(torch.int16)), TypeError, "input_ids.*int16"),
    (dict(attention_mask=torch.tensor([[-1, 1, 1, 1], [1, 1, 1, 1]])), ValueError, "attention_mask"),
    (dict(attention_mask=torch.tensor([[0.0, 1.0, 1.0, 1.0]] * 2)), ValueError, "attention_mask"),
    (dict(attention_mask=torch.tensor([[2, 2, 2, 2]] * 2)), ValueError, "attention_mask"),
]


@pytest.mark.parametrize("max_new_tokens", [3, 0])  # max_new_tokens=0 still checks everything
@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    BAD_GENERATE_ARGUMENTS,
    ids=[",".join(f"{k}={v!r}"[:40] for k, v in kw.items()) for kw, _, _ in BAD_GENERATE_ARGUMENTS],
)
def test_bad_generate_argument(tiny_model, kwargs, error, pattern, max_new_tokens):
    kwargs = {"max_new_tokens": max_new_tokens, **kwargs}
    input_ids = kwargs.pop("input_ids", PROMPT)
    with pytest.raises(error, match=pattern):
        tiny_model.generate(input_ids, **kwargs)


def test_type_errors_are_still_value_errors_for_old_callers(tiny_model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_model.generate(PROMPT, max_new_tokens=2.5)


@pytest.mark.parametrize("pad", [-1, 0])
def test_generate_and_forward_refuse_the_same_mask(tiny_model, pad):
    """A mask of -1s at the pad positions is refused by both, with the same message (one shared check)."""
    mask = torch.tensor([[pad, pad, 1, 1], [1, 1, 1, 1]])
    if pad == 0:  # the valid mask works in both
        tiny_model(PROMPT, attention_mask=mask)
        tiny_model.generate(PROMPT, attention_mask=mask, max_new_tokens=1)
        return
    with pytest.raises(ValueError) as from_forward:
        tiny_model(PROMPT, attention_mask=mask)
    with pytest.raises(ValueError) as from_generate:
        tiny_model.generate(PROMPT, attention_mask=mask, max_new_tokens=2)
    assert str(from_forward.value) == str(from_generate.value)


def test_nan_weights_stop_generation_naming_the_step(tiny_model):
    with torch.no_grad():
        tiny_model.model.final_layernorm.weight[0] = NAN
    for sampling in (dict(), dict(do_sample=True, generator=torch.Generator().manual_seed(0))):
        with pytest.raises(FloatingPointError, match=r"step 0 \(rows \[0, 1\]\).*NaN or inf"):
            tiny_model.generate(PROMPT, max_new_tokens=4, **sampling)


def test_long_prompt_warns_once():
    torch.manual_seed(0)
    model = HymbaForCausalLM(
        HymbaConfig.tiny(max_position_embeddings=8, orig_max_position_embeddings=8)
    ).eval()
    model.reset_parameters(seed=0)
    with pytest.warns(UserWarning, match=r"10 tokens.*max_position_embeddings \(8\)") as record:
        model.generate(torch.arange(3, 13)[None], max_new_tokens=3)
    assert len([w for w in record if "max_position_embeddings" in str(w.message)]) == 1


def test_huge_max_new_tokens_is_not_preallocated(tiny_model):
    """Generation starts (nothing of size max_new_tokens is allocated up front); only the full-width result
    of rows that stopped early cannot be built, which is a clear MemoryError."""
    first = int(tiny_model.generate(PROMPT[:1], max_new_tokens=1, eos_token_id=None)[0, -1])
    steps = []
    with pytest.raises(MemoryError, match=r"max_new_tokens 10+.*smaller max_new_tokens"):
        tiny_model.generate(PROMPT[:1], max_new_tokens=10**15, eos_token_id=first, streamer=steps.append)
    assert len(steps) == 1


# -------------------------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("tokenizer.json", '{"version": "1.0", "model": ', r"tokenizer\.json is not valid JSON"),
        ("tokenizer_config.json", "not json", r"tokenizer_config\.json is not valid JSON"),
        ("tokenizer.json", '{"version": "1.0"}', r"cannot load the tokenizer.*tokenizer\.json"),
    ],
)
def test_broken_tokenizer_file_is_named(tmp_path, name, content, pattern):
    for file in TOKENIZER_DIR.glob("*.json"):
        shutil.copy(file, tmp_path / file.name)
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=pattern):
        load_tokenizer(tmp_path)


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory, fixture_dir) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fixture_dir / name, directory / name)
    for file in TOKENIZER_DIR.glob("*.json"):
        shutil.copy(file, directory / file.name)
    return directory


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory, cli_checkpoint) -> Path:
    directory = tmp_path_factory.mktemp("cli-nan")
    for file in cli_checkpoint.iterdir():
        shutil.copy(file, directory / file.name)
    state = load_file(directory / "model.safetensors")
    state["model.final_layernorm.weight"][1] = NAN
    save_file(state, directory / "model.safetensors")
    return directory


def run_main(capsys, *args: str) -> tuple[int, str]:
    """Run the command line in this process: (exit code, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


def error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("minihymba: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


# (extra arguments, exit code, pattern of the error line); {nan} is the checkpoint with a NaN weight
BAD_COMMAND_LINES = [
    (["--device", "bogus"], 1, r"--device 'bogus' is not a device"),
    (["--seed", str(2**70), "--temperature", "0.8"], 1, r"--seed must be in"),
    (["--seed", "-1", "--temperature", "0.8"], 1, r"--seed must be in"),
    (["--max-new-tokens", "1e11"], 2, r"--max-new-tokens: invalid int value: '1e11'"),
    (["--max-new-tokens", "-3"], 1, r"--max-new-tokens must be an integer >= 0"),
    (["--temperature", "nan"], 1, r"--temperature must be a finite number"),
    (["--temperature", "-1"], 1, r"--temperature must be a finite number >= 0"),
    (["--top-p", "nan"], 1, r"--top-p must be in \(0, 1\]"),
    (["--top-k", "0"], 1, r"--top-k must be an integer >= 1"),
    (["--model", "{nan}"], 1, r"model\.final_layernorm\.weight.*NaN or infinite"),
    (["--model", "{nan}", "--temperature", "0.7", "--seed", "1"], 1, r"final_layernorm.*NaN"),
]


@pytest.mark.parametrize(
    ("extra", "code", "pattern"), BAD_COMMAND_LINES, ids=[" ".join(e) for e, _, _ in BAD_COMMAND_LINES]
)
def test_bad_command_line_is_one_error_line(capsys, cli_checkpoint, nan_checkpoint, extra, code, pattern):
    extra = [str(nan_checkpoint) if a == "{nan}" else a for a in extra]
    model = [] if "--model" in extra else ["--model", str(cli_checkpoint)]
    exit_code, stderr = run_main(
        capsys, "generate", *model, "--prompt", "Hello", "--max-new-tokens", "3", *extra
    )
    assert exit_code == code
    assert re.search(pattern, error_line(stderr)), stderr  # error_line: exactly one, no traceback


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_without_cuda(capsys, cli_checkpoint):
    code, stderr = run_main(
        capsys, "generate", "--model", str(cli_checkpoint), "--prompt", "Hi", "--device", "cuda"
    )
    assert code == 1 and "--device cuda" in error_line(stderr) and "--device cpu" in error_line(stderr)


def test_cli_keeps_the_whole_hint(capsys, tmp_path, cli_checkpoint):
    """A multi-line library error (every problem of a checkpoint) is kept whole, on one line."""
    for file in cli_checkpoint.iterdir():
        shutil.copy(file, tmp_path / file.name)
    state = load_file(tmp_path / "model.safetensors")
    del state["model.layers.3.mamba.A_log.0"]
    state["extra.weight"] = torch.zeros(2)
    save_file(state, tmp_path / "model.safetensors")
    code, stderr = run_main(capsys, "generate", "--model", str(tmp_path), "--prompt", "Hi")
    line = error_line(stderr)
    assert code == 1 and "missing tensor" in line and "unexpected tensor" in line and "extra.weight" in line


def test_cli_offline_hint_names_the_download_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    code, stderr = run_main(capsys, "generate", "--model", "nobody-here/nothing", "--prompt", "Hi")
    line = error_line(stderr)
    assert code == 1 and "HF_HUB_OFFLINE" in line and "hf download nobody-here/nothing" in line
    assert "huggingface-cli" not in line


def test_cli_debug_shows_the_traceback(capsys, cli_checkpoint):
    code, stderr = run_main(
        capsys, "generate", "--model", str(cli_checkpoint), "--prompt", "Hi", "--device", "bogus", "--debug"
    )
    assert code == 1 and "Traceback" in stderr and stderr.count("minihymba: error:") == 1
    code, stderr = run_main(
        capsys, "--debug", "generate", "--model", str(cli_checkpoint), "--prompt", "Hi", "--device", "bogus"
    )
    assert code == 1 and "Traceback" in stderr


def test_cli_unexpected_error_is_one_line_too(capsys, cli_checkpoint, monkeypatch):
    """Even an error minihymba did not anticipate (here an AttributeError) is one line, named by type."""
    import minihymba.generation

    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'put'")

    monkeypatch.setattr(minihymba.generation, "generate", broken)
    code, stderr = run_main(capsys, "generate", "--model", str(cli_checkpoint), "--prompt", "Hi")
    assert code == 1 and "AttributeError: 'NoneType'" in error_line(stderr)


# ------------------------------------------------------------------------------------------ hub: no hang
class SilentServer:
    """A loopback TCP server that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def run_against(server: SilentServer, hf_home: Path, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_HOME=str(hf_home),
        HF_ENDPOINT=f"http://127.0.0.1:{server.port}",
        HF_HUB_ETAG_TIMEOUT="1",
        HF_HUB_DOWNLOAD_TIMEOUT="1",
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=150,  # the bounded wait: a hang fails the test instead of blocking it
    )


def test_hub_that_never_answers_is_an_error_not_a_hang(silent_server, tmp_path):
    start = time.monotonic()
    result = run_against(
        silent_server,
        tmp_path / "hf",
        """
        from minihymba import load_pretrained
        try:
            load_pretrained("someorg/Silent")
        except FileNotFoundError as err:
            print("FNF", err)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("FNF") and "someorg/Silent" in result.stdout, result.stdout
    assert "Timeout" in result.stdout or "timed out" in result.stdout, result.stdout
    assert silent_server.connections, "the hub was never asked (the test would prove nothing)"
    assert time.monotonic() - start < 120


def test_cached_model_loads_without_asking_the_hub(silent_server, tmp_path, fixture_dir):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someorg--Hymba-Tiny"
    (repo / "snapshots" / commit).mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fixture_dir / name, repo / "snapshots" / commit / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    result = run_against(
        silent_server,
        tmp_path / "hf",
        """
        from minihymba import load_pretrained
        print("OK", load_pretrained("someorg/Hymba-Tiny").config.num_layers)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK 6")
    assert not silent_server.connections  # cache first: no network call at all


# ---------------------------------------------------------------------------------------- properties
@st.composite
def valid_configs(draw) -> HymbaConfig:
    """Random small valid configs covering every switch."""
    heads = draw(st.sampled_from([1, 2, 4]))
    kv_heads = draw(st.sampled_from([d for d in (1, 2, 4) if heads % d == 0]))
    head_dim = draw(st.sampled_from([2, 4, 8]))
    n_layers = draw(st.integers(1, 6))
    window = draw(st.one_of(st.none(), st.integers(1, 40)))
    global_layers = tuple(sorted(draw(st.sets(st.integers(0, n_layers - 1), max_size=n_layers))))
    groups: list[tuple[int, ...]] = []
    if window is not None:  # share keys between consecutive sliding-window layers
        local = [i for i in range(n_layers) if i not in global_layers]
        i = 0
        while i + 1 < len(local):
            if local[i + 1] == local[i] + 1 and draw(st.booleans()):
                groups.append((local[i], local[i + 1]))
                i += 2
            else:
                i += 1
    vocab = draw(st.integers(3, 300))
    max_pos = draw(st.integers(8, 4096))
    rope = draw(st.booleans())
    rope_type = draw(st.sampled_from(["ntk", "default"]))
    orig = draw(st.one_of(st.none(), st.integers(1, max_pos)))
    if rope and rope_type == "ntk" and orig is None:
        orig = max_pos
    token = st.one_of(st.none(), st.integers(0, vocab - 1))
    finite = st.floats(min_value=1e-12, max_value=1e12, allow_nan=False, allow_infinity=False)
    return HymbaConfig(
        vocab_size=vocab,
        hidden_size=heads * head_dim,
        num_layers=n_layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        intermediate_size=draw(st.integers(0, 24)),
        mlp_act=draw(st.sampled_from(["silu", "relu2"])),
        mamba_expand=draw(st.integers(1, 2)),
        ssm_state_size=draw(st.integers(1, 4)),
        conv_kernel=draw(st.integers(1, 4)),
        dt_rank=draw(st.integers(1, 3)),
        conv_bias=draw(st.booleans()),
        proj_bias=draw(st.booleans()),
        inner_layernorms=draw(st.booleans()),
        num_meta_tokens=draw(st.integers(0, 3)),
        sliding_window=window,
        global_layers=global_layers,
        kv_share_groups=tuple(groups),
        rope=rope,
        rope_type=rope_type,
        rope_theta=draw(finite),
        max_position_embeddings=max_pos,
        orig_max_position_embeddings=orig,
        rms_norm_eps=draw(finite),
        tie_word_embeddings=draw(st.booleans()),
        bos_token_id=draw(token),
        eos_token_id=draw(token),
        pad_token_id=draw(token),
        torch_dtype=draw(st.sampled_from([None, "float32", "bfloat16"])),
    )


@settings(max_examples=60, deadline=None)
@given(valid_configs())
def test_valid_configs_round_trip_through_config_json(cfg):
    hf = cfg.to_hf_config()
    assert HymbaConfig.from_hf_config(hf) == cfg
    assert HymbaConfig.from_hf_config(json.loads(json.dumps(hf))) == cfg


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_configs())
def test_valid_configs_round_trip_through_save_and_load(cfg):
    model = HymbaForCausalLM(cfg)
    model.reset_parameters(seed=0)
    with tempfile.TemporaryDirectory() as directory:
        save_pretrained(model, directory)
        loaded = load_pretrained(directory)
    assert loaded.config == cfg
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# typed fields of the fixture's config.json: a value of another JSON type must be refused
TYPED_KEYS = sorted(
    k
    for k in HUB_DEFAULTS
    if k
    not in ("torch_dtype", "model_type", "layer_type", "mlp_hidden_act", "hidden_act", "kq_norm", "rope_type")
)


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(TYPED_KEYS), form=st.sampled_from(["string", "half", "bool-ish", "list"]))
def test_config_value_of_the_wrong_type_is_always_refused(fixture_dir, key, form):
    hf = json.loads((fixture_dir / "config.json").read_text())
    value = hf[key]
    if form == "string":
        new = json.dumps(value)
    elif form == "half":
        new = value + 0.5 if isinstance(value, int) and not isinstance(value, bool) else [value]  # 64.5
    elif form == "bool-ish":
        new = int(value) if isinstance(value, bool) else (not value if value is not None else "null")
    else:
        new = [value]
    if new == value and type(new) is type(value):
        return
    hf[key] = new
    with pytest.raises(ValueError, match=key):
        HymbaConfig.from_hf_config(hf)


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = HymbaForCausalLM(HymbaConfig.tiny())
    model.reset_parameters(seed=0)
    directory = save_pretrained(model, tmp_path_factory.mktemp("tiny"))
    return directory, {k: v.clone() for k, v in model.state_dict().items()}


def header_length(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["truncate", "flip-header", "drop-data"]),
    where=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    xor=st.integers(1, 255),
)
def test_corrupted_checkpoint_never_loads_silently(saved_tiny, kind, where, xor):
    """A corrupted file either raises a clear error or loads exactly the saved weights (a harmless change,
    such as one whitespace character for another in the header)."""
    directory, expected = saved_tiny
    data = (directory / "model.safetensors").read_bytes()
    n = header_length(data)
    if kind == "truncate":
        corrupt = data[: int(where * len(data))]
    elif kind == "flip-header":
        i = 8 + int(where * (n - 8))
        corrupt = data[:i] + bytes([data[i] ^ xor]) + data[i + 1 :]
    else:  # the end of the data region is cut away
        corrupt = data[: n + int(where * (len(data) - n))]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(directory / "config.json", Path(tmp) / "config.json")
        (Path(tmp) / "model.safetensors").write_bytes(corrupt)
        try:
            model = load_pretrained(tmp)
        except (CheckpointError, ValueError) as err:
            assert str(err)
            return
    state = model.state_dict()
    for key, value in expected.items():
        assert torch.equal(state[key], value), f"{kind} at {where}: {key} loaded silently different"


def test_copy_of_config_module_table_is_not_stale():
    """HUB_DEFAULTS is what from_hf_config uses: deleting every defaulted field gives those values."""
    hf = {
        "vocab_size": 50,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 8,
        "mlp_hidden_act": "silu",
        "num_experts": 1,
    }
    cfg = HymbaConfig.from_hf_config(copy.deepcopy(hf))
    assert cfg.to_hf_config()["tie_word_embeddings"] is HUB_DEFAULTS["tie_word_embeddings"]
    assert (cfg.rope, cfg.num_meta_tokens, cfg.sliding_window) == (False, 0, None)
    assert (cfg.max_position_embeddings, cfg.rope_theta, cfg.rms_norm_eps) == (262144, 10000.0, 1e-6)
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (1, 2, 0)
    assert math.ceil(16 / 16) == cfg.dt_rank
