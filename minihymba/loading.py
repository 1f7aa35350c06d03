"""Loading and saving Hymba checkpoints in the hub format (safetensors only, strict, all-or-nothing).

``load_pretrained`` accepts

* a local directory with ``config.json`` and ``model.safetensors`` -- or a sharded checkpoint described
  by ``model.safetensors.index.json``;
* a hub repo id such as ``"nvidia/Hymba-1.5B-Base"``: the safetensors, config and tokenizer files are
  fetched with ``huggingface_hub`` into the standard HF cache (``HF_HUB_OFFLINE=1`` is honoured, progress
  bars are shown).

Every tensor header is checked against the model the config describes *before* any weight is read:
missing, unexpected and wrong-shaped tensors are all reported in one :class:`CheckpointError`. The model is
built on the ``meta`` device (no memory), then each tensor is read (memory-mapped), converted to the target
dtype and device, and assigned -- so the weights are never held twice. Pickle files are never opened and no
code from the checkpoint is ever run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import HymbaConfig
from .dtypes import as_dtype
from .hub import resolve_checkpoint
from .model import HymbaForCausalLM

__all__ = ["CheckpointError", "load_pretrained", "save_pretrained"]

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
TIED_HEAD = "lm_head.weight"


class CheckpointError(ValueError):
    """A checkpoint that does not match its config: lists every problem found."""


def _index_shards(index: Path) -> list[str]:
    """The shard file names an index's ``weight_map`` points to, each a plain file name inside the
    checkpoint directory (CheckpointError naming the index otherwise)."""
    try:
        content = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{index} is not a valid safetensors index (bad JSON: {err})") from err
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(
            f'{index} is not a valid safetensors index: it needs a non-empty "weight_map" object '
            "{tensor name: shard file name}"
        )
    bad_names = sorted(
        repr(v)
        for v in weight_map.values()
        if not isinstance(v, str) or Path(v).name != v or v in ("", ".", "..")
    )
    bad_keys = sorted(repr(k) for k, v in weight_map.items() if not isinstance(v, str))
    if bad_names:
        raise CheckpointError(
            f"{index}: weight_map must name shard files inside the checkpoint directory (plain file names, "
            f"no directories, absolute paths or '..'), got {', '.join(bad_names[:5])}"
            + (f" (for tensors {', '.join(bad_keys[:5])})" if bad_keys else "")
        )
    return sorted(set(weight_map.values()))


def _shard_files(directory: Path) -> list[Path]:
    index = directory / INDEX_FILE
    if index.is_file():
        files = _index_shards(index)
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            raise CheckpointError(f"{index} names shard files that do not exist: {missing}")
        return [directory / f for f in files]
    single = directory / SINGLE_FILE
    if single.is_file():
        return [single]
    pickles = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.pt")]
    if pickles:
        raise CheckpointError(
            f"{directory} has only pickle weights {pickles}; minihymba loads safetensors only "
            "(pickles can run arbitrary code)"
        )
    raise CheckpointError(f"no {SINGLE_FILE} or {INDEX_FILE} in {directory}")


def _read_headers(files: list[Path]) -> dict[str, tuple[Path, tuple[int, ...], str]]:
    """{key: (file, shape, dtype)} from the safetensors headers (no tensor data is read).

    dtype is the safetensors name: "F32", "BF16", "I64", ...
    """
    found: dict[str, tuple[Path, tuple[int, ...], str]] = {}
    for file in files:
        try:
            with safe_open(file, framework="pt") as f:
                for key in f.keys():
                    sl = f.get_slice(key)
                    if key in found:
                        raise CheckpointError(
                            f"tensor {key!r} appears in both {found[key][0].name} and {file.name}"
                        )
                    found[key] = (file, tuple(sl.get_shape()), sl.get_dtype())
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"cannot read {file} (truncated or not a safetensors file): {err}") from err
    return found


# safetensors dtype names of the floating-point dtypes a checkpoint may be stored in
FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}


def _check_against(
    model: HymbaForCausalLM,
    found: dict[str, tuple[Path, tuple[int, ...], str]],
    dtype: torch.dtype | None,
) -> list[str]:
    """Compare checkpoint headers with the model's state dict (names, shapes, dtypes); returns the keys
    to load, in the model's order (a tied head stored in the file is loaded too, to be compared)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
    tied = model.config.tie_word_embeddings
    optional = {TIED_HEAD} if tied else set()
    missing = sorted(set(expected) - set(found) - optional)
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(
        f"{k}: checkpoint {list(found[k][1])} vs model {list(expected[k])}"
        for k in set(found) & set(expected)
        if found[k][1] != expected[k]
    )
    not_float = sorted(f"{k} ({found[k][2]})" for k in found if found[k][2] not in FLOAT_DTYPES)
    problems = []
    if missing:
        hint = ""
        if TIED_HEAD in missing:
            hint = (
                " (config.json's tie_word_embeddings is false or missing, which NVIDIA's configuration "
                "reads as false: set it to true if the head is the embedding matrix)"
            )
        problems.append(f"{len(missing)} missing tensor(s): {', '.join(missing)}{hint}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {', '.join(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) with the wrong shape: {'; '.join(wrong)}")
    if not_float:
        problems.append(
            f"{len(not_float)} tensor(s) not stored as floating point (every weight must be F16, BF16, "
            f"F32 or F64): {', '.join(not_float)}"
        )
    stored = sorted({found[k][2] for k in found if found[k][2] in FLOAT_DTYPES})
    if dtype is None and len(stored) > 1:
        counts = ", ".join(f"{sum(found[k][2] == d for k in found)} in {d}" for d in stored)
        problems.append(
            f"tensors are stored in mixed floating-point dtypes ({counts}): pass dtype= (for example "
            "dtype='float32') to convert them all to one dtype while loading"
        )
    if problems:
        raise CheckpointError("checkpoint does not match its config.json:\n  " + "\n  ".join(problems))
    return [k for k in expected if k in found]


def _check_finite(key: str, file: Path, tensor: torch.Tensor) -> None:
    """CheckpointError unless every value of ``tensor`` is finite (one aminmax pass: NaN propagates into
    the min/max, inf is the min or the max)."""
    if tensor.numel() == 0:
        return
    low, high = torch.aminmax(tensor)
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
        bad = int((~torch.isfinite(tensor)).sum())
        raise CheckpointError(
            f"tensor {key!r} in {file.name} holds {bad} NaN or infinite value(s) (after conversion to "
            f"{tensor.dtype}): the checkpoint is corrupt or was saved from a diverged run; re-download or "
            "re-export it (pass check_finite=False to load it anyway)"
        )


def _stream_tensors(
    keys: list[str], found: dict, dtype: torch.dtype | None, device: torch.device, check_finite: bool = True
) -> Iterator[tuple[str, torch.Tensor]]:
    by_file: dict[Path, list[str]] = {}
    for key in keys:
        by_file.setdefault(found[key][0], []).append(key)
    for file, file_keys in by_file.items():
        try:
            with safe_open(file, framework="pt", device="cpu") as f:
                for key in file_keys:
                    tensor = f.get_tensor(key)
                    if dtype is not None and tensor.is_floating_point():
                        tensor = tensor.to(dtype)
                    tensor = tensor.to(device)
                    if check_finite:
                        _check_finite(key, file, tensor)
                    yield key, tensor
        except SafetensorError as err:
            raise CheckpointError(f"cannot read tensors from {file} (truncated?): {err}") from err


def load_pretrained(
    name_or_path: str | os.PathLike,
    *,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str = "cpu",
    revision: str | None = None,
    check_finite: bool = True,
) -> HymbaForCausalLM:
    """Load a Hymba checkpoint (local directory or hub repo id) into a :class:`HymbaForCausalLM`.

    ``dtype``: convert floating tensors to this dtype while reading (default: keep the stored dtype; a
    checkpoint stored in mixed dtypes then needs one). ``check_finite``: refuse a tensor holding NaN or
    inf (one min/max pass per tensor while it is read).

    Before any tensor data is read, the headers are checked: names, shapes and dtypes (floating point
    only). A checkpoint that stores its own ``lm_head.weight`` while ``config.json`` says the head is tied
    to the embeddings must hold the same matrix there.

    Raises :class:`CheckpointError` (listing every problem) for a checkpoint that does not match its
    config, ``ValueError`` for a bad config, ``FileNotFoundError`` when nothing can be found.
    """
    dtype = None if dtype is None else as_dtype(dtype)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device={device!r} is not a torch device (use 'cpu', 'cuda', 'cuda:1', ...)"
        ) from err
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:  # torch built without that backend, or no such GPU
        raise ValueError(f"device {device} is not available here ({err}); use device='cpu'") from err
    directory = resolve_checkpoint(name_or_path, revision)
    config = HymbaConfig.from_hf_config(directory / "config.json")
    files = _shard_files(directory)
    found = _read_headers(files)
    with torch.device("meta"):
        model = HymbaForCausalLM(config)
    keys = _check_against(model, found, dtype)
    state = dict(_stream_tensors(keys, found, dtype, device, check_finite))
    if config.tie_word_embeddings:
        embeddings = state["model.embed_tokens.weight"]
        stored_head = state.pop(TIED_HEAD, None)
        if stored_head is not None and not torch.equal(stored_head, embeddings):
            raise CheckpointError(
                f"{found[TIED_HEAD][0].name} holds its own lm_head.weight, different from "
                "model.embed_tokens.weight, but config.json says tie_word_embeddings=true (the head would "
                "be discarded): set tie_word_embeddings to false in config.json to use the checkpoint's "
                "head, or remove lm_head.weight from the checkpoint"
            )
        state[TIED_HEAD] = embeddings
    model.load_state_dict(state, strict=True, assign=True)
    if config.tie_word_embeddings:  # assign=True replaced the Parameter objects: tie them again
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


def save_pretrained(
    model: HymbaForCausalLM,
    directory: str | os.PathLike,
    *,
    max_shard_bytes: int | None = None,
    dtype: torch.dtype | str | None = None,
) -> Path:
    """Write ``config.json`` and safetensors weights in the hub layout (tied head omitted).

    With ``max_shard_bytes`` the weights are split into ``model-0000i-of-0000n.safetensors`` files plus a
    ``model.safetensors.index.json``, as ``transformers`` writes them.
    """
    dtype = None if dtype is None else as_dtype(dtype)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hf = model.config.to_hf_config()
    state = {}
    for key, tensor in model.state_dict().items():
        if key == TIED_HEAD and model.config.tie_word_embeddings:
            continue
        tensor = tensor.detach()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[key] = tensor.contiguous().cpu()
    if dtype is not None:
        hf["torch_dtype"] = str(dtype).removeprefix("torch.")
    # Weights of an earlier save (maybe in the other layout) must go: the loader prefers an index over a
    # single file, so a stale index would silently shadow the new weights.
    old_shards = directory.glob("model-*-of-*.safetensors")
    for stale in [directory / INDEX_FILE, directory / SINGLE_FILE, *old_shards]:
        stale.unlink(missing_ok=True)
    (directory / "config.json").write_text(json.dumps(hf, indent=2) + "\n")
    if max_shard_bytes is None:
        save_file(state, directory / SINGLE_FILE, metadata={"format": "pt"})
        return directory
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        if shards[-1] and size + tensor.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += tensor.nbytes
    n = len(shards)
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{n:05d}.safetensors"
        save_file(shard, directory / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.nbytes for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return directory


def checkpoint_nbytes(directory: str | os.PathLike) -> int:
    """Total bytes of the safetensors files of a checkpoint directory."""
    return sum(f.stat().st_size for f in _shard_files(Path(directory)))


def param_count_from_shapes(shapes: dict[str, list[int]], tied: bool = True) -> int:
    """Parameters of a ``{key: shape}`` map, the tied head counted once."""
    return sum(math.prod(s) for k, s in shapes.items() if not (tied and k == TIED_HEAD))
