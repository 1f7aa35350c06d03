"""HymbaConfig: reading the hub's config.json, the real defaults, round trips and validation errors.

Every invalid value must raise ``ValueError`` with a message that names the offending field.
"""

from __future__ import annotations

import json
import re
from dataclasses import FrozenInstanceError

import pytest

from minihymba import HymbaConfig


@pytest.fixture
def fixture_hf(fixture_dir) -> dict:
    return json.loads((fixture_dir / "config.json").read_text())


@pytest.fixture
def real_hf(real_config_path) -> dict:
    return json.loads(real_config_path.read_text())


# ---------------------------------------------------------------------------------------------- reading
def test_fixture_config_fields(fixture_hf, fixture_dir):
    cfg = HymbaConfig.from_hf_config(fixture_hf)
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.num_kv_heads) == (
        256,
        64,
        6,
        4,
        2,
    )
    assert (cfg.head_dim, cfg.v_head_dim, cfg.d_inner) == (16, 32, 128)
    assert (cfg.ssm_state_size, cfg.conv_kernel, cfg.dt_rank, cfg.intermediate_size) == (4, 4, 4, 176)
    assert (cfg.num_meta_tokens, cfg.sliding_window) == (8, 16)
    assert cfg.global_layers == (0, 2, 5) and cfg.kv_share_groups == ((3, 4),)
    assert [cfg.kv_source(i) for i in range(6)] == [0, 1, 2, 3, 3, 5]
    assert [cfg.owns_kv(i) for i in range(6)] == [True, True, True, True, False, True]
    assert [cfg.is_global(i) for i in range(6)] == [True, False, True, False, False, True]
    assert (cfg.rope_type, cfg.max_position_embeddings, cfg.orig_max_position_embeddings) == ("ntk", 512, 128)
    assert cfg.tie_word_embeddings and cfg.torch_dtype == "float32"


@pytest.mark.parametrize("form", ["dict", "file", "file-str", "directory"])
def test_from_hf_config_forms(form, fixture_hf, fixture_dir, real_hf, real_config_path):
    sources = {
        "dict": (fixture_hf, real_hf),
        "file": (fixture_dir / "config.json", real_config_path),
        "file-str": (str(fixture_dir / "config.json"), str(real_config_path)),
        "directory": (fixture_dir, real_config_path.parent),
    }[form]
    tiny, real = (HymbaConfig.from_hf_config(s) for s in sources)
    assert tiny == HymbaConfig.from_hf_config(fixture_hf)
    assert real == HymbaConfig()


def test_real_config_is_the_default(real_hf):
    cfg = HymbaConfig.from_hf_config(real_hf)
    assert cfg == HymbaConfig()
    assert (cfg.head_dim, cfg.v_head_dim, cfg.d_inner, cfg.num_kv_groups) == (64, 128, 3200, 5)
    assert [i for i in range(32) if cfg.is_global(i)] == [0, 15, 31]
    consumers = [i for i in range(32) if not cfg.owns_kv(i)]
    assert consumers == [2, 4, 6, 8, 10, 12, 14, 17, 18, 20, 22, 24, 26, 28, 30]
    assert cfg.kv_source(17) == cfg.kv_source(18) == 16
    assert cfg.in_proj_sizes(0) == (1600, 320, 640, 3200, 3200)
    assert cfg.in_proj_sizes(2) == (1600, 3200, 3200)


@pytest.mark.parametrize("which", ["fixture", "real"])
def test_to_hf_config_round_trip(which, fixture_hf, real_hf):
    original = fixture_hf if which == "fixture" else real_hf
    cfg = HymbaConfig.from_hf_config(original)
    written = cfg.to_hf_config()
    assert written == original  # every key and value of the hub file, nothing added or lost
    assert HymbaConfig.from_hf_config(written) == cfg
    assert HymbaConfig.from_hf_config(json.loads(json.dumps(written))) == cfg


def test_replace_revalidates_and_config_is_frozen():
    cfg = HymbaConfig()
    small = cfg.replace(num_layers=4, global_layers=(0, 3), kv_share_groups=((1, 2),))
    assert small.num_layers == 4 and cfg.num_layers == 32
    with pytest.raises(FrozenInstanceError):
        cfg.num_layers = 3
    with pytest.raises(ValueError, match="global_layers"):
        cfg.replace(num_layers=4)  # layer 15 no longer exists
    assert hash(cfg) == hash(HymbaConfig())


def test_auto_dt_rank(fixture_hf, real_hf):
    fixture_hf["mamba_dt_rank"] = "auto"
    assert HymbaConfig.from_hf_config(fixture_hf).dt_rank == 4  # ceil(64 / 16)
    real_hf["mamba_dt_rank"] = "auto"
    assert HymbaConfig.from_hf_config(real_hf).dt_rank == 100  # ceil(1600 / 16)
    fixture_hf["hidden_size"] = 72
    fixture_hf["num_attention_heads"] = 4
    assert HymbaConfig.from_hf_config(fixture_hf).dt_rank == 5  # ceil(72 / 16): rounds up


def test_kv_reuse_every_i_layer_form(fixture_hf):
    del fixture_hf["kv_reuse_group"]
    fixture_hf.update(kv_reuse_every_i_layer=2, global_attn_idx=[], num_hidden_layers=5, layer_type=["h"] * 5)
    cfg = HymbaConfig.from_hf_config(fixture_hf)
    assert cfg.kv_share_groups == ((0, 1), (2, 3))


def test_global_window_none(fixture_hf):
    fixture_hf["sliding_window"] = None
    with pytest.raises(ValueError, match="kv_share_groups"):  # sharing only between sliding-window layers
        HymbaConfig.from_hf_config(fixture_hf)
    fixture_hf["kv_reuse_group"] = None
    cfg = HymbaConfig.from_hf_config(fixture_hf)
    assert cfg.sliding_window is None and all(cfg.is_global(i) for i in range(cfg.num_layers))


# ---------------------------------------------------------------------------------------------- errors
# (hub key, bad value, pattern the message must contain: the field's name)
BAD_HF_VALUES = [
    ("num_attention_heads", 5, r"num_heads|num_attention_heads"),  # 64 % 5 != 0
    ("num_key_value_heads", 3, r"num_kv_heads|num_key_value_heads"),  # 4 % 3 != 0
    ("global_attn_idx", [0, 2, 6], r"global_layers|global_attn_idx"),
    ("global_attn_idx", [0, 2, -1], r"global_layers|global_attn_idx"),
    ("kv_reuse_group", [[3, 9]], r"kv_share_groups|kv_reuse_group"),
    ("kv_reuse_group", [[3, 4], [4, 1]], r"kv_share_groups|kv_reuse_group"),  # duplicated layer
    ("kv_reuse_group", [[3, 3]], r"kv_share_groups|kv_reuse_group"),  # duplicated inside a group
    ("kv_reuse_group", [[4, 3]], r"(kv_share_groups|kv_reuse_group).*increasing"),
    ("kv_reuse_group", [[3]], r"(kv_share_groups|kv_reuse_group).*consumer"),  # singleton
    ("kv_reuse_group", [[1, 2]], r"(kv_share_groups|kv_reuse_group).*global"),  # consumer 2 is global
    ("kv_reuse_group", [[2, 5]], r"(kv_share_groups|kv_reuse_group).*global"),  # both global
    ("rope_type", "dynamic", r"rope_type"),
    ("sliding_window", 0, r"sliding_window"),
    ("sliding_window", -16, r"sliding_window"),
    ("memory_tokens_interspersed_every", 4, r"memory_tokens_interspersed_every"),
    ("kq_norm", "rms", r"kq_norm"),
    ("attn_hidden_size", 128, r"attn_hidden_size"),
    ("kq_head_dim", 32, r"kq_head_dim"),
    ("num_hidden_layers", 0, r"num_layers|num_hidden_layers"),
    ("vocab_size", -1, r"vocab_size"),
    ("mlp_hidden_act", "gelu", r"mlp_act|mlp_hidden_act"),
    ("model_type", "llama", r"model_type"),
    ("layer_type", ["h", "a", "h", "h", "h", "h"], r"layer_type"),
]


@pytest.mark.parametrize(
    ("key", "value", "pattern"), BAD_HF_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_HF_VALUES]
)
def test_bad_hf_value_names_the_field(fixture_hf, key, value, pattern):
    fixture_hf[key] = value
    with pytest.raises(ValueError, match=pattern):
        HymbaConfig.from_hf_config(fixture_hf)


@pytest.mark.parametrize(
    "key", ["hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size", "intermediate_size"]
)
def test_missing_required_field(fixture_hf, key):
    del fixture_hf[key]
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        HymbaConfig.from_hf_config(fixture_hf)


BAD_FIELDS = [
    (dict(hidden_size=30, num_heads=4), "num_heads"),
    (dict(num_kv_heads=3), "num_kv_heads"),
    (dict(global_layers=(0, 8)), "global_layers"),
    (dict(global_layers=(0, 0, 7)), "global_layers"),
    (dict(kv_share_groups=((2, 3), (4, 5, 9))), "kv_share_groups"),
    (dict(kv_share_groups=((2, 3), (3, 4))), "kv_share_groups"),
    (dict(kv_share_groups=((3, 2),)), "kv_share_groups"),
    (dict(kv_share_groups=((2,),)), "kv_share_groups"),
    (dict(kv_share_groups=((6, 7),)), "kv_share_groups"),  # 7 is global
    (dict(rope_type="yarn"), "rope_type"),
    (dict(sliding_window=0), "sliding_window"),
    (dict(dt_rank=0), "dt_rank"),
    (dict(num_meta_tokens=-1), "num_meta_tokens"),
    (dict(rms_norm_eps=0.0), "rms_norm_eps"),
    (dict(hidden_size=36, num_heads=4), "head_dim"),  # Dk = 9 is odd: RoPE needs pairs
    (dict(orig_max_position_embeddings=None), "orig_max_position_embeddings"),  # needed by NTK RoPE
]


@pytest.mark.parametrize(("changes", "field"), BAD_FIELDS, ids=[str(c) for c, _ in BAD_FIELDS])
def test_bad_field_raises_naming_it(tiny_config, changes, field):
    with pytest.raises(ValueError, match=field):
        tiny_config.replace(**changes)


def test_bad_json_file(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 64,')
    with pytest.raises(ValueError, match="not valid JSON"):
        HymbaConfig.from_hf_config(tmp_path)
    with pytest.raises(ValueError, match="not valid JSON"):
        HymbaConfig.from_hf_config(tmp_path / "config.json")


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        HymbaConfig.from_hf_config(tmp_path)


def test_a_shrunk_real_config_round_trips(real_hf):
    """replace(num_layers=...) on the real config: the per-layer hub fields follow the new layer count."""
    small = HymbaConfig.from_hf_config(real_hf).replace(
        num_layers=3, global_layers=(0,), kv_share_groups=((1, 2),)
    )
    hf = small.to_hf_config()
    assert hf["layer_type"] == ["h"] * 3 and len(hf["conv_dim"]) == 3
    assert HymbaConfig.from_hf_config(hf).num_layers == 3
