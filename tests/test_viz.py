"""Every minihymba.viz plot returns a Figure on small inputs; save_figure writes stable PNGs; widgets draw."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from minihymba import HymbaConfig
from minihymba.masks import hymba_mask_mod, materialize

viz = pytest.importorskip("minihymba.viz")

TINY = HymbaConfig(
    vocab_size=64, hidden_size=32, num_layers=4, num_heads=2, num_kv_heads=1, intermediate_size=64,
    ssm_state_size=4, dt_rank=4, num_meta_tokens=2, sliding_window=4, global_layers=(0, 3),
    kv_share_groups=((1, 2),), max_position_embeddings=64, orig_max_position_embeddings=16,
)  # fmt: skip


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
        {"architecture": a, "meta_tokens": m, "accuracy": {"16": 0.9, "32": 0.5},
         "curve": [[50, 0.1], [100, 0.7]]}
        for a in ("parallel", "ssm") for m in (8, 0)
    ]  # fmt: skip
    fig = viz.plot_ablation(records, longest_trained=16)
    assert len(fig.axes[0].get_lines()) == len(records) + 1  # + the longest-training-length marker
    _check(fig, 1)
    fig = viz.plot_learning_curves(records)
    assert len(fig.axes[0].get_lines()) == len(records)
    _check(fig, 1)
