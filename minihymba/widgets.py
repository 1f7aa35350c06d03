"""Interactive explorers for the notebooks: ipywidgets controls + an Output that shows a viz Figure.

Each explorer is a pure function of its control values (``draw(**values) -> Figure``) wrapped in a
``VBox(controls..., Output)``. ``show=True`` displays the box first and only then draws the default view into
its Output, so the box's text repr stays short (no image in it) and the view appears without touching a
control. Tests call the explorers with ``show=False`` and drive ``box.draw``.

Shapes: see :mod:`minihymba.viz`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as w
import torch
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from matplotlib.figure import Figure

from . import viz
from .config import HymbaConfig
from .masks import hymba_mask_mod, materialize
from .memory import LLAMA_3_2_3B, cache_bytes, llama_kv_bytes

__all__ = ["explorer", "mask_explorer", "ssm_state_explorer", "attention_explorer", "memory_calculator"]


def explorer(draw: Callable[..., Figure], controls: dict[str, w.ValueWidget], show: bool = True) -> w.VBox:
    """A VBox of ``controls`` and an Output redrawn with ``draw(**values)`` whenever a control changes."""
    out = w.Output()
    box = w.VBox([w.HBox(list(controls.values())), out])

    def redraw(_change=None) -> Figure:
        fig = draw(**{name: c.value for name, c in controls.items()})
        # Replace the Output's content in one assignment: ``clear_output(wait=True)`` followed by
        # ``append_display_data`` does not work from a callback (the deferred clear waits for a kernel
        # message that never comes, and JupyterLab piles up one figure per redraw; tests/browser checks it).
        data, metadata = InteractiveShell.instance().display_formatter.format(fig)
        out.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)
        return fig

    for control in controls.values():
        control.observe(redraw, names="value")
    box.draw = redraw  # type: ignore[attr-defined]
    if show:
        display(box)
        redraw()
    return box


def mask_explorer(seq_len: int = 32, window: int = 8, n_meta: int = 4, show: bool = True) -> w.VBox:
    """Hymba's sliding-window + meta-prefix mask next to the global (causal) one."""

    def draw(seq_len: int, window: int, n_meta: int) -> Figure:
        s = n_meta + seq_len
        swa = materialize(hymba_mask_mod(window, n_meta), s)[0]
        full = materialize(hymba_mask_mod(None, n_meta), s)[0]
        return viz.plot_mask({"global layer": full, f"sliding window W={window}": swa}, n_meta=n_meta)

    controls = {
        "seq_len": w.IntSlider(seq_len, 4, 96, description="tokens"),
        "window": w.IntSlider(window, 1, 48, description="window W"),
        "n_meta": w.IntSlider(n_meta, 0, 16, description="meta M"),
    }
    return explorer(draw, controls, show)


def ssm_state_explorer(
    states: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, t: int = 0, show: bool = True
) -> w.VBox:
    """Token slider over recorded SSM states (L, I, N) with their step sizes dt (L, I) and A (I, N)."""

    width = states.shape[1]

    def draw(t: int, channels: int) -> Figure:
        return viz.plot_ssm_state(states, dt, A, t, channels)

    controls = {
        "t": w.IntSlider(t, 0, states.shape[0] - 1, description="token"),
        "channels": w.IntSlider(min(32, width), min(4, width), width, description="channels"),
    }
    return explorer(draw, controls, show)


def attention_explorer(
    attentions: tuple[torch.Tensor, ...],
    n_meta: int,
    side: Callable[[int], torch.Tensor] | None = None,
    side_name: str = "SSM",
    show: bool = True,
    tokens: Sequence[str] | None = None,
) -> w.VBox:
    """Layer / head / query-row viewer over ``model(..., output_attentions=True).attentions`` (batch row 0).

    ``side(layer)`` optionally gives a (Q, K) map drawn next to the head (e.g. the SSM branch's view);
    ``tokens`` (one string per key, meta tokens included) labels the key axis.
    """
    n_layers, n_heads, q_len = len(attentions), attentions[0].shape[1], attentions[0].shape[2]

    def draw(layer: int, head: int, query: int) -> Figure:
        maps = {f"layer {layer} head {head}": attentions[layer][0, head]}
        if side is not None:
            maps[f"layer {layer} {side_name}"] = side(layer)
        return viz.plot_attention_map(maps, n_meta=n_meta, query=query, tokens=tokens)

    controls = {
        "layer": w.IntSlider(0, 0, n_layers - 1, description="layer"),
        "head": w.IntSlider(0, 0, n_heads - 1, description="head"),
        "query": w.IntSlider(q_len - 1, 0, q_len - 1, description="query row"),
    }
    return explorer(draw, controls, show)


def memory_calculator(config: HymbaConfig, show: bool = True) -> w.VBox:
    """Cache size (MB, bf16) of ``config`` vs sequence length, with and without SWA and KV sharing."""

    def draw(window: int, swa: bool, sharing: bool, batch: int) -> Figure:
        cfg = config.replace(sliding_window=window)
        lens = [2**k for k in range(8, 16)]
        mb = 1e6
        attn = f"W={window}" if swa else "no SWA"
        label = f"Hymba ({attn}, {'shared' if sharing else 'own'} KV)"
        curves = {
            label: [
                cache_bytes(cfg, t, batch_size=batch, sliding_windows=swa, kv_sharing=sharing).total / mb
                for t in lens
            ],
            "same layers, all global, own KV": [
                cache_bytes(cfg, t, batch_size=batch, sliding_windows=False, kv_sharing=False).total / mb
                for t in lens
            ],
            "Llama-3.2-3B (GQA)": [
                llama_kv_bytes(**LLAMA_3_2_3B, seq_len=t, batch_size=batch) / mb for t in lens
            ],
        }
        return viz.plot_cache_memory(lens, curves, mark=8192)

    controls = {
        "window": w.IntSlider(config.sliding_window or 1024, 64, 4096, step=64, description="window W"),
        "swa": w.Checkbox(True, description="sliding windows"),
        "sharing": w.Checkbox(True, description="KV sharing"),
        "batch": w.IntSlider(1, 1, 16, description="batch"),
    }
    return explorer(draw, controls, show)
