"""Build the walkthrough notebooks from their Markdown sources in ``notebooks/src/``, or check them.

The sources are jupytext Markdown documents (fenced ```python blocks are code cells, the text between them
markdown cells), paired with the notebooks by ``notebooks/jupytext.toml`` -- so with jupytext installed
(the ``dev`` extra) JupyterLab opens a source as a notebook, and ``jupytext --sync`` works. This script adds
what jupytext does not do: it executes each notebook in ``notebooks/`` with the venv's ``python3`` kernel and
writes it with stable cell ids, no timing metadata and no widget state (the widgets need a live kernel
anyway; every explorer is followed by its static figure), so rebuilding gives the same files. Run from the
repo root:

    python notebooks/build.py            # build and execute every notebook
    python notebooks/build.py 03 05      # only those whose name starts with 03 or 05
    python notebooks/build.py --check    # exit 1 if a notebook's cells differ from its source
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"


def read_source(source: Path) -> nbformat.NotebookNode:
    """The notebook a source describes (cells only, not executed), with stable cell ids."""
    nb = jupytext.read(source, fmt="md")
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(nb.cells):
        cell.id = f"{source.stem[:2]}-{i:03d}"  # stable ids: rebuilding does not churn the diff
        cell.metadata = {}
    return nb


def notebook_path(source: Path) -> Path:
    return HERE / (source.stem + ".ipynb")


def differences(source: Path) -> list[str]:
    """How the committed notebook's cells differ from its source (empty: in sync)."""
    target = notebook_path(source)
    if not target.is_file():
        return [f"{target.name} is missing"]
    want = read_source(source).cells
    have = nbformat.read(target, as_version=4).cells
    problems = []
    if len(want) != len(have):
        problems.append(f"{target.name}: {len(have)} cells, its source has {len(want)}")
    for i, (w, h) in enumerate(zip(want, have, strict=False)):  # a length mismatch is reported above
        if (w.cell_type, w.source.strip()) != (h.cell_type, h.source.strip()):
            problems.append(f"{target.name}: cell {i} ({h.cell_type}) differs from its source")
    return problems


def build(source: Path) -> tuple[Path, float]:
    nb = read_source(source)
    start = time.perf_counter()
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE)}},
        record_timing=False,
        store_widget_state=False,
    )
    client.execute()
    seconds = time.perf_counter() - start
    nb.metadata.pop("widgets", None)
    target = notebook_path(source)
    nbformat.write(nb, target)
    os.utime(source)  # the source stays the newer file of the pair (what jupytext in JupyterLab expects)
    return target, seconds


def main(args: list[str]) -> int:
    check = "--check" in args
    prefixes = [a for a in args if a != "--check"]
    sources = sorted(SOURCES.glob("*.md"))
    if prefixes:
        sources = [s for s in sources if any(s.name.startswith(p) for p in prefixes)]
    if check:
        problems = [p for s in sources for p in differences(s)]
        print("\n".join(problems) or f"{len(sources)} notebooks match their sources")
        return 1 if problems else 0
    total = 0.0
    for source in sources:
        target, seconds = build(source)
        total += seconds
        print(f"{target.name}: executed in {seconds:.1f} s, {target.stat().st_size / 1e3:.0f} kB", flush=True)
    print(f"total {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
