"""The README's "Using the library" example runs as written, offline, from the repository root.

Network access is cut off inside the subprocess (every socket connection fails), so an example that
needs the hub fails here as it would on a machine without a network.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NO_NETWORK = """
import socket

def _refuse(*args, **kwargs):
    raise OSError("network access in the README example")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
"""


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using the library", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def run_offline(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", NO_NETWORK + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_network_is_cut_off_in_the_check():
    result = run_offline("import socket; socket.create_connection(('pypi.org', 443))")
    assert result.returncode != 0 and "network access" in result.stderr


def test_using_the_library_example_runs_offline():
    code = readme_example()
    assert "load_pretrained" in code
    result = run_offline(code + "\nprint('shapes', tuple(out.logits.shape), tuple(new.shape))\n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shapes (1, 4, 256) (1, 24)" in result.stdout  # (B, T, V) and (B, T + 20), as the comments say
