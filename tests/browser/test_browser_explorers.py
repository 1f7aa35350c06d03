"""The notebooks' interactive explorers work for a reader in a real JupyterLab (headless Chromium).

nbval proves the cells run; this proves the widgets render in the browser and answer input. For each explorer
notebook the test opens it in JupyterLab, runs every cell, and checks that

* no cell output shows a traceback, an exception or "Error displaying widget";
* at least one widget box with controls (sliders / dropdowns / checkboxes) is visible, and its Output shows
  the default view as a PNG (not a ``<Figure size ...>`` text repr);
* every control, moved by one step the way a reader would (focus + ArrowRight on a slider, another option in a
  dropdown), makes the kernel redraw the figure: the PNG in the explorer's Output changes, and the new
  figure replaces the old one (the number of figures on show stays the same);
* still no error output after all that interaction.

Screenshots go to ``artifacts/browser/<explorer>/`` (git-ignored): the page after run-all, and each explorer
cell in its default view and after the interaction. The default view of the first explorer is copied to
``figures/browser_<explorer>.png`` (only when testing the repo's own notebooks). A notebook that does not
exist yet skips with its expected name. Without Chromium or playwright every test skips (see conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass

import pytest
from labserver import ARTIFACTS, FIGURES, REPO, notebooks_source
from notebook_page import NotebookPage

pytestmark = pytest.mark.browser

RUN_ALL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Explorer:
    name: str  # artifact / figure file stem
    notebook_glob: str  # in notebooks/
    what: str


EXPLORERS = [
    Explorer("ssm_explorer", "02_*.ipynb", "SSM-state explorer (token slider)"),
    Explorer("mask_explorer", "03_*.ipynb", "mask explorer (window / meta count / length sliders)"),
    Explorer("attention_viewer", "04_*.ipynb", "attention viewers (recall and text models)"),
    Explorer("memory_calculator", "05_*.ipynb", "cache-memory calculator (sliders and checkboxes)"),
]


@pytest.mark.parametrize("explorer", EXPLORERS, ids=[e.name for e in EXPLORERS])
def test_explorer_responds_in_jupyterlab(explorer: Explorer, request: pytest.FixtureRequest) -> None:
    matches = sorted(notebooks_source().glob(explorer.notebook_glob))
    if not matches:
        pytest.skip(f"no notebooks/{explorer.notebook_glob} yet (the {explorer.what})")
    lab_server = request.getfixturevalue("lab_server")
    nb = NotebookPage(request.getfixturevalue("lab_page"))
    shots = ARTIFACTS / explorer.name
    shutil.rmtree(shots, ignore_errors=True)
    timings: dict[str, float] = {}
    changes: list[dict] = []
    start = time.monotonic()

    nb.open(lab_server.tree_url(matches[0].name))
    timings["open"] = time.monotonic() - start
    try:
        ran_ok = nb.run_all(RUN_ALL_TIMEOUT_S)
        timings["run_all"] = time.monotonic() - start
        nb.page.screenshot(path=str(shots / "page.png"))
        errors = nb.error_outputs()
        failed = f"{matches[0].name}: a cell failed in JupyterLab:\n" + "\n---\n".join(errors)
        assert ran_ok and not errors, failed

        boxes = nb.explorers()
        assert boxes, f"{matches[0].name}: no widget with controls rendered (ipywidgets front end missing?)"
        for k, box in enumerate(boxes):
            controls = nb.controls(box)
            for control in controls:
                control.wait_for(state="visible", timeout=10_000)
            nb.screenshot(nb.cell_of(box), shots / f"explorer{k}-default.png")
            n_figures = nb.figure_count(box)
            assert nb.figure_signature(box), f"explorer {k} shows no PNG figure ({n_figures} text reprs)"
            for control in controls:
                change = nb.change_and_compare(box, control)
                changes.append(asdict(change) | {"explorer": k, "figures_before": n_figures})
            nb.screenshot(nb.cell_of(box), shots / f"explorer{k}-after.png")
        timings["interact"] = time.monotonic() - start

        errors = nb.error_outputs()
        assert not errors, "error output after moving the controls:\n" + "\n---\n".join(errors)
        stuck = [c for c in changes if not c["figure_changed"]]
        assert not stuck, f"moving these controls did not redraw the figure: {stuck}"
        assert all(c["before"] != c["after"] for c in changes), f"a control did not move: {changes}"
        piled = [c for c in changes if c["figures_after"] != c["figures_before"]]
        assert not piled, f"redraws added figures instead of replacing them: {piled}"

        if notebooks_source() == REPO / "notebooks":  # not for a scratch folder
            FIGURES.mkdir(exist_ok=True)
            shutil.copyfile(shots / "explorer0-default.png", FIGURES / f"browser_{explorer.name}.png")
    finally:
        shots.mkdir(parents=True, exist_ok=True)
        report = {"notebook": matches[0].name, "timings_s": timings, "changes": changes}
        (shots / "report.json").write_text(json.dumps(report, indent=1))
        with contextlib.suppress(Exception):  # keep the test's own failure, not a teardown one
            nb.page.screenshot(path=str(shots / "page-final.png"))
            nb.shutdown_kernel()
