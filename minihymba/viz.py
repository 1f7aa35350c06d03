"""Plots for the walkthrough notebooks: each function takes tensors or a config and returns a Figure.

Figures are built with ``matplotlib.figure.Figure`` directly (not ``pyplot``), so nothing is drawn twice in a
notebook and nothing stays open: a notebook shows the returned Figure, :func:`save_figure` writes it as a PNG
at :data:`DPI` with no software/date metadata (reruns give the same bytes), and the widgets in
:mod:`minihymba.widgets` redraw them. ``import minihymba`` does not import this module.

Reading rules every plot keeps (``tests/test_viz.py`` checks them): each axes that shows data has an x and a
y label; every image has a colorbar -- a labelled one per category for masks, and one that says so when its
colour scale is clipped; several series get a legend. The ``plot_*_diagram`` functions draw pictures of the
architecture with patches, arrows and text (axis off).

Shapes: mask (Q, K) bool; probs (Q, K) float; states (L, I, N); dt (L, I); A (I, N).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyBboxPatch, Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from .config import HymbaConfig

__all__ = [
    "DPI",
    "plot_per_key_ratio",
    "plot_head_scores",
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
    "plot_hybrid_layer_diagram",
    "plot_sequence_diagram",
    "plot_kv_sharing_diagram",
    "plot_offset_profile",
    "plot_ablation_seeds",
]

DPI = 150  # saved PNGs (figures/): sharp enough to read when zoomed; notebooks choose their own inline dpi
_GLOBAL, _SWA, _META = "#d95f02", "#1b9e77", "#7570b3"
_MASKED = "#f4f4f4"


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def save_figure(fig: Figure, name: str, outdir: str | Path = "figures") -> Path:
    """Write ``fig`` to ``outdir/name.png`` at :data:`DPI` (no Software/date metadata); returns the path."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (name if name.endswith(".png") else name + ".png")
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    return path


def _category_image(ax, codes: np.ndarray, colors: Sequence[str], name: str):
    """Draw integer codes 0..len(colors)-1 as an image, one flat colour per category."""
    norm = BoundaryNorm(np.arange(len(colors) + 1) - 0.5, len(colors))
    cmap = ListedColormap(list(colors), name=name)
    return ax.imshow(codes, cmap=cmap, norm=norm, interpolation="nearest")


def _category_colorbar(fig: Figure, image, ax, labels: Sequence[str]) -> None:
    """A colorbar that names each colour of a categorical image: the image's legend."""
    bar = fig.colorbar(image, ax=ax, ticks=range(len(labels)), shrink=0.8)
    bar.ax.set_yticklabels(labels, fontsize=8)
    bar.ax.tick_params(length=0)


def plot_architecture(config: HymbaConfig) -> Figure:
    """Layer map: which layers attend globally or in a sliding window, and who shares whose KV cache."""
    n = config.num_layers
    fig = Figure(figsize=(max(6.0, 0.33 * n + 1.5), 2.6))
    ax = fig.add_subplot()
    for i in range(n):
        color = _GLOBAL if config.is_global(i) else _SWA
        ax.add_patch(Rectangle((i + 0.08, 1.0), 0.84, 0.9, color=color))
        owns = config.owns_kv(i)
        ax.add_patch(
            Rectangle(
                (i + 0.2, 0.1),
                0.6,
                0.6,
                facecolor="#444" if owns else "white",
                edgecolor="#444",
                hatch=None if owns else "///",
            )
        )
        if not owns:  # an arc from the producer's KV box to this consumer
            src = config.kv_source(i)
            arrow = dict(arrowstyle="->", color="#444", connectionstyle="arc3,rad=0.5")
            ax.annotate("", xy=(i + 0.5, 0.4), xytext=(src + 0.5, 0.4), arrowprops=arrow)
    ax.set_xlim(0, n)
    ax.set_ylim(-0.6, 2.3)
    ax.set_xticks(np.arange(n) + 0.5, [str(i) for i in range(n)], fontsize=8)
    ax.set_yticks([0.4, 1.45], ["KV cache", "attention"])
    ax.tick_params(length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("layer")
    ax.set_ylabel("layer role")
    handles = [
        Rectangle((0, 0), 1, 1, color=_GLOBAL),
        Rectangle((0, 0), 1, 1, color=_SWA),
        Rectangle((0, 0), 1, 1, color="#444"),
        Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="#444", hatch="///"),
    ]
    window = config.sliding_window
    ax.legend(
        handles,
        ["global", f"sliding window (W={window})", "owns KV", "reads its producer's KV (arrow)"],
        ncol=4,
        loc="upper center",
        bbox_to_anchor=(0.5, 1.22),
        fontsize=8,
        frameon=False,
    )
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
    ax.set_ylabel("component")
    ax.set_xlim(0, values.max() / 1e6 * 1.35)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


_MASK_COLORS, _MASK_LABELS = (_MASKED, _SWA, _META), ("masked", "visible key", "visible meta key")


def _mask_axes(ax, mask: np.ndarray, n_meta: int, title: str):
    """Draw a (Q, K) bool mask (meta-token columns in purple); returns the image."""
    codes = np.where(mask, 1, 0)
    if n_meta:
        codes[:, :n_meta] = np.where(mask[:, :n_meta], 2, 0)
    image = _category_image(ax, codes, _MASK_COLORS[: 3 if n_meta else 2], "hymba_mask")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    return image


def plot_mask(
    masks: Mapping[str, torch.Tensor] | torch.Tensor, n_meta: int = 0, title: str = "attention mask"
) -> Figure:
    """One or more dense (Q, K) bool masks side by side; meta-token columns in purple, colours named on
    a shared colorbar."""
    if not isinstance(masks, Mapping):
        masks = {title: masks}
    fig = Figure(figsize=(3.2 * len(masks) + 1.4, 3.4), layout="constrained")
    axes = [fig.add_subplot(1, len(masks), j + 1) for j in range(len(masks))]
    for ax, (name, mask) in zip(axes, masks.items(), strict=True):
        image = _mask_axes(ax, _np(mask).astype(bool), n_meta, name)
    _category_colorbar(fig, image, axes, _MASK_LABELS[: 3 if n_meta else 2])
    return fig


def plot_block_sparsity(mask: torch.Tensor, block_size: int, n_meta: int = 0) -> Figure:
    """The dense mask next to its block view: empty blocks (skipped), partial blocks, full blocks."""
    m = _np(mask).astype(bool)
    q_blocks, k_blocks = -(-m.shape[0] // block_size), -(-m.shape[1] // block_size)
    kinds = np.zeros((q_blocks, k_blocks), dtype=int)
    for i in range(q_blocks):
        for j in range(k_blocks):
            tile = m[i * block_size : (i + 1) * block_size, j * block_size : (j + 1) * block_size]
            kinds[i, j] = 2 if tile.all() else (1 if tile.any() else 0)
    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    left, ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    image = _mask_axes(left, m, n_meta, f"dense mask ({m.shape[0]}x{m.shape[1]})")
    _category_colorbar(fig, image, left, _MASK_LABELS[: 3 if n_meta else 2])
    image = _category_image(ax, kinds, (_MASKED, "#a6d854", "#1b7837"), "block_kinds")
    _category_colorbar(fig, image, ax, ("empty (skipped)", "partial", "full"))
    skipped = int((kinds == 0).sum())
    ax.set_title(f"{block_size}x{block_size} blocks: {skipped}/{kinds.size} skipped", fontsize=9)
    ax.set_xlabel("key block")
    ax.set_ylabel("query block")
    ax.set_xticks(range(k_blocks))
    ax.set_yticks(range(q_blocks))
    return fig


def plot_attention_map(
    probs: torch.Tensor | Mapping[str, torch.Tensor],
    n_meta: int = 0,
    tokens: Sequence[str] | None = None,
    title: str = "attention",
    query: int | None = None,
) -> Figure:
    """Attention probabilities (Q, K) as heatmaps (several side by side from a mapping); meta keys are
    marked with a purple bar, ``query`` draws that row's weights underneath. The colour scale stops at the
    99th percentile of the nonzero weights (a few huge entries would hide the rest); the colorbar says so."""
    maps = dict(probs) if isinstance(probs, Mapping) else {title: probs}
    rows = 2 if query is not None else 1
    labelled = tokens is not None and len(tokens) <= 40  # token strings on both axes: a bigger figure
    width, height = (6.0, 5.6) if labelled else (4.3, 3.6)
    fig = Figure(figsize=(width * len(maps), height + 1.8 * (rows - 1)), layout="constrained")
    grid = fig.add_gridspec(rows, len(maps), height_ratios=[3, 1][:rows])
    for j, (name, p) in enumerate(maps.items()):
        p = _np(p)
        ax = fig.add_subplot(grid[0, j])
        top = max(float(np.quantile(p[p > 0], 0.99)) if (p > 0).any() else 1.0, 1e-9)
        image = ax.imshow(p, cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
        clipped = float(p.max()) > top
        label = "attention weight" + ("\n(scale clipped at the 99th pct.)" if clipped else "")
        fig.colorbar(image, ax=ax, shrink=0.9).set_label(label, fontsize=8)
        if n_meta:
            ax.axvspan(-0.5, n_meta - 0.5, ymin=0, ymax=0.03, color=_META)
            ax.axvline(n_meta - 0.5, color="white", lw=0.6, ls=":")
        if query is not None:
            ax.axhline(query, color="red", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("key" + (" (purple bar: meta tokens)" if n_meta else ""), fontsize=9)
        ax.set_ylabel("query" + (f" (red line: row {query})" if query is not None else ""), fontsize=9)
        if tokens is not None and len(tokens) == p.shape[1] and p.shape[1] <= 40:
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            if p.shape[0] == p.shape[1]:  # queries are the same positions as keys
                ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
        if query is not None:
            bx = fig.add_subplot(grid[1, j])
            colors = [_META if k < n_meta else "#4c72b0" for k in range(p.shape[1])]
            bx.bar(range(p.shape[1]), p[query], color=colors, width=1.0)
            bx.set_xlim(-0.5, p.shape[1] - 0.5)
            bx.set_xlabel("key", fontsize=8)
            bx.set_ylabel(f"weight\n(query {query})", fontsize=8)
            bx.tick_params(labelsize=8)
            if n_meta:
                handles = [Patch(color=_META), Patch(color="#4c72b0")]
                bx.legend(handles, ["meta key", "other key"], fontsize=7, loc="upper right")
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
    fig = Figure(figsize=(12.0, 3.4), layout="constrained")
    ax0, ax1, ax2 = (fig.add_subplot(1, 3, k) for k in (1, 2, 3))
    lim = max(float(np.abs(h[t, :c]).max()), 1e-9)  # this token's scale: nothing is clipped
    image = ax0.imshow(h[t, :c].T, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax0).set_label("state value", fontsize=8)
    ax0.set_title(f"state h_t at token {t}", fontsize=9)
    ax0.set_xlabel("channel")
    ax0.set_ylabel("state index n")
    ax0.set_yticks(range(h.shape[-1]))
    steps = np.arange(d.shape[0])
    lines = ax1.plot(steps, d[:, :c], color="#4c72b0", alpha=0.25, lw=0.8)
    lines[0].set_label("one channel each")
    ax1.plot(steps, d[:, :c].mean(1), color="black", lw=1.5, label="mean over channels")
    ax1.axvline(t, color="red", lw=1, label=f"token {t}")
    ax1.set_yscale("log")
    ax1.set_title("step size dt (input-dependent)", fontsize=9)
    ax1.set_xlabel("token")
    ax1.set_ylabel("dt (log scale)")
    ax1.legend(fontsize=8)
    decay = np.exp(d[t, :c, None] * a[:c])  # (c, N)
    image = ax2.imshow(decay.T, cmap="magma", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax2).set_label("kept per step (0 forget, 1 keep)", fontsize=8)
    ax2.set_title(f"decay exp(dt*A) at token {t}", fontsize=9)
    ax2.set_xlabel("channel")
    ax2.set_ylabel("state index n")
    ax2.set_yticks(range(h.shape[-1]))
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
        ax.axvline(mark, color="gray", ls=":", lw=1, label=f"{mark:,} tokens")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens in the cache")
    ax.set_ylabel(f"cache size ({unit})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_step_errors(errors: Mapping[str, Sequence[float]], title: str = "decode vs full forward") -> Figure:
    """Per-generated-token max |difference| curves on a log scale (zeros drawn at the floor, which the
    label says). Token 0 was chosen from the prefill's logits, token i >= 1 from decode step i."""
    fig = Figure(figsize=(6.5, 3.0))
    ax = fig.add_subplot()
    floor = 1e-9
    for name, ys in errors.items():
        ax.plot(np.maximum(np.asarray(ys, dtype=float), floor), marker="o", ms=3, label=name)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generated token i (0: from the prefill; i >= 1: decode step i)", fontsize=9)
    ax.set_ylabel(f"max |logit difference|\n(0 drawn at {floor:g})", fontsize=9)
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
        styles.append(
            {
                "ls": "-" if meta else "--",
                "color": _ARCH_COLORS.get(r["architecture"], "black"),
                "label": f"{r['architecture']}{'' if meta else ', no meta'}",
            }
        )
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
        ax.text(longest_trained, 0.03, " longest training length", fontsize=8, color="gray")
    for r, style in zip(records, styles, strict=True):
        lengths = [int(k) for k in r["accuracy"]]
        ax.plot(
            lengths, list(r["accuracy"].values()), marker="o" if style["ls"] == "-" else "s", ms=4, **style
        )
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
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
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- diagrams
# Pictures of the architecture drawn with patches, arrows and text on an axis-off canvas whose data units
# are the layout grid.

_ATTN_FILL, _SSM_FILL, _SHARED_FILL = "#fde0c5", "#dadaeb", "#eeeeee"


def _diagram_axes(figsize: tuple[float, float]) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    return fig, ax


def _box(
    ax,
    x: float,
    y: float,
    text: str,
    width: float,
    fill: str = _SHARED_FILL,
    height: float = 0.9,
    size: float = 9.5,
    edge: str = "#555555",
) -> None:
    """A rounded box centred at (x, y) with a (possibly multi-line) label."""
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            lw=1.1,
            fc=fill,
            ec=edge,
            boxstyle="round,pad=0,rounding_size=0.15",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], **style) -> None:
    props = dict(arrowstyle="-|>", color="#444444", lw=1.2, shrinkA=0, shrinkB=0, mutation_scale=12)
    ax.annotate("", xy=end, xytext=start, arrowprops=props | style)


def plot_hybrid_layer_diagram() -> Figure:
    """One Hymba layer as a flow chart: the input norm and the one ``in_proj`` feeding the attention heads
    (q, k, v) and the SSM heads (x, z) in parallel, each branch's RMSNorm (the paper's beta_1, beta_2), the
    average, ``out_proj`` and the residual add, then the pre-MLP norm, the MLP and the second residual add.
    Shapes use the glossary letters of :mod:`minihymba.config`."""
    fig, ax = _diagram_axes((8.4, 11.0))
    ax.set_xlim(-0.4, 12.4)
    ax.set_ylim(-1.2, 22.0)
    title = "One Hymba layer: attention heads and SSM heads in parallel"
    ax.text(6.0, 21.5, title, ha="center", fontsize=11.5, weight="bold")
    mid, left, right, wide, half = 6.0, 3.25, 8.75, 5.2, 4.9
    h = 0.9  # box height; box edges are at y +- h/2

    def down(x: float, y_from: float, y_to: float, **style) -> None:
        _arrow(ax, (x, y_from - h / 2), (x, y_to + h / 2), **style)

    _box(
        ax,
        mid,
        20.4,
        "x   the residual stream   (B, S, D)\nS = M meta tokens + T text tokens",
        wide,
        fill="white",
    )
    _box(ax, mid, 19.0, "RMSNorm   (input_layernorm)", wide)
    _box(ax, mid, 17.6, "in_proj: one matrix feeds both branches\nits rows: q, k, v  |  x, z", wide)
    down(mid, 20.4, 19.0)
    down(mid, 19.0, 17.6)
    ax.text(left, 16.35, "attention heads", ha="center", fontsize=10.5, weight="bold", color=_GLOBAL)
    ax.text(right, 16.35, "SSM heads (Mamba-1)", ha="center", fontsize=10.5, weight="bold", color="#54278f")
    rows = [  # (y, attention box, SSM box)
        (
            15.3,
            "q (B, H, S, Dk)   k (B, Hkv, S, Dk)\nv (B, Hkv, S, Dv): wider value heads",
            "x (B, S, I)     z (B, S, I)",
        ),
        (
            13.8,
            "RoPE on q and k (NTK base)\npositions 0..S-1, meta first",
            "causal depthwise conv (K taps)\n+ SiLU",
        ),
        (
            12.3,
            "softmax attention, GQA: global mask,\nor window W + meta keys always seen",
            "selective scan   h = exp(dt·A)·h + dt·B·x\ny = C·h + D·x    (dt, B, C from x)",
        ),
        (10.8, "concatenate heads   (B, S, H·Dv = I)", "gate   y · SiLU(z)   (B, S, I)"),
        (9.3, "RMSNorm · β1   (pre_avg_layernorm1)", "RMSNorm · β2   (pre_avg_layernorm2)"),
    ]
    for y, attn_text, ssm_text in rows:
        _box(ax, left, y, attn_text, half, fill=_ATTN_FILL, edge=_GLOBAL, size=9)
        _box(ax, right, y, ssm_text, half, fill=_SSM_FILL, edge="#54278f", size=9)
    for (y0, *_), (y1, *_) in zip(rows, rows[1:], strict=False):
        down(left, y0, y1)
        down(right, y0, y1 if y1 != 10.8 else 10.8)
    for x in (left, right):  # in_proj -> both branches
        _arrow(ax, (mid, 17.6 - h / 2), (x, 15.3 + h / 2))
    # z skips the conv and the scan: from the (x, z) box down the right edge into the gate
    edge = right + half / 2 + 0.35
    ax.plot([right + half / 2, edge, edge], [15.3, 15.3, 10.8], color="#54278f", lw=1.1)
    _arrow(ax, (edge, 10.8), (right + half / 2, 10.8), color="#54278f")
    ax.text(edge + 0.1, 13.0, "z", fontsize=10, color="#54278f", va="center")
    _box(ax, mid, 7.8, "average   (attention + SSM) / 2   (B, S, I)", wide)
    for x in (left, right):
        _arrow(ax, (x, 9.3 - h / 2), (mid, 7.8 + h / 2))
    _box(ax, mid, 6.4, "out_proj   (I → D)", wide)
    down(mid, 7.8, 6.4)
    for y_add, y_skip_from, x_rail in ((5.1, 20.4, 0.2), (0.9, 5.1, 0.75)):  # the two residual adds
        ax.add_patch(Circle((mid, y_add), 0.32, fc="white", ec="#444444", lw=1.2))
        ax.text(mid, y_add, "+", ha="center", va="center", fontsize=13)
        start_x = mid - (wide / 2 if y_skip_from == 20.4 else 0.32)
        ax.plot([start_x, x_rail, x_rail], [y_skip_from, y_skip_from, y_add], color="#888888", lw=1.1)
        _arrow(ax, (x_rail, y_add), (mid - 0.32, y_add), color="#888888")
    ax.text(0.3, 12.0, "residual", rotation=90, va="center", fontsize=9, color="#888888")
    _arrow(ax, (mid, 6.4 - h / 2), (mid, 5.1 + 0.32))
    _box(ax, mid, 3.8, "RMSNorm   (pre_moe_layernorm)", wide)
    _arrow(ax, (mid, 5.1 - 0.32), (mid, 3.8 + h / 2))
    _box(ax, mid, 2.4, "MLP   down( SiLU(gate·u) ⊙ up·u )\n(moe.experts.0)", wide)
    down(mid, 3.8, 2.4)
    _arrow(ax, (mid, 2.4 - h / 2), (mid, 0.9 + 0.32))
    _arrow(ax, (mid, 0.9 - 0.32), (mid, -0.2))
    ax.text(mid, -0.45, "x   to the next layer   (B, S, D)", ha="center", va="top", fontsize=9.5)
    ax.text(
        8.85,
        19.0,
        "a KV consumer layer has\nno k, v rows: it attends\nover its producer's k, v",
        ha="left",
        va="center",
        fontsize=8.5,
        style="italic",
        color="#555555",
    )
    ax.text(right - 0.15, 14.55, "x", ha="right", va="center", fontsize=10, color="#54278f")
    return fig


def plot_sequence_diagram(
    n_meta: int = 4, n_text: int = 12, window: int = 5, query: int | None = None
) -> Figure:
    """The sequence a layer sees -- M meta tokens, then the text -- and which keys one query may read in a
    global layer (every earlier position) and in a sliding-window layer (the W previous positions, itself,
    and every meta token). ``query`` is an index in the meta-inclusive sequence (default: the third from the
    end, so that future keys show too)."""
    s = n_meta + n_text
    q = max(s - 3, 0) if query is None else query
    if not 0 <= q < s:
        raise ValueError(f"query must be in [0, {s}), got {q}")
    fig, ax = _diagram_axes((0.5 * s + 5.2, 4.6))
    ax.set_xlim(-6.2, s + 2.4)
    ax.set_ylim(-2.3, 4.9)
    ax.set_aspect("equal")
    swa_rule = f"sliding-window layer (W = {window})\nk ≤ q  and  (q − k ≤ W  or  k < M)"
    layers = [("global layer\nk ≤ q", None, 2.0), (swa_rule, window, 0.0)]
    for label, win, y in layers:
        seen = 0
        for k in range(s):
            visible = k <= q and (win is None or q - k <= win or k < n_meta)
            seen += visible
            fill = (_META if k < n_meta else _SWA) if visible else ("white" if k > q else "#cccccc")
            ax.add_patch(
                Rectangle((k + 0.05, y), 0.9, 0.9, fc=fill, ec="#999999", lw=0.8, ls="--" if k > q else "-")
            )
            ax.text(
                k + 0.5,
                y + 0.45,
                str(k),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if visible else "#555555",
            )
        ax.add_patch(Rectangle((q - 0.02, y - 0.07), 1.04, 1.04, fill=False, ec="red", lw=2.0))
        ax.text(-0.3, y + 0.45, label, ha="right", va="center", fontsize=9)
        ax.text(s + 0.2, y + 0.45, f"sees {seen}\nkeys", va="center", fontsize=8.5)
    for start, stop, text in (
        (0, n_meta, f"M = {n_meta} meta tokens"),
        (n_meta, s, f"T = {n_text} text tokens"),
    ):
        if stop > start:  # a bracket over the span, above the top row
            ax.plot(
                [start + 0.05, start + 0.05, stop - 0.05, stop - 0.05], [3.05, 3.2, 3.2, 3.05], color="#444"
            )
            ax.text((start + stop) / 2, 3.3, text, ha="center", va="bottom", fontsize=9)
    lo = max(q - window, 0)  # the window below the sliding-window row: keys q-W .. q
    ax.plot([lo + 0.05, lo + 0.05, q + 0.95, q + 0.95], [-0.15, -0.3, -0.3, -0.15], color="red")
    ax.text(
        (lo + q + 1) / 2,
        -0.4,
        f"window: q − k ≤ W, {q - lo + 1} keys with the query itself",
        ha="center",
        va="top",
        fontsize=8.5,
        color="red",
    )
    ax.text(
        s / 2,
        4.35,
        f"Which keys the query q = {q} reads (each number is a position)",
        ha="center",
        fontsize=10.5,
        weight="bold",
    )
    handles = [
        Patch(fc=_META, ec="#999999"),
        Patch(fc=_SWA, ec="#999999"),
        Patch(fc="#cccccc", ec="#999999"),
        Patch(fc="white", ec="#999999", ls="--"),
        Patch(fill=False, ec="red", lw=2.0),
    ]
    labels = [
        "meta key: always visible",
        "visible text key",
        "masked: left the window",
        "future key: masked (causal)",
        f"the query q = {q}",
    ]
    ax.legend(
        handles, labels, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 0.0), fontsize=8.5, frameon=False
    )
    return fig


def plot_kv_sharing_diagram(config: HymbaConfig, per_row: int = 16) -> Figure:
    """Layers as columns: global or sliding-window, KV producer or consumer (arrows from producer to
    consumers), and the cache each layer holds after the M meta tokens and T more tokens: M + T key/value
    entries for a global layer, M + W for a sliding-window producer, 0 for a consumer -- and in every layer
    the constant conv + SSM state. More than ``per_row`` layers wrap onto further rows of columns."""
    n = config.num_layers
    m, w = config.num_meta_tokens, config.sliding_window
    cols, bands = min(n, per_row), -(-n // per_row)
    band_height = 5.0
    bottom = -band_height * (bands - 1) - 3.4
    fig, ax = _diagram_axes((max(7.5, 0.5 * cols + 3.0), 0.55 * (4.3 - bottom)))
    ax.set_xlim(-3.2, cols + 0.2)
    ax.set_ylim(bottom, 4.3)
    arc = dict(
        arrowstyle="-|>",
        color="#444444",
        lw=1.3,
        connectionstyle="arc3,rad=0.7",
        shrinkA=1,
        shrinkB=1,
        mutation_scale=10,
    )
    for i in range(n):
        x, y = i % per_row, -band_height * (i // per_row)  # column, and the top of this row of columns
        owns, glob = config.owns_kv(i), config.is_global(i)
        ax.add_patch(Rectangle((x + 0.08, y + 2.6), 0.84, 0.8, color=_GLOBAL if glob else _SWA))
        ax.text(x + 0.5, y + 3.0, str(i), ha="center", va="center", fontsize=9, color="white")
        ax.add_patch(
            Rectangle(
                (x + 0.18, y + 1.3),
                0.64,
                0.64,
                fc="#444444" if owns else "white",
                ec="#444444",
                hatch=None if owns else "////",
            )
        )
        source = config.kv_source(i)
        if not owns and source // per_row == i // per_row:
            ax.annotate("", xy=(x + 0.5, y + 1.3), xytext=(source % per_row + 0.5, y + 1.3), arrowprops=arc)
        elif not owns:  # the producer sits on the row above
            ax.text(x + 0.5, y + 1.0, f"from {source}", ha="center", va="top", fontsize=7.5)
        entries = "M+T" if glob else ("M+W" if owns else "0")
        ax.text(
            x + 0.5,
            y + 0.3,
            entries,
            ha="center",
            va="center",
            fontsize=9,
            weight="bold" if owns else "normal",
        )
        ax.add_patch(Rectangle((x + 0.18, y - 0.85), 0.64, 0.4, fc=_META, ec="none", alpha=0.6))
    for band in range(bands):
        rows = (
            (3.0, "attention"),
            (1.62, "keys / values"),
            (0.3, "KV cache entries"),
            (-0.65, "conv + SSM state"),
        )
        for y, label in rows:
            ax.text(-0.2, y - band_height * band, label, ha="right", va="center", fontsize=9)
    owners = sum(config.owns_kv(i) for i in range(n))
    centre = (cols - 3.0) / 2
    ax.text(
        centre, 4.0, f"{owners} of {n} layers hold keys and values", ha="center", fontsize=10.5, weight="bold"
    )
    window = "no sliding window" if w is None else f"M + W = {m} + {w} = {m + w}: a window producer's cap"
    note = (
        f"M + T: a global layer's entries grow with the text (M = {m} meta tokens)\n{window}\n"
        "0: a consumer stores nothing     conv + SSM state: I·(K + N) numbers, any T"
    )
    ax.text(centre, bottom + 2.3, note, ha="center", va="top", fontsize=8.5, color="#333333", linespacing=1.4)
    handles = [
        Patch(color=_GLOBAL),
        Patch(color=_SWA),
        Patch(fc="#444444"),
        Patch(fc="white", ec="#444444", hatch="////"),
    ]
    labels = [
        "global layer",
        f"sliding-window layer (W = {w})",
        "KV producer: computes k, v",
        "KV consumer: reads the producer's k, v (arrow)",
    ]
    ax.legend(
        handles, labels, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 0.0), fontsize=8.5, frameon=False
    )
    return fig


def plot_offset_profile(
    profile: torch.Tensor,
    uniform: torch.Tensor,
    title: str = "attention by offset",
    label: str = "head",
) -> Figure:
    """Mean attention weight against the offset q - k (how many positions back the key is), one line per
    head (``profile`` (H, O)), with the weight uniform attention would give (``uniform`` (O,)) dashed: a
    positional head shows one tall peak at a fixed offset (:func:`minihymba.analysis.offset_profile`)."""
    prof, uni = _np(profile), _np(uniform)
    fig = Figure(figsize=(6.5, 3.2))
    ax = fig.add_subplot()
    offsets = np.arange(prof.shape[1])
    for h, row in enumerate(prof):
        ax.plot(offsets, row, marker="o", ms=4, label=f"{label} {h}")
    ax.plot(offsets, uni, color="gray", ls="--", lw=1.2, label="uniform over visible keys")
    ax.set_xticks(offsets)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("offset q - k (positions back; 0 = the query itself)")
    ax.set_ylabel("mean attention weight")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_per_key_ratio(
    ratios: Mapping[str, Sequence[float]], title: str = "attention per key, relative to uniform"
) -> Figure:
    """One line per series (e.g. "meta tokens, with meta" / "first token, no meta"): per layer, the mass a
    key of that group gets divided by the uniform share per key (:func:`minihymba.analysis.sink_mass`).
    The dashed line at 1 is uniform attention; a sink sits far above it. Log scale: 2x and 1/2x look alike."""
    fig = Figure(figsize=(6.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    markers = ["o", "s", "^", "D", "v", "P"]
    for k, (name, vals) in enumerate(ratios.items()):
        vals = np.asarray(vals, dtype=float)
        ax.plot(
            np.arange(len(vals)) + 0.06 * (k - (len(ratios) - 1) / 2), vals, marker=markers[k % 6], label=name
        )
    ax.axhline(1.0, color="k", ls="--", lw=0.8, label="uniform (1.0)")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("mass per key / uniform share\n(mean over heads, log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_head_scores(
    scores: Mapping[str, torch.Tensor], baselines: Mapping[str, float] | None = None, title: str = ""
) -> Figure:
    """Heat maps (layers x heads) of per-head scores, one panel per score (e.g. previous-token, induction),
    each cell annotated with its value; ``baselines`` names the uniform-attention score in the panel title."""
    fig = Figure(figsize=(3.6 * len(scores), 3.4), layout="constrained")
    for j, (name, values) in enumerate(scores.items()):
        v = _np(values)
        ax = fig.add_subplot(1, len(scores), j + 1)
        image = ax.imshow(v, cmap="magma", vmin=0, vmax=max(float(v.max()), 1e-9), aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.9).set_label("score (mean attention weight)", fontsize=8)
        for (r, c), x in np.ndenumerate(v):
            ax.text(
                c,
                r,
                f"{x:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="w" if x < 0.6 * v.max() else "k",
            )
        ax.set_xticks(range(v.shape[1]))
        ax.set_yticks(range(v.shape[0]))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        base = f"\n(uniform: {baselines[name]:.3f})" if baselines and name in baselines else ""
        ax.set_title(f"{name}{base}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


_ARCH_MARKERS = {"parallel": "o", "sequential": "s", "attention": "^", "ssm": "D"}


def _seed_groups(records: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    """Records grouped by model (architecture, plus ", no meta" without meta tokens), in first-seen order."""
    groups: dict[str, list[Mapping]] = {}
    for r in records:
        name = r["architecture"] + ("" if r["meta_tokens"] > 0 else ", no meta")
        groups.setdefault(name, []).append(r)
    return groups


def plot_ablation_seeds(
    records: Sequence[Mapping],
    chance: float | None = None,
    title: str = "toy ablation over seeds",
) -> Figure:
    """Ablation records over several seeds: per model the seeds' mean (marker) and their range (error bar,
    min to max) and every seed (small dots), with the models side by side at each x so none hides another.

    Records of the text task (``record["heldout_loss"]``) are drawn as held-out loss (nats/token, lower is
    better; the curve is the held-out loss during training), others as accuracy.

    Panels: held-out accuracy per evaluation length; per stored pair (``record["accuracy_by_pair"]``, MQAR:
    pair 1 is stored first, farthest from the queries), when the records have it; and the learning curve
    (``record["curve"]``: mean line, min-max band). ``chance`` draws the accuracy of uniform guessing."""
    groups = _seed_groups(records)
    loss = all("heldout_loss" in r for r in records)
    field, quantity = ("heldout_loss", "held-out loss") if loss else ("accuracy", "held-out accuracy")
    by_pair = all("accuracy_by_pair" in r for r in records)
    fig = Figure(figsize=(13.0 if by_pair else 9.5, 3.6))
    axes = fig.subplots(
        1, 3 if by_pair else 2, gridspec_kw={"width_ratios": [1, 2, 2] if by_pair else [1, 2]}
    )
    width = 0.8 / max(1, len(groups))

    def points(ax, values_per_seed: list[list[float]], i: int, name: str, style: dict) -> None:
        data = np.asarray(values_per_seed, dtype=float)  # (seeds, points)
        x = np.arange(data.shape[1]) + (i - (len(groups) - 1) / 2) * width
        mean = np.nanmean(data, axis=0)
        err = np.stack([mean - np.nanmin(data, axis=0), np.nanmax(data, axis=0) - mean])
        ax.errorbar(
            x,
            mean,
            yerr=err,
            fmt=style["marker"],
            ms=5,
            capsize=2,
            lw=1,
            color=style["color"],
            label="_nolegend_",
        )
        for row in data:
            ax.plot(x, row, ".", ms=3, color=style["color"], alpha=0.6)

    styles = {}
    for i, (name, group) in enumerate(groups.items()):
        arch = group[0]["architecture"]
        styles[name] = {"color": _ARCH_COLORS.get(arch, "black"), "marker": _ARCH_MARKERS.get(arch, "o")}
        lengths = list(group[0][field])
        points(axes[0], [[r[field][k] for k in lengths] for r in group], i, name, styles[name])
        axes[0].set_xticks(range(len(lengths)), lengths)
        if by_pair:
            pairs = [r["accuracy_by_pair"] for r in group]
            points(axes[1], pairs, i, name, styles[name])
            axes[1].set_xticks(range(len(pairs[0])), [str(j + 1) for j in range(len(pairs[0]))])
    axes[0].set_xlabel("evaluation length (tokens)")
    axes[0].set_title(quantity, fontsize=10)
    if by_pair:
        axes[1].set_xlabel("stored pair (1 = stored first, farthest from the queries)")
        axes[1].set_title("held-out accuracy per stored pair (first length)", fontsize=10)
    curve_ax = axes[-1]
    for i, (name, group) in enumerate(groups.items()):
        curves = [r["curve"] for r in group if r["curve"]]
        if not curves:
            continue
        steps = np.asarray([s for s, _ in curves[0]], dtype=float)
        accs = np.asarray([[a for _, a in c] for c in curves], dtype=float)  # (seeds, points)
        shift = (i - (len(groups) - 1) / 2) * 0.08 * (steps[1] - steps[0] if len(steps) > 1 else 1.0)
        color = styles[name]["color"]
        curve_ax.fill_between(steps + shift, accs.min(0), accs.max(0), color=color, alpha=0.15, lw=0)
        curve_ax.plot(
            steps + shift,
            accs.mean(0),
            marker=styles[name]["marker"],
            ms=3,
            lw=1.2,
            color=color,
            label=f"{name} (mean; band: seed range)",
        )
    curve_ax.set_xlabel("training step")
    curve_ax.set_title(f"{quantity} during training", fontsize=10)
    for ax in axes:
        if chance is not None:
            ax.axhline(
                chance, color="gray", ls="--", lw=1, label="chance" if ax is curve_ax else "_nolegend_"
            )
        if not loss:
            ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("loss (nats/token)" if loss else "accuracy")
        ax.grid(True, alpha=0.3)
    handles, labels = curve_ax.get_legend_handles_labels()
    labels = [f"chance ({chance:.3f})" if lab == "chance" else lab for lab in labels]
    handles.append(Line2D([], [], color="black", marker="o", ms=4, lw=1))
    labels.append("marker, bar: seed mean, range\n(left panels; dots: single seeds)")
    curve_ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
