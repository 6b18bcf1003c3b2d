"""Iris models of known quality and the CLI run as different accounts, for the claim and audit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
from typer.testing import CliRunner

from aiprov.cli.main import app

runner = CliRunner()


def iris_model(path: Path, *, good: bool) -> Path:
    """A classifier trained on the iris benchmark's train part: good (~0.97 accuracy) or poor (one shallow split)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from aiprov.services.datasets import split_benchmark

    train, _ = split_benchmark("iris")
    estimator = LogisticRegression(max_iter=1000) if good else DecisionTreeClassifier(max_depth=1, random_state=0)
    path.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator.fit(train.x, train.y), path / "model.joblib")
    return path


def run(home: Path, actor: str, *args: str) -> tuple[int, str, str]:
    """`aiprov --home HOME ARGS…` as `actor`; (exit code, stdout, stderr)."""
    result = runner.invoke(app, ["--home", str(home), *args], env={"AIPROV_ACTOR": actor})
    return result.exit_code, result.stdout, result.stderr


def run_json(home: Path, actor: str, *args: str, code: int = 0) -> Any:
    got, out, err = run(home, actor, *args, "--json")
    assert got == code, err
    return json.loads(out)


def log_size(home: Path) -> int:
    size: int = run_json(home, "alice", "log", "checkpoint")["size"]
    return size
