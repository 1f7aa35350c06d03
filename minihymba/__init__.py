"""minihymba: a small, readable, pure-PyTorch Hymba that loads NVIDIA's checkpoints.

Modules, one concept each: ``config`` (sizes), ``norms`` (RMSNorm), ``rope`` (NTK RoPE), ``masks``
(sliding-window + meta-token mask functions), ``attention`` (GQA attention), ``ssm`` (conv + selective
scan), ``hybrid_block`` (the parallel hybrid head and the layer), ``model`` (the stack), ``cache``
(decoding state), ``loading`` (safetensors checkpoints, local or from the hub).
"""

from .cache import HymbaCache
from .config import HymbaConfig
from .loading import CheckpointError, load_pretrained, save_pretrained
from .model import HymbaForCausalLM, HymbaOutput

__all__ = [
    "CheckpointError",
    "HymbaCache",
    "HymbaConfig",
    "HymbaForCausalLM",
    "HymbaOutput",
    "load_pretrained",
    "save_pretrained",
]
__version__ = "0.1.0"
