"""Without lm-evaluation-harness, the adapter says which extra to install (in Python and on the command
line), whether or not lm_eval is installed here: its absence is simulated by an import hook that answers
``import lm_eval`` the way Python does for a module that is not there. Runs without the eval extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Make lm_eval (and everything under it) unimportable, exactly as a missing package is.
HIDE_LM_EVAL = """
import sys

class HideLmEval:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "lm_eval":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideLmEval())
for name in [m for m in sys.modules if m.partition(".")[0] == "lm_eval"]:
    del sys.modules[name]
"""


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HIDE_LM_EVAL + code, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_simulation_hides_lm_eval():
    result = run_python("import lm_eval")
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'lm_eval'" in result.stderr


def test_import_without_lm_eval_names_the_eval_extra():
    code = """
try:
    import minihymba.lm_eval_adapter
except ModuleNotFoundError as err:
    print("name:", err.name)
    print("message:", err)
    print("chained:", err.__cause__ is not None or not err.__suppress_context__)
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "name: lm_eval" in result.stdout
    assert 'pip install -e ".[eval]"' in result.stdout
    assert "chained: False" in result.stdout  # one exception, not the raw one underneath


def test_command_line_without_lm_eval_prints_one_line():
    code = "import runpy; runpy.run_module('minihymba.lm_eval_adapter', run_name='__main__', alter_sys=True)"
    result = run_python(code, "--model", "minihymba", "--tasks", "arc_easy")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and 'pip install -e ".[eval]"' in line
