"""At 80 columns every line of the human output fits, and a realistic file path is printed whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import MakeModel
from tests.support.cli import cli

ROOT = Path(__file__).resolve().parents[1]
LONG_PATH = "weights/checkpoints/epoch-0001/model.bin"
NAME = "alice/a-rather-long-model-name-for-tables"


def run80(home: Path, *args: str) -> str:
    """`aiprov --home HOME ARGS…` in a process whose terminal is 80 columns wide (Rich reads COLUMNS)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "80", "AIPROV_ACTOR": "alice"}
    result = subprocess.run(
        [sys.executable, "-m", "aiprov", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # scan: 1 = unsupported files, as here
    return result.stdout


@pytest.fixture
def model_home(home: Path, make_model: MakeModel, tmp_path: Path) -> tuple[Path, Path]:
    assert len(LONG_PATH) == 40
    root = make_model(
        {"onnx/model.onnx_data": os.urandom(3000), LONG_PATH: os.urandom(500), "config.json": b"{}", "README.md": b"x"}
    )
    description = "An Iris classifier with a description long enough that it has to wrap in every table it is in"
    args = ["--desc", description, "--tag", "sklearn", "--dataset", "iris", "--param", "max_depth=3"]
    assert cli(home, "push", str(root), "--name", NAME, *args)[0] == 0
    assert cli(home, "alias", f"{NAME}@1", "production")[0] == 0
    csv = tmp_path / "holdout.csv"
    csv.write_text("sepal_length,sepal_width,label\n5.1,3.5,0\n6.2,2.9,1\n")
    assert (
        cli(home, "dataset", "add", str(csv), "--name", "alice/a-long-holdout-dataset-name", "--target", "label")[0]
        == 0
    )
    assert cli(home, "user", "add", "alice-with-a-long-user-name", "--scope", "read", "--scope", "write")[0] == 0
    return home, root


COMMANDS = [
    ["show", f"{NAME}@1"],
    ["ls"],
    ["usage", NAME],
    ["verify", f"{NAME}@1"],
    ["dataset", "ls"],
    ["user", "ls"],
]
"""Not `log entry`: it prints the entry's bytes exactly as logged (what its leaf hash covers), one line."""


@pytest.mark.parametrize(
    "args", COMMANDS, ids=[" ".join(a[:1]) if a[0] != "dataset" else "dataset ls" for a in COMMANDS]
)
def test_every_line_fits_80_columns(model_home: tuple[Path, Path], args: list[str]) -> None:
    home, _ = model_home
    out = run80(home, *args)
    assert out.strip()
    too_long = [line for line in out.splitlines() if len(line) > 80]
    assert not too_long, "\n".join(too_long)


def test_show_and_scan_print_a_realistic_path_whole_at_80_columns(model_home: tuple[Path, Path]) -> None:
    home, root = model_home
    for out in (run80(home, "show", NAME), run80(home, "scan", str(root))):
        lines = out.splitlines()
        assert all(len(line) <= 80 for line in lines), out
        assert any(LONG_PATH in line for line in lines), out
        assert any("onnx/model.onnx_data" in line for line in lines), out


def test_eval_and_its_show_fit_80_columns(home: Path, tmp_path: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    joblib.dump(DecisionTreeClassifier(max_depth=2).fit(*load_iris(return_X_y=True)), tmp_path / "model.joblib")
    assert cli(home, "push", str(tmp_path / "model.joblib"), "--name", NAME)[0] == 0
    key = tmp_path / "k.pem"
    assert cli(home, "keys", "new", "--out", str(key))[0] == 0
    for out in (run80(home, "eval", NAME, "--benchmark", "iris", "--key", str(key)), run80(home, "show", NAME)):
        assert "accuracy" in out
        assert all(len(line) <= 80 for line in out.splitlines()), out
