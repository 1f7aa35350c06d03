"""minihymba: a small, readable, pure-PyTorch Hymba that loads NVIDIA's checkpoints.

Modules, one concept each: ``config`` (sizes), ``norms`` (RMSNorm), ``rope`` (NTK RoPE), ``masks``
(sliding-window + meta-token mask functions), ``attention`` (GQA attention), ``ssm`` (conv + selective
scan), ``hybrid_block`` (the parallel hybrid head and the layer), ``model`` (the stack), ``cache``
(decoding state), ``loading`` (safetensors checkpoints, local or from the hub), ``generation``
(prefill + cached decode, sampling), ``memory`` (closed-form cache sizes), ``tokenizer`` (tokenizer
loading and the chat format); ``python -m minihymba generate`` is the command line.
Imported on demand: ``tasks`` (synthetic recall tasks), ``train`` (training loop, ``python -m
minihymba.train``), ``params`` (where the parameters live, in closed form), ``hidden_attention`` (the
SSM as an implicit attention matrix), ``corpus`` (the English text corpus, its tokenizer and LM batches,
``python -m minihymba.corpus``); ``assets`` holds shipped tiny trained models (``load_tiny()``) and the
``tiny-text`` tokenizer.
"""

from .assets import assets_path, load_tiny
from .cache import HymbaCache
from .config import HymbaConfig
from .generation import generate
from .loading import CheckpointError, load_pretrained, save_pretrained
from .memory import cache_bytes, cache_variants
from .model import HymbaForCausalLM, HymbaOutput
from .tokenizer import load_tokenizer, render_chat

__all__ = [
    "CheckpointError",
    "HymbaCache",
    "HymbaConfig",
    "HymbaForCausalLM",
    "HymbaOutput",
    "assets_path",
    "cache_bytes",
    "cache_variants",
    "generate",
    "load_pretrained",
    "load_tiny",
    "load_tokenizer",
    "render_chat",
    "save_pretrained",
]
__version__ = "0.1.0"
