"""The SSM branch read as attention: the selective scan unrolled into an implicit (S x S) matrix per channel.

Unrolling ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t`` from h_{-1} = 0 gives, for channel c (the method of
"The Hidden Attention of Mamba Models", Ali, Zimerman & Wolf, 2024)::

    y_t[c] = sum_{s <= t} alpha[c, t, s] * x_s[c]  +  D[c] * x_t[c]          then  y_t *= silu(z_t)

    alpha[c, t, s] = sum_n  C_t[n] * exp( sum_{r=s+1..t} dt_r[c] * A[c, n] ) * dt_s[c] * B_s[n]

so ``alpha[c]`` is a lower-triangular "attention" matrix that the scan applies without ever building it.
Unlike softmax attention its rows need not be positive or sum to one.

Stability: the decay exponent is a *segment sum* of dt*A. Subtracting two cumulative sums loses precision
when they grow large, so the segments are summed directly (a cumulative sum over a masked (S, S) grid),
in float64, with -inf above the diagonal so exp() gives exact zeros there. The matrix has I * S * S * N
intermediate entries: meant for short inputs (a few hundred tokens of a small model).

The SSM inputs are recomputed by the layer itself (:meth:`~minihymba.hybrid_block.HybridMixer.ssm_inputs`,
the same code its forward runs), with no padding and no cache.

Shapes: S = M + T (meta tokens included, as the layer sees them); xc, dt, z, y (B, S, I); A (I, N);
B, C (B, S, N); D (I,); alpha (B, I, S, S) [batch, channel, query t, key s]; averaged view (B, S, S).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .hybrid_block import HybridMixer, SSMInputs, StepContext
from .impl import Impl
from .model import HymbaForCausalLM
from .ssm import skip_and_gate

__all__ = [
    "ssm_inputs",
    "segment_sum",
    "hidden_attention_matrix",
    "ssm_attention_view",
    "ssm_output_from_attention",
    "hidden_attention",
    "ssm_branch_output",
]


def _mixer_inputs(model: HymbaForCausalLM, input_ids: Tensor, layer: int) -> tuple[HybridMixer, Tensor]:
    """The mixer of ``layer`` and the normalised input u (B, S, D) it sees (meta tokens included)."""
    n = model.config.num_layers
    if not 0 <= layer < n:
        raise ValueError(f"layer {layer} is out of range [0, {n})")
    out = model(input_ids, output_hidden_states=True)
    block = model.model.layers[layer]
    return block.mamba, block.input_layernorm(out.hidden_states[layer])  # hidden_states[i]: input of layer i


@torch.no_grad()
def ssm_inputs(model: HymbaForCausalLM, input_ids: Tensor, layer: int) -> SSMInputs:
    """Recompute the SSM branch's inputs of ``layer`` for ``input_ids`` (B, T) (no padding, no cache)."""
    mixer, u = _mixer_inputs(model, input_ids, layer)
    parts = mixer.in_proj(u).split(mixer.split_sizes, dim=-1)
    return mixer.ssm_inputs(parts[-2], parts[-1])[0]  # the last two blocks are always (x, z): (B, S, I)


def segment_sum(a: Tensor) -> Tensor:
    """seg[..., t, s] = sum_{r=s+1..t} a[..., r] for s <= t, and -inf for s > t.  (..., S) -> (..., S, S).

    Summed directly over a masked grid (no difference of cumulative sums), so it stays accurate.
    """
    size = a.shape[-1]
    grid = a[..., :, None].expand(*a.shape, size)  # (..., S_r, S_s): grid[r, s] = a[r]
    strictly_after = torch.tril(torch.ones(size, size, dtype=torch.bool, device=a.device), diagonal=-1)
    seg = torch.cumsum(grid.masked_fill(~strictly_after, 0.0), dim=-2)  # (..., S_t, S_s): sum over s < r <= t
    causal = torch.tril(torch.ones(size, size, dtype=torch.bool, device=a.device))
    return seg.masked_fill(~causal, float("-inf"))


def hidden_attention_matrix(
    dt: Tensor, A: Tensor, B: Tensor, C: Tensor, dtype: torch.dtype = torch.float64
) -> Tensor:
    """alpha (Bt, I, S, S) from dt (Bt, S, I), A (I, N), B and C (Bt, S, N); computed in ``dtype``."""
    dt, A, B, C = dt.to(dtype), A.to(dtype), B.to(dtype), C.to(dtype)
    dtA = dt.transpose(1, 2)[..., None] * A[None, :, None, :]  # (Bt, I, S, N)
    decay = torch.exp(segment_sum(dtA.transpose(-1, -2)))  # (Bt, I, N, S_t, S_s), zero above the diagonal
    drive = dt.transpose(1, 2)[:, :, None, :] * B.transpose(1, 2)[:, None, :, :]  # (Bt, I, N, S_s): dt_s B_s
    return torch.einsum("btn,bints,bins->bits", C, decay, drive)  # (Bt, I, S_t, S_s)


def ssm_output_from_attention(alpha: Tensor, xc: Tensor, D: Tensor, z: Tensor | None = None) -> Tensor:
    """y (Bt, S, I) = (alpha @ x per channel + D * x) * silu(z), in float32 (the scan's output dtype)."""
    mixed = torch.einsum("bits,bsi->bti", alpha, xc.to(alpha.dtype))  # (Bt, S, I)
    return skip_and_gate(mixed, xc, D, z).to(xc.dtype)


@torch.no_grad()
def hidden_attention(
    model: HymbaForCausalLM,
    input_ids: Tensor,
    layer: int,
    *,
    average: bool = False,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """The hidden attention of ``layer``'s SSM branch for ``input_ids`` (B, T).

    Returns alpha (B, I, S, S), or with ``average`` the mean over channels (B, S, S) -- a per-layer view
    for plots. S = M + T: rows and columns 0..M-1 are the meta tokens.
    """
    inp = ssm_inputs(model, input_ids, layer)
    alpha = hidden_attention_matrix(inp.dt, inp.A, inp.B, inp.C, dtype)  # (B, I, S, S)
    return alpha.mean(dim=1) if average else alpha


@torch.no_grad()
def ssm_attention_view(model: HymbaForCausalLM, input_ids: Tensor, layer: int) -> Tensor:
    """(S, S) for row 0 of ``input_ids``: the layer's SSM branch drawn like an attention map -- ``|alpha|``
    averaged over the channels, each row normalised to sum to 1 (to set beside the attention heads; the
    signs and per-channel detail of alpha are lost, so it shows *where* the branch reads, not how)."""
    alpha = hidden_attention(model, input_ids[:1], layer)[0].abs().mean(0).float()  # (S, S)
    return alpha / alpha.sum(-1, keepdim=True).clamp_min(1e-30)


@torch.no_grad()
def ssm_branch_output(model: HymbaForCausalLM, input_ids: Tensor, layer: int) -> Tensor:
    """The SSM branch output y (B, S, I) of ``layer``, computed by the layer itself (``HybridMixer.ssm``)."""
    mixer, u = _mixer_inputs(model, input_ids, layer)
    parts = mixer.in_proj(u).split(mixer.split_sizes, dim=-1)
    ctx = StepContext.for_sequence(model.config, u.shape[1], impl=Impl.reference(), device=u.device)
    return mixer.ssm(parts[-2], parts[-1], ctx)
