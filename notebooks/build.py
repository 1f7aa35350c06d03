"""Build the walkthrough notebooks from their sources in ``notebooks/src/`` and execute them.

Each source is a Markdown file: fenced ```python blocks become code cells, the text between them becomes
markdown cells (a line ``<!-- cell -->`` splits a markdown run into two cells). Run from the repo root:

    .venv/bin/python notebooks/build.py            # every notebook
    .venv/bin/python notebooks/build.py 03 05      # only those whose name starts with 03 or 05

Notebooks are executed in ``notebooks/`` with the venv's ``python3`` kernel, without timing metadata and
without widget state (the widgets need a live kernel anyway; every explorer is followed by its static
figure), so rebuilding gives the same files.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
FENCE = re.compile(r"^```python\n(.*?)^```\n", re.S | re.M)


def cells_from_source(text: str) -> list:
    cells = []

    def add_markdown(chunk: str) -> None:
        for part in chunk.split("<!-- cell -->"):
            if part.strip():
                cells.append(nbformat.v4.new_markdown_cell(part.strip()))

    pos = 0
    for match in FENCE.finditer(text):
        add_markdown(text[pos : match.start()])
        cells.append(nbformat.v4.new_code_cell(match.group(1).rstrip("\n")))
        pos = match.end()
    add_markdown(text[pos:])
    return cells


def build(source: Path) -> tuple[Path, float]:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_from_source(source.read_text())
    for i, cell in enumerate(nb.cells):
        cell.id = f"{source.stem[:2]}-{i:03d}"  # stable ids: rebuilding does not churn the diff
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
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
    target = HERE / (source.stem + ".ipynb")
    nbformat.write(nb, target)
    return target, seconds


def main(prefixes: list[str]) -> None:
    sources = sorted((HERE / "src").glob("*.md"))
    if prefixes:
        sources = [s for s in sources if any(s.name.startswith(p) for p in prefixes)]
    total = 0.0
    for source in sources:
        target, seconds = build(source)
        total += seconds
        print(f"{target.name}: executed in {seconds:.1f} s, {target.stat().st_size / 1e3:.0f} kB", flush=True)
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
