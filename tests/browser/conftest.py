"""Fixtures for the browser tests: a throwaway JupyterLab server and a headless Chromium driven by Playwright.

* ``lab_server``: JupyterLab on a temporary mirror of the repo (see :mod:`labserver`), one per test module
  (so it is gone before the rest of the suite runs), stopped by its own process id, also when a test fails.
* ``lab_browser``: one headless Chromium (a fresh profile directory) per module; ``lab_page`` gives each test
  a new tab.

Everything skips with a reason when Chromium or the ``playwright`` package is missing: install them with
``apt-get install chromium`` and ``pip install -e ".[browser]"`` (``.ci/run`` does both). The Chromium
binary is found at ``$MINIHYMBA_CHROMIUM``, ``/usr/bin/chromium`` or on ``PATH``.
``$MINIHYMBA_BROWSER_NOTEBOOKS`` points the tests at another notebook folder (used to develop the harness).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from labserver import CHROMIUM_ARGS, LabServer, find_chromium, start_lab, stop_lab


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of the Chromium binary (skips when there is none)."""
    path = find_chromium()
    if path is None:
        pytest.skip("Chromium not found (apt-get install chromium, or set MINIHYMBA_CHROMIUM)")
    return path


@pytest.fixture(scope="session")
def playwright_api():
    """The ``playwright.sync_api`` module (skips when the ``browser`` extra is not installed)."""
    reason = 'playwright missing: pip install -e ".[browser]"'
    return pytest.importorskip("playwright.sync_api", reason=reason)


@pytest.fixture(scope="module")
def lab_server(
    tmp_path_factory: pytest.TempPathFactory, chromium_executable: str, playwright_api
) -> Iterator[LabServer]:
    """JupyterLab serving a temporary mirror of the repo (see :mod:`labserver`); stopped after the module."""
    pytest.importorskip("jupyterlab", reason='jupyterlab missing: pip install -e ".[dev]"')
    server = start_lab(tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        stop_lab(server.process)


@pytest.fixture(scope="module")
def lab_browser(playwright_api, chromium_executable: str, tmp_path_factory: pytest.TempPathFactory):
    """A headless Chromium browser context with a fresh profile directory."""
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium_executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def lab_page(lab_browser):
    """A new browser tab, closed after the test."""
    page = lab_browser.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        page.close()
