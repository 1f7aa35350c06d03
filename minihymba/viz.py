"""Plots for the walkthrough notebooks: each function takes tensors or a config and returns a Figure.

Figures are built with ``matplotlib.figure.Figure`` directly (not ``pyplot``), so nothing is drawn twice in a
notebook and nothing stays open: a notebook shows the returned Figure, :func:`save_figure` writes it as a PNG
with a fixed dpi and no software/date metadata (reruns give the same bytes), and the widgets in
:mod:`minihymba.widgets` redraw them. ``import minihymba`` does not import this module.

Shapes: mask (Q, K) bool; probs (Q, K) float; states (L, I, N); dt (L, I); A (I, N).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .config import HymbaConfig

__all__ = [
    "DPI",
    "save_figure",
    "plot_architecture",
    "plot_param_counts",
    "plot_mask",
    "plot_block_sparsity",
    "plot_attention_map",
    "plot_attention_mass",
    "plot_ssm_state",
    "plot_branch_norms",
    "plot_cache_memory",
    "plot_step_errors",
    "plot_ablation",
    "plot_learning_curves",
]

DPI = 72  # modest: keeps the PNGs (and the executed notebooks that embed them) small
_GLOBAL, _SWA, _META = "#d95f02", "#1b9e77", "#7570b3"


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def save_figure(fig: Figure, name: str, outdir: str | Path = "figures") -> Path:
    """Write ``fig`` to ``outdir/name.png`` (fixed dpi, no Software/date metadata); returns the path."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (name if name.endswith(".png") else name + ".png")
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    return path


def plot_architecture(config: HymbaConfig) -> Figure:
    """Layer map: which layers attend globally or in a sliding window, and who shares whose KV cache."""
    n = config.num_layers
    fig = Figure(figsize=(max(6.0, 0.33 * n + 1.5), 2.6))
    ax = fig.add_subplot()
    for i in range(n):
        color = _GLOBAL if config.is_global(i) else _SWA
        ax.add_patch(Rectangle((i + 0.08, 1.0), 0.84, 0.9, color=color))
        owns = config.owns_kv(i)
        ax.add_patch(Rectangle((i + 0.2, 0.1), 0.6, 0.6, facecolor="#444" if owns else "white",
                               edgecolor="#444", hatch=None if owns else "///"))  # fmt: skip
        if not owns:  # an arc from the producer's KV box to this consumer
            src = config.kv_source(i)
            arrow = dict(arrowstyle="->", color="#444", connectionstyle="arc3,rad=0.5")
            ax.annotate("", xy=(i + 0.5, 0.4), xytext=(src + 0.5, 0.4), arrowprops=arrow)
    ax.set_xlim(0, n)
    ax.set_ylim(-0.6, 2.3)
    ax.set_xticks(np.arange(n) + 0.5, [str(i) for i in range(n)], fontsize=7)
    ax.set_yticks([0.4, 1.45], ["KV cache", "attention"])
    ax.tick_params(length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("layer")
    handles = [Rectangle((0, 0), 1, 1, color=_GLOBAL), Rectangle((0, 0), 1, 1, color=_SWA),
               Rectangle((0, 0), 1, 1, color="#444"),
               Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="#444", hatch="///")]  # fmt: skip
    window = config.sliding_window
    ax.legend(handles, ["global", f"sliding window (W={window})", "owns KV", "reads KV of a neighbour"],
              ncol=4, loc="upper center", bbox_to_anchor=(0.5, 1.22), fontsize=8, frameon=False)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_param_counts(counts: Mapping[str, int], title: str = "parameters per component") -> Figure:
    """Horizontal bars of parameter counts (millions) with the share of the total."""
    names = list(counts)
    values = np.array([counts[k] for k in names], dtype=float)
    fig = Figure(figsize=(6.5, 0.35 * len(names) + 1.0))
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    ax.barh(y, values / 1e6, color="#4c72b0")
    total = values.sum()
    for yi, v in zip(y, values, strict=True):
        ax.text(v / 1e6, yi, f" {v / 1e6:.1f}M ({100 * v / total:.1f}%)", va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("millions of parameters")
    ax.set_xlim(0, values.max() / 1e6 * 1.35)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _mask_axes(ax, mask: np.ndarray, n_meta: int, title: str) -> None:
    colors = np.where(mask, 1, 0).astype(float)
    if n_meta:
        colors[:, :n_meta] = np.where(mask[:, :n_meta], 2, 0)
    ax.imshow(colors, cmap=ListedColormap(["#f4f4f4", _SWA, _META]), vmin=0, vmax=2, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("key")
    ax.set_ylabel("query")


def plot_mask(
    masks: Mapping[str, torch.Tensor] | torch.Tensor, n_meta: int = 0, title: str = "attention mask"
) -> Figure:
    """One or more dense (Q, K) bool masks side by side; meta-token columns in purple."""
    if not isinstance(masks, Mapping):
        masks = {title: masks}
    fig = Figure(figsize=(3.2 * len(masks), 3.4))
    for j, (name, mask) in enumerate(masks.items()):
        _mask_axes(fig.add_subplot(1, len(masks), j + 1), _np(mask).astype(bool), n_meta, name)
    fig.tight_layout()
    return fig


def plot_block_sparsity(mask: torch.Tensor, block_size: int, n_meta: int = 0) -> Figure:
    """The dense mask next to its block view: empty blocks (skipped), partial blocks, full blocks."""
    m = _np(mask).astype(bool)
    q_blocks, k_blocks = -(-m.shape[0] // block_size), -(-m.shape[1] // block_size)
    kinds = np.zeros((q_blocks, k_blocks))
    for i in range(q_blocks):
        for j in range(k_blocks):
            tile = m[i * block_size : (i + 1) * block_size, j * block_size : (j + 1) * block_size]
            kinds[i, j] = 2 if tile.all() else (1 if tile.any() else 0)
    fig = Figure(figsize=(7.0, 3.4))
    _mask_axes(fig.add_subplot(1, 2, 1), m, n_meta, f"dense mask ({m.shape[0]}x{m.shape[1]})")
    ax = fig.add_subplot(1, 2, 2)
    ax.imshow(kinds, cmap=ListedColormap(["#f4f4f4", "#a6d854", "#1b7837"]), vmin=0, vmax=2)
    skipped = int((kinds == 0).sum())
    ax.set_title(f"{block_size}x{block_size} blocks: {skipped}/{kinds.size} skipped", fontsize=9)
    ax.set_xlabel("key block")
    ax.set_ylabel("query block")
    ax.set_xticks(range(k_blocks))
    ax.set_yticks(range(q_blocks))
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in ("#f4f4f4", "#a6d854", "#1b7837")]
    ax.legend(handles, ["empty", "partial", "full"], fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_attention_map(
    probs: torch.Tensor | Mapping[str, torch.Tensor],
    n_meta: int = 0,
    tokens: Sequence[str] | None = None,
    title: str = "attention",
    query: int | None = None,
) -> Figure:
    """Attention probabilities (Q, K) as heatmaps (several side by side from a mapping); meta keys are
    marked with a purple bar, ``query`` draws that row's weights underneath."""
    maps = dict(probs) if isinstance(probs, Mapping) else {title: probs}
    rows = 2 if query is not None else 1
    fig = Figure(figsize=(3.4 * len(maps), 3.4 + 1.6 * (rows - 1)))
    grid = fig.add_gridspec(rows, len(maps), height_ratios=[3, 1][:rows])
    for j, (name, p) in enumerate(maps.items()):
        p = _np(p)
        ax = fig.add_subplot(grid[0, j])
        top = (
            float(np.quantile(p[p > 0], 0.99)) if (p > 0).any() else 1.0
        )  # a few huge entries would hide the rest
        ax.imshow(p, cmap="viridis", vmin=0, vmax=max(top, 1e-9), interpolation="nearest")
        if n_meta:
            ax.axvspan(-0.5, n_meta - 0.5, ymin=0, ymax=0.03, color=_META)
            ax.axvline(n_meta - 0.5, color="white", lw=0.6, ls=":")
        if query is not None:
            ax.axhline(query, color="red", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
        if tokens is not None and len(tokens) == p.shape[1] and p.shape[1] <= 40:
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
        if query is not None:
            bx = fig.add_subplot(grid[1, j])
            colors = [_META if k < n_meta else "#4c72b0" for k in range(p.shape[1])]
            bx.bar(range(p.shape[1]), p[query], color=colors, width=1.0)
            bx.set_xlim(-0.5, p.shape[1] - 0.5)
            bx.set_ylabel(f"row {query}", fontsize=8)
            bx.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def plot_attention_mass(mass: Mapping[str, Sequence[float]], title: str = "where attention goes") -> Figure:
    """Stacked bars per layer: the share of attention on each key group (e.g. meta / first token / rest)."""
    fig = Figure(figsize=(6.5, 3.0))
    ax = fig.add_subplot()
    groups = list(mass)
    n = len(next(iter(mass.values())))
    bottom = np.zeros(n)
    palette = [_META, _GLOBAL, "#4c72b0", "#999999"]
    for g, color in zip(groups, palette, strict=False):
        vals = np.asarray(mass[g], dtype=float)
        ax.bar(range(n), vals, bottom=bottom, color=color, label=g)
        bottom += vals
    ax.set_xticks(range(n))
    ax.set_xlabel("layer")
    ax.set_ylabel("share of attention")
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_ssm_state(
    states: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, t: int, channels: int = 32
) -> Figure:
    """The SSM at token ``t``: the state h_t (channels x states), the step sizes dt over time, and the
    per-step decay exp(dt_t * A) -- how much of each state survives one more token."""
    h, d, a = _np(states), _np(dt), _np(A)
    c = min(channels, h.shape[1])
    fig = Figure(figsize=(10.0, 3.2))
    ax0, ax1, ax2 = (fig.add_subplot(1, 3, k) for k in (1, 2, 3))
    lim = max(float(np.abs(h[t, :c]).max()), 1e-9)  # this token's scale
    ax0.imshow(h[t, :c].T, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax0.set_title(f"state h_t at token {t}", fontsize=9)
    ax0.set_xlabel("channel")
    ax0.set_ylabel("state index n")
    ax0.set_yticks(range(h.shape[-1]))
    steps = np.arange(d.shape[0])
    ax1.plot(steps, d[:, :c], color="#4c72b0", alpha=0.25, lw=0.8)
    ax1.plot(steps, d[:, :c].mean(1), color="black", lw=1.5, label="mean over channels")
    ax1.axvline(t, color="red", lw=1)
    ax1.set_yscale("log")
    ax1.set_title("step size dt (input-dependent)", fontsize=9)
    ax1.set_xlabel("token")
    ax1.legend(fontsize=7)
    decay = np.exp(d[t, :c, None] * a[:c])  # (c, N)
    ax2.imshow(decay.T, cmap="magma", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax2.set_title(f"decay exp(dt*A) at token {t}", fontsize=9)
    ax2.set_xlabel("channel")
    ax2.set_ylabel("state index n")
    ax2.set_yticks(range(h.shape[-1]))
    fig.tight_layout()
    return fig


def plot_branch_norms(
    branches: Mapping[str, Sequence[float]], ylabel: str = "RMS", title: str = "branch outputs per layer"
) -> Figure:
    """Grouped bars per layer, one bar per branch (e.g. attention vs SSM output size)."""
    fig = Figure(figsize=(8.5, 2.8))
    ax = fig.add_subplot()
    names = list(branches)
    n = len(next(iter(branches.values())))
    width = 0.8 / len(names)
    for j, (name, color) in enumerate(zip(names, [_GLOBAL, _SWA, _META, "#999999"], strict=False)):
        ax.bar(
            np.arange(n) + (j - (len(names) - 1) / 2) * width, branches[name], width, label=name, color=color
        )
    ax.set_xticks(range(n))
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_cache_memory(
    seq_lens: Sequence[int], curves: Mapping[str, Sequence[float]], mark: int | None = None, unit: str = "MB"
) -> Figure:
    """Cache size against sequence length for several models/variants (sizes already in ``unit``)."""
    fig = Figure(figsize=(6.5, 3.4))
    ax = fig.add_subplot()
    for name, ys in curves.items():
        ax.plot(seq_lens, ys, marker="o", ms=3, label=name)
    if mark is not None:
        ax.axvline(mark, color="gray", ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens in the cache")
    ax.set_ylabel(f"cache size ({unit})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_step_errors(errors: Mapping[str, Sequence[float]], title: str = "decode vs full forward") -> Figure:
    """Per-step max |difference| curves on a log scale (zeros drawn at the floor)."""
    fig = Figure(figsize=(6.5, 3.0))
    ax = fig.add_subplot()
    floor = 1e-9
    for name, ys in errors.items():
        ax.plot(np.maximum(np.asarray(ys, dtype=float), floor), marker="o", ms=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("decode step")
    ax.set_ylabel("max |logit difference|")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


_ARCH_COLORS = {"parallel": _GLOBAL, "sequential": _META, "attention": _SWA, "ssm": "#666666"}


def _ablation_axes(
    records: Sequence[Mapping], xlabel: str, title: str, figsize: tuple[float, float]
) -> tuple[Figure, object, list[dict]]:
    """A figure for ablation records, and per record the line style: colour by architecture, solid with
    meta tokens, dashed without. The caller plots the lines and adds the legend."""
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    styles = []
    for r in records:
        meta = r["meta_tokens"] > 0
        styles.append({"ls": "-" if meta else "--", "color": _ARCH_COLORS.get(r["architecture"], "black"),
                       "label": f"{r['architecture']}{'' if meta else ', no meta'}"})  # fmt: skip
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig, ax, styles


def plot_ablation(
    records: Sequence[Mapping],
    title: str = "toy ablation: accuracy vs sequence length",
    longest_trained: int | None = None,
) -> Figure:
    """Accuracy against evaluation length, one colour per architecture; solid with meta tokens, dashed
    without. ``records`` as returned by :func:`minihymba.ablation.run_ablation`; ``longest_trained`` draws a
    dotted line at the longest training length (lengths to its right were never seen in training)."""
    fig, ax, styles = _ablation_axes(records, "sequence length (tokens)", title, (7.0, 3.4))
    if longest_trained is not None:
        ax.axvline(longest_trained, color="gray", ls=":", lw=1)
        ax.text(longest_trained, 0.03, " longest training length", fontsize=7, color="gray")
    for r, style in zip(records, styles, strict=True):
        lengths = [int(k) for k in r["accuracy"]]
        ax.plot(
            lengths, list(r["accuracy"].values()), marker="o" if style["ls"] == "-" else "s", ms=4, **style
        )
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_learning_curves(
    records: Sequence[Mapping], title: str = "held-out accuracy during training"
) -> Figure:
    """Accuracy against training step (``record["curve"]``: [[step, accuracy], ...]), styled like
    :func:`plot_ablation`."""
    fig, ax, styles = _ablation_axes(records, "training step", title, (7.0, 3.2))
    for r, style in zip(records, styles, strict=True):
        steps, accs = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
        ax.plot(steps, accs, **style)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
