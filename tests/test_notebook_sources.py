"""Every committed notebook is built from its Markdown source: same cells, same order, same text.

``python notebooks/build.py`` rebuilds (and executes) them; ``python notebooks/build.py --check`` is this
test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _build_module():
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOURCES = sorted((NOTEBOOKS / "src").glob("*.md"))


def test_every_source_has_a_notebook_and_back():
    assert {s.stem for s in SOURCES} == {n.stem for n in NOTEBOOKS.glob("*.ipynb")}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_its_source(source):
    problems = _build_module().differences(source)
    fix = f"rebuild with `python notebooks/build.py {source.stem[:2]}`"
    assert not problems, fix + ": " + "; ".join(problems)


def test_check_mode_notices_an_edit(tmp_path, monkeypatch):
    """The check can fail: a source whose text differs from the notebook is reported."""
    build = _build_module()
    source = SOURCES[0]
    edited = tmp_path / "src" / source.name
    edited.parent.mkdir()
    edited.write_text(source.read_text().replace("```python\n", "```python\nx = 1  # an edit\n", 1))
    monkeypatch.setattr(build, "HERE", NOTEBOOKS)
    assert build.differences(edited)


CONCEPT_NOTEBOOKS = ("00", "01", "02", "03", "04", "05", "06", "09")


@pytest.mark.parametrize("prefix", CONCEPT_NOTEBOOKS)
def test_concept_notebook_has_exercises_with_checks_and_solutions(prefix: str) -> None:
    """Two or more exercises per concept notebook, each with a check call and a Solution heading."""
    (source,) = [s for s in SOURCES if s.name.startswith(prefix)]
    text = source.read_text(encoding="utf-8")
    exercises = [line for line in text.splitlines() if line.startswith("### Exercise")]
    solutions = [line for line in text.splitlines() if line.startswith("### Solution")]
    assert len(exercises) >= 2, f"{source.name}: {len(exercises)} exercises"
    assert len(solutions) >= len(exercises), f"{source.name}: an exercise without a Solution"
    assert text.count("minihymba.exercises import") >= 1 and "check_" in text


def test_jupyterlab_opens_a_rebuilt_notebook_newer_than_its_source(tmp_path):
    """build.py writes a notebook after executing it, so the notebook is the newer file of the pair.
    JupyterLab's jupytext refuses such a pair by default ("... is more recent than src/...md", HTTP 400: the
    notebook never opens); notebooks/jupytext.toml takes the inputs from the source instead. Checked with
    jupytext's own contents manager on a copy whose source is 100 s older than its notebook."""
    import os
    import shutil
    import time

    pytest.importorskip("jupyter_server")
    from jupyter_server.services.contents.largefilemanager import LargeFileManager
    from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class

    shutil.copy(NOTEBOOKS / "jupytext.toml", tmp_path)
    (tmp_path / "src").mkdir()
    source = shutil.copy(NOTEBOOKS / "src/06_generation.md", tmp_path / "src")
    shutil.copy(NOTEBOOKS / "06_generation.ipynb", tmp_path)
    old = time.time() - 100
    os.utime(source, (old, old))
    manager = build_sync_jupytext_contents_manager_class(LargeFileManager)(root_dir=str(tmp_path))
    model = manager.get("06_generation.ipynb")
    assert model["type"] == "notebook" and len(model["content"]["cells"]) == len(
        _build_module().read_source(Path(source)).cells
    )
