"""Drive one notebook in a real JupyterLab tab: open it, run every cell, find and move its widgets.

The notebook's interactive explorers are ipywidgets boxes (sliders / dropdowns / checkboxes next to an
``Output`` that shows a matplotlib figure as a PNG). In the page an explorer is one top-level cell output
holding controls; its "figure signature" is the list of ``<img>`` sources inside it (the PNG data URLs).
Moving a control must change that signature, and a redraw must replace the figure, not add one
(``figure_count`` counts PNGs plus ``<Figure size ...>`` text reprs, which is what a reader sees when no PNG
formatter is active).

Talks to JupyterLab through ``window.jupyterapp`` (the server runs with ``--LabApp.expose_app_in_browser``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the browser extra is optional: only for annotations
    from playwright.sync_api import Locator, Page

# A top-level output of a code cell (widget Outputs nest further output areas inside it).
CELL_OUTPUT = ".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output"
CONTROLS = ".widget-slider, .widget-dropdown, .widget-checkbox"
FIGURE_REPR = re.compile(r"<Figure size \d+x\d+ with \d+ Axes>")
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|\b\w*Error\b:|Error displaying widget")

_NOTEBOOK_READY_JS = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const ctx = panel && panel.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return !!(panel && panel.content && panel.context && panel.context.isReady && ctx.isReady
            && kernel && kernel.status === 'idle');
}"""
_IDLE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const running = Array.from(panel.node.querySelectorAll('.jp-InputPrompt'))
    .some(p => p.textContent.includes('[*]'));
  return !!kernel && kernel.status === 'idle' && !running;
}"""
_RUN_ALL_JS = """async (timeoutMs) => {
  const app = window.jupyterapp;
  await app.commands.execute('notebook:clear-all-cell-outputs');
  const timer = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('run-all-cells timed out')), timeoutMs));
  return await Promise.race([app.commands.execute('notebook:run-all-cells'), timer]);
}"""
_SHUTDOWN_JS = "async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }"


@dataclass
class ControlChange:
    """What moving one control did: label, value before/after, figure changed?, figures shown after."""

    label: str
    before: str
    after: str
    figure_changed: bool
    figures_after: int


class NotebookPage:
    """One notebook open in a JupyterLab tab (``page`` is a Playwright ``Page``)."""

    def __init__(self, page: Page, timeout_s: float = 90.0):
        self.page = page
        self.timeout_ms = int(timeout_s * 1000)
        self.panel = page.locator(".jp-NotebookPanel")  # narrowed to this notebook's panel by open()

    def open(self, url: str) -> None:
        """Load the notebook and wait until its kernel is started and idle."""
        self.page.goto(url)
        self.page.wait_for_function(_NOTEBOOK_READY_JS, timeout=self.timeout_ms, polling=200)
        panel_id = self.page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
        self.panel = self.page.locator(f"[id='{panel_id}']")

    def run_all(self, timeout_s: float = 120.0) -> bool:
        """Clear the outputs, run every cell, wait for the kernel to go idle; True when no cell failed."""
        ok = self.page.evaluate(_RUN_ALL_JS, int(timeout_s * 1000))
        self.wait_idle(timeout_s)
        return bool(ok)

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        self.page.wait_for_function(_IDLE_JS, timeout=int(timeout_s * 1000), polling=100)

    def error_outputs(self) -> list[str]:
        """Texts of the cell outputs that show a traceback, an exception or a widget that failed to render."""
        texts = self.panel.locator(".jp-OutputArea-output").all_inner_texts()
        return [t[:2000] for t in texts if ERROR_TEXT.search(t)]

    def explorers(self) -> list[Locator]:
        """Locators of the top-level cell outputs that hold widget controls."""
        return self.panel.locator(CELL_OUTPUT).filter(has=self.page.locator(CONTROLS)).all()

    @staticmethod
    def controls(explorer: Locator) -> list[Locator]:
        return explorer.locator(CONTROLS).all()

    @staticmethod
    def label(control: Locator) -> str:
        labels = [
            t.replace("\u200b", "").strip() for t in control.locator(".widget-label, label").all_inner_texts()
        ]
        return next((t for t in labels if t), "?")  # checkboxes keep an empty (zero-width space) label first

    @staticmethod
    def value(control: Locator) -> str:
        """The control's displayed value (slider readout, selected option, checkbox state)."""
        classes = control.get_attribute("class") or ""
        if "widget-slider" in classes:
            return control.locator(".widget-readout").first.inner_text().strip()
        if "widget-dropdown" in classes:
            return control.locator("select").first.input_value()
        return str(control.locator("input").first.is_checked())

    @staticmethod
    def figure_signature(explorer: Locator) -> list[str]:
        """The explorer's image sources (PNG data URLs), in page order."""
        return explorer.locator("img").evaluate_all("imgs => imgs.map(i => i.src)")

    @staticmethod
    def figure_count(explorer: Locator) -> int:
        """Figures on show in the explorer: ``<img>`` elements plus matplotlib text reprs."""
        reprs = len(FIGURE_REPR.findall(explorer.inner_text()))
        return explorer.locator("img").count() + reprs

    def move(self, control: Locator) -> None:
        """Change a control by one user step, as a reader would (keys on a slider, a click, a new option)."""
        classes = control.get_attribute("class") or ""
        if "widget-slider" in classes:
            before = self.value(control)
            handle = control.locator(".noUi-handle").first
            handle.focus()
            handle.press("ArrowRight")
            if not self._wait_value_change(control, before, 3.0):  # at its maximum: step down instead
                handle.press("ArrowLeft")
                self._wait_value_change(control, before, 3.0)
        elif "widget-dropdown" in classes:
            select = control.locator("select").first
            n_options = select.locator("option").count()
            current = select.evaluate("s => s.selectedIndex")
            select.select_option(index=(current + 1) % n_options)
        else:
            control.locator("input").first.click()

    def _wait_value_change(self, control: Locator, before: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.value(control) != before:
                return True
            self.page.wait_for_timeout(50)
        return False

    def change_and_compare(
        self, explorer: Locator, control: Locator, timeout_s: float = 30.0
    ) -> ControlChange:
        """Move ``control`` and wait (bounded) for the kernel to redraw the explorer's figure."""
        label, value_before = self.label(control), self.value(control)
        figure_before = self.figure_signature(explorer)
        self.move(control)
        deadline = time.monotonic() + timeout_s
        changed = False
        while time.monotonic() < deadline:
            figure_now = self.figure_signature(explorer)
            if figure_now and figure_now != figure_before:
                changed = True
                break
            self.page.wait_for_timeout(100)
        self.wait_idle(timeout_s)
        changed = changed and self.figure_signature(explorer) != figure_before
        return ControlChange(label, value_before, self.value(control), changed, self.figure_count(explorer))

    def screenshot(self, locator: Locator, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=str(path))
        return path

    def cell_of(self, explorer: Locator) -> Locator:
        """The whole notebook cell (code and outputs) around an explorer output."""
        return explorer.locator(
            "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' jp-Cell ')][1]"
        )

    def shutdown_kernel(self) -> None:
        self.page.evaluate(_SHUTDOWN_JS)
