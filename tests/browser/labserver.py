"""A throwaway JupyterLab server for the browser tests, and where their inputs and outputs live.

``start_lab(base)`` mirrors the repository into ``base`` (``notebooks/`` and ``figures/`` copied, the rest
symlinked, so autosave and figure writes never touch the checkout), writes quiet JupyterLab user settings and
starts ``python -m jupyterlab`` on a free 127.0.0.1 port with a random token. ``stop_lab`` ends that process
(and any kernel it left) by its own id with bounded waits.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
FIGURES = REPO / "figures"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 10.0
# Not mirrored into the server's root: environments, caches and version control.
MIRROR_SKIP = {".git", ".venv", ".ci-venv", "artifacts", ".pytest_cache", ".ruff_cache", "build", "dist"}
# JupyterLab user settings: no news toast, no update check, and every cell kept in the DOM (no windowing),
# so the tests can see all outputs without scrolling.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def find_chromium() -> str | None:
    """The Chromium executable to drive, or None."""
    candidates = [os.environ.get("MINIHYMBA_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def notebooks_source() -> Path:
    """The folder whose notebooks are tested (the repo's ``notebooks/`` unless overridden)."""
    return Path(os.environ.get("MINIHYMBA_BROWSER_NOTEBOOKS", REPO / "notebooks")).resolve()


@dataclass
class LabServer:
    """A running JupyterLab: ``url`` (no trailing slash), ``token``, the served ``notebooks`` folder."""

    url: str
    token: str
    notebooks: Path
    process: subprocess.Popen
    log: Path

    def tree_url(self, notebook: str) -> str:
        """Open ``notebook`` alone: ``reset`` drops the saved workspace (tabs a previous test left open)."""
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mirror_repo(dest: Path) -> Path:
    """Symlink the repo's top level into ``dest`` but copy notebooks/ and figures/; return the copy."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in REPO.iterdir():
        if entry.name in MIRROR_SKIP or entry.name in ("notebooks", "figures"):
            continue
        (dest / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    if FIGURES.is_dir():
        shutil.copytree(FIGURES, dest / "figures", ignore=ignore)
    else:
        (dest / "figures").mkdir()
    source = notebooks_source()
    if source.is_dir():
        shutil.copytree(source, dest / "notebooks", ignore=ignore)
    else:
        (dest / "notebooks").mkdir()
    return dest / "notebooks"


def _write_lab_settings(settings_dir: Path) -> None:
    for rel, values in LAB_SETTINGS.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _wait_until_up(url: str, token: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    tail = log.read_text()[-3000:]
    raise RuntimeError(f"JupyterLab did not answer in {SERVER_START_TIMEOUT_S:.0f} s:\n{tail}")


def stop_lab(process: subprocess.Popen) -> None:
    """Stop the server we started and anything it spawned (kernels run in their own sessions)."""
    try:
        import psutil

        children = psutil.Process(process.pid).children(recursive=True)
    except Exception:  # psutil missing or the server already gone
        children = []
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the server was started as its own group leader
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    for child in children:  # kernels normally exit with the server; make sure
        try:
            child.wait(timeout=2)
        except Exception:
            try:
                child.kill()
            except Exception:
                pass


def start_lab(base: Path) -> LabServer:
    """Start JupyterLab on a mirror of the repo under ``base``; raise with the log tail if it fails."""
    notebooks = _mirror_repo(base / "repo")
    _write_lab_settings(base / "settings")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "jupyterlab.log"
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_DATA_DIR=str(base / "data"),  # no user-level kernelspecs: the kernel is this interpreter
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={notebooks}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with log.open("w") as log_file:
        process = subprocess.Popen(
            cmd, cwd=notebooks, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, token, process, log)
    except BaseException:
        stop_lab(process)
        raise
    return LabServer(url=url, token=token, notebooks=notebooks, process=process, log=log)
