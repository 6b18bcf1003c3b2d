"""docs/python.md's examples run as written, in order, in a fresh home."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import aiprov

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(aiprov.__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.+?)\n```", (ROOT / "docs" / "python.md").read_text(), re.S)


def test_the_python_examples_run_in_order_in_a_fresh_home(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) == 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPROV_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(SRC), AIPROV_HOME=str(tmp_path / "home"), AIPROV_ACTOR="alice")
    init = subprocess.run([sys.executable, "-m", "aiprov", "init"], env=env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    script = "\n".join(blocks)
    result = subprocess.run(
        [sys.executable, "-"], input=script, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("alice/iris@1 sha256:") and lines[0].endswith(" safe")
    assert lines[1] == "{'n_features': 4, 'dtypes': ['float64', 'float64', 'float64', 'float64']}"
    assert lines[3].startswith("[0, 0, 0] [[")
    assert "'bytes'" in lines[4] and lines[5] == "['model.skops']" and lines[6] == "['alice/iris']"
    assert lines[7] == "['download', 'inference', 'inference', 'evaluate', 'push']"
    assert lines[8].startswith("3 ") and "alice/no-such-model" in lines[8]
