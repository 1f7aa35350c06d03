"""Every minihymba.viz plot returns a Figure on small inputs and is readable (labelled axes, a colorbar for
every image, legends, no tiny text); save_figure writes stable PNGs at >= 150 dpi; widgets draw."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from minihymba import HymbaConfig
from minihymba.masks import hymba_mask_mod, materialize

viz = pytest.importorskip("minihymba.viz")

TINY = HymbaConfig(
    vocab_size=64,
    hidden_size=32,
    num_layers=4,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=64,
    ssm_state_size=4,
    dt_rank=4,
    num_meta_tokens=2,
    sliding_window=4,
    global_layers=(0, 3),
    kv_share_groups=((1, 2),),
    max_position_embeddings=64,
    orig_max_position_embeddings=16,
)


def _check(fig: Figure, n_axes: int) -> None:
    assert isinstance(fig, Figure)
    assert len(fig.axes) >= n_axes
    fig.canvas.draw()  # renders without error
    plt.close(fig)


def _ssm_inputs(length: int = 6, width: int = 3, n: int = 4):
    gen = torch.Generator().manual_seed(0)
    dt = torch.rand(length, width, generator=gen) * 0.5 + 0.01
    A = -torch.rand(width, n, generator=gen) - 0.1
    B, C = torch.randn(length, n, generator=gen), torch.randn(length, n, generator=gen)
    return dt, A, B, C


def test_plot_functions_return_figures() -> None:
    mask = materialize(hymba_mask_mod(3, 2), 10)[0]
    probs = torch.softmax(torch.randn(10, 10).masked_fill(~mask, float("-inf")), -1)
    dt, A, _, _ = _ssm_inputs()
    states = torch.randn(6, 3, 4)
    _check(viz.plot_architecture(TINY), 1)
    _check(viz.plot_architecture(HymbaConfig()), 1)
    _check(viz.plot_param_counts({"a": 10, "b": 30}), 1)
    _check(viz.plot_mask(mask, n_meta=2), 1)
    _check(viz.plot_mask({"x": mask, "y": mask}, n_meta=2), 2)
    _check(viz.plot_block_sparsity(mask, 4, n_meta=2), 2)
    _check(viz.plot_attention_map(probs, n_meta=2), 1)
    _check(viz.plot_attention_map({"a": probs, "b": probs}, n_meta=2, query=5, tokens=list("abcdefghij")), 4)
    _check(viz.plot_attention_mass({"meta": [0.2, 0.3], "rest": [0.8, 0.7]}), 1)
    _check(viz.plot_ssm_state(states, dt, A, t=2, channels=2), 3)
    _check(viz.plot_branch_norms({"attention": [1.0, 2.0], "ssm": [0.5, 0.1]}), 1)
    _check(viz.plot_cache_memory([1, 2, 4], {"x": [1.0, 2.0, 3.0]}, mark=2), 1)
    _check(viz.plot_step_errors({"x": [0.0, 1e-6, 0.5]}), 1)


def test_block_sparsity_counts_skipped_blocks() -> None:
    mask = materialize(hymba_mask_mod(None, 0), 8)[0]  # causal 8x8 in 4x4 blocks: one empty block of four
    fig = viz.plot_block_sparsity(mask, 4)
    assert "1/4 skipped" in fig.axes[1].get_title()
    plt.close(fig)


def test_save_figure_is_byte_stable(tmp_path) -> None:
    paths = [viz.save_figure(viz.plot_architecture(TINY), "arch", tmp_path / str(i)) for i in range(2)]
    data = [p.read_bytes() for p in paths]
    assert paths[0].name == "arch.png" and data[0][:8] == b"\x89PNG\r\n\x1a\n"
    assert data[0] == data[1]
    assert b"Software" not in data[0] and b"matplotlib" not in data[0]


def test_widgets_draw_their_default_view() -> None:
    widgets = pytest.importorskip("minihymba.widgets")
    dt, A, _, _ = _ssm_inputs()
    probs = (torch.softmax(torch.randn(1, 2, 8, 8), -1),) * 3
    boxes = [
        widgets.mask_explorer(seq_len=8, window=2, n_meta=2, show=False),
        widgets.ssm_state_explorer(torch.randn(6, 3, 4), dt, A, show=False),
        widgets.attention_explorer(probs, n_meta=2, side=lambda i: probs[i][0, 0], show=False),
        widgets.memory_calculator(TINY.replace(sliding_window=64), show=False),
    ]
    for box in boxes:
        fig = box.draw()
        _check(fig, 1)
        assert len(box.children[-1].outputs) == 1  # the Output holds the drawn figure


def test_ablation_plot_draws_one_line_per_record():
    records = [
        {
            "architecture": a,
            "meta_tokens": m,
            "accuracy": {"16": 0.9, "32": 0.5},
            "curve": [[50, 0.1], [100, 0.7]],
        }
        for a in ("parallel", "ssm")
        for m in (8, 0)
    ]
    fig = viz.plot_ablation(records, longest_trained=16)
    assert len(fig.axes[0].get_lines()) == len(records) + 1  # + the longest-training-length marker
    _check(fig, 1)
    fig = viz.plot_learning_curves(records)
    assert len(fig.axes[0].get_lines()) == len(records)
    _check(fig, 1)


# ------------------------------------------------------------------------------------------ readability
def _records() -> list[dict]:
    return [
        {
            "architecture": a,
            "meta_tokens": m,
            "accuracy": {"16": 0.9, "32": 0.5},
            "curve": [[50, 0.1], [100, 0.7]],
        }
        for a in ("parallel", "ssm")
        for m in (8, 0)
    ]


def _seed_records() -> list[dict]:
    return [
        {
            "architecture": a,
            "meta_tokens": 8,
            "seed": seed,
            "accuracy": {"16": 0.9 - 0.1 * seed, "32": 0.5},
            "accuracy_by_pair": [0.2, 0.6 + 0.1 * seed, 1.0],
            "curve": [[50, 0.1], [100, 0.7 + 0.1 * seed]],
        }
        for a in ("parallel", "ssm")
        for seed in (0, 1)
    ]


def test_ablation_seeds_plot_shows_every_seed_and_model():
    fig = viz.plot_ablation_seeds(_seed_records(), chance=0.05)
    length_ax, pair_ax, curve_ax = fig.axes[:3]
    # per model: one errorbar per panel; per seed: a row of dots; the chance line
    assert len(length_ax.containers) == len(pair_ax.containers) == 2
    assert len(pair_ax.get_lines()) >= 2 * 2 + 1
    xs = [c.lines[0].get_xdata() for c in pair_ax.containers]
    assert all(abs(a - b) > 0.1 for a, b in zip(*xs, strict=True))  # side by side, never on top
    labels = [t.get_text() for t in curve_ax.get_legend().get_texts()]
    assert any(lab.startswith("parallel") for lab in labels) and any(lab.startswith("ssm") for lab in labels)
    assert "chance (0.050)" in labels
    assert pair_ax.get_xlabel().startswith("stored pair") and curve_ax.get_xlabel() == "training step"
    _check(fig, 3)


def _loss_records() -> list[dict]:
    return [
        {
            "architecture": a,
            "meta_tokens": 8,
            "seed": seed,
            "heldout_loss": {"128": 5.0 + 0.1 * seed, "512": 5.2},
            "curve": [[50, 7.0], [100, 6.0 - 0.1 * seed]],
        }
        for a in ("parallel", "attention")
        for seed in (0, 1)
    ]


def test_ablation_seeds_plot_draws_held_out_loss_for_text_records():
    fig = viz.plot_ablation_seeds(_loss_records())
    length_ax, curve_ax = fig.axes[:2]
    assert length_ax.get_title() == "held-out loss" and length_ax.get_ylabel() == "loss (nats/token)"
    assert curve_ax.get_title() == "held-out loss during training"
    ys = sorted(y for c in length_ax.containers for y in c.lines[0].get_ydata())
    assert ys == pytest.approx([5.05, 5.05, 5.2, 5.2])  # the seed means per model and length
    _check(fig, 2)


def _every_plot() -> dict[str, list[Callable[[], Figure]]]:
    """Every public plot_* function, called on small inputs (several calls where options change the axes)."""
    mask = materialize(hymba_mask_mod(3, 2), 10)[0]
    probs = torch.softmax(
        torch.randn(10, 10, generator=torch.Generator().manual_seed(0)).masked_fill(~mask, float("-inf")), -1
    )
    dt, A, _, _ = _ssm_inputs()
    states = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(1))
    return {
        "plot_architecture": [lambda: viz.plot_architecture(TINY)],
        "plot_param_counts": [lambda: viz.plot_param_counts({"a": 10, "b": 30})],
        "plot_mask": [lambda: viz.plot_mask(mask, n_meta=2), lambda: viz.plot_mask({"x": mask, "y": mask})],
        "plot_block_sparsity": [lambda: viz.plot_block_sparsity(mask, 4, n_meta=2)],
        "plot_attention_map": [
            lambda: viz.plot_attention_map(probs, n_meta=2),
            lambda: viz.plot_attention_map(
                {"a": probs, "b": probs}, n_meta=2, query=5, tokens=list("abcdefghij")
            ),
        ],
        "plot_attention_mass": [lambda: viz.plot_attention_mass({"meta": [0.2, 0.3], "rest": [0.8, 0.7]})],
        "plot_ssm_state": [lambda: viz.plot_ssm_state(states, dt, A, t=2, channels=2)],
        "plot_branch_norms": [lambda: viz.plot_branch_norms({"attention": [1.0, 2.0], "ssm": [0.5, 0.1]})],
        "plot_cache_memory": [lambda: viz.plot_cache_memory([1, 2, 4], {"x": [1.0, 2.0, 3.0]}, mark=2)],
        "plot_step_errors": [lambda: viz.plot_step_errors({"x": [0.0, 1e-6, 0.5], "y": [1e-3, 1e-3, 1e-3]})],
        "plot_ablation": [lambda: viz.plot_ablation(_records(), longest_trained=16)],
        "plot_learning_curves": [lambda: viz.plot_learning_curves(_records())],
        "plot_ablation_seeds": [
            lambda: viz.plot_ablation_seeds(_seed_records(), chance=1 / 30),
            lambda: viz.plot_ablation_seeds(_records()),
            lambda: viz.plot_ablation_seeds(_loss_records()),
        ],
        "plot_hybrid_layer_diagram": [viz.plot_hybrid_layer_diagram],
        "plot_sequence_diagram": [viz.plot_sequence_diagram, lambda: viz.plot_sequence_diagram(2, 5, 2, 3)],
        "plot_offset_profile": [
            lambda: viz.plot_offset_profile(
                torch.tensor([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]), torch.full((3,), 0.2)
            )
        ],
        "plot_per_key_ratio": [lambda: viz.plot_per_key_ratio({"meta": [0.5, 2.0], "first": [3.0, 1.0]})],
        "plot_head_scores": [
            lambda: viz.plot_head_scores(
                {"previous": torch.rand(3, 4), "induction": torch.rand(3, 4)}, {"previous": 0.05}
            )
        ],
        "plot_kv_sharing_diagram": [
            lambda: viz.plot_kv_sharing_diagram(TINY),
            lambda: viz.plot_kv_sharing_diagram(HymbaConfig()),
            lambda: viz.plot_kv_sharing_diagram(TINY, per_row=2),
        ],
    }


def test_every_public_plot_function_is_checked() -> None:
    public = {name for name in viz.__all__ if name.startswith("plot_")}
    assert public == set(_every_plot()), "add the new plot function to _every_plot"


def _explains(bar, image) -> bool:
    """True if colorbar ``bar`` shows ``image``'s colours: the same colormap over the same limits."""
    same_map = bar.cmap.name == image.cmap.name and bar.cmap.N == image.cmap.N
    return same_map and (bar.norm.vmin, bar.norm.vmax) == (image.norm.vmin, image.norm.vmax)


@pytest.mark.parametrize("name", sorted(_every_plot()))
def test_plot_is_readable(name: str) -> None:
    for make in _every_plot()[name]:
        fig = make()
        fig.canvas.draw()
        images = [im for ax in fig.axes for im in ax.images]
        bars = [im.colorbar for im in images if im.colorbar is not None]
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            if not ax.axison:  # a diagram: patches, arrows and text on a blank canvas
                assert name.endswith("_diagram") and ax.texts, f"{name}: an axes without axis and text"
                continue
            if ax.has_data() or ax.images:
                assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: axes {ax.get_title()!r} lacks a label"
            for im in ax.images:
                explaining = [bar for bar in bars if _explains(bar, im)]
                assert explaining, f"{name}: image in {ax.get_title()!r} has no colorbar"
                data = np.ma.masked_invalid(np.asarray(im.get_array(), dtype=float))
                if data.max() > im.norm.vmax + 1e-12 or data.min() < im.norm.vmin - 1e-12:
                    words = " ".join(bar.ax.get_ylabel() for bar in explaining) + ax.get_title()
                    assert "clip" in words, f"{name}: the colour scale is clipped but nothing says so"
            _, labels = ax.get_legend_handles_labels()
            if len(labels) >= 2:
                assert ax.get_legend() is not None, f"{name}: several labelled series and no legend"
        for text in fig.findobj(Text):
            if text.get_visible() and text.get_text().strip():
                assert text.get_fontsize() >= 7, f"{name}: text {text.get_text()!r} is too small to read"
        plt.close(fig)


def test_save_figure_writes_at_least_150_dpi(tmp_path) -> None:
    fig = viz.plot_mask(materialize(hymba_mask_mod(3, 2), 10)[0], n_meta=2)
    path = viz.save_figure(fig, "mask", tmp_path)
    with Image.open(path) as png:
        dpi_x, dpi_y = png.info["dpi"]  # from the PNG's pHYs chunk
        width, _ = png.size
    assert viz.DPI >= 150 and min(dpi_x, dpi_y) >= 149.9
    assert width >= 0.5 * fig.get_figwidth() * 150  # pixels, not only the header: (cropped to the drawing)


def test_offset_profile_draws_one_line_per_head_and_the_uniform_baseline() -> None:
    fig = viz.plot_offset_profile(torch.tensor([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]), torch.full((3,), 0.2))
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3 and "offset" in ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1].startswith("uniform")
    _check(fig, 1)


def test_per_key_ratio_draws_one_line_per_series_and_the_uniform_line() -> None:
    fig = viz.plot_per_key_ratio({"meta": [0.5, 2.0], "first": [3.0, 1.0]})
    assert len(fig.axes[0].get_lines()) == 3  # two series + uniform
    assert fig.axes[0].get_yscale() == "log"


def test_head_scores_annotates_every_cell() -> None:
    fig = viz.plot_head_scores({"previous": torch.full((2, 3), 0.25)})
    assert len(fig.axes[0].texts) == 6 and fig.axes[0].texts[0].get_text() == "0.25"


def test_attention_map_labels_both_axes_with_tokens():
    probs = torch.softmax(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)), -1).tril()
    tokens = ["m0", "<bos>", "The", " list", " method", "."]
    fig = viz.plot_attention_map(probs, n_meta=1, tokens=tokens)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == tokens
    assert fig.get_size_inches()[0] >= 6.0  # room for the labels
