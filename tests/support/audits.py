"""Iris models of known quality and the CLI run as different accounts, for the claim and audit tests.

`run(home, actor, …)` is `tests.support.cli.cli` acting as `actor`; `remote_as(served, home, token, …)` is
`aiprov --server URL --token T …` from the client home `home` (each auditor has its own).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
from tests.support.cli import Ran, Served, cli
from tests.support.cli import run as run_cli


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


def run(home: Path, actor: str, *args: str) -> Ran:
    """`aiprov --home HOME ARGS…` as `actor`."""
    return cli(home, *args, env={"AIPROV_ACTOR": actor})


def run_json(home: Path, actor: str, *args: str, code: int = 0) -> Any:
    """`run … --json` that exits with `code` (0 unless said: a refuted audit is 6); its document."""
    ran = run(home, actor, *args, "--json")
    assert ran.code == code, ran.err
    return json.loads(ran.out)


def log_size(home: Path) -> int:
    size: int = run_json(home, "alice", "log", "checkpoint")["size"]
    return size


def remote_as(served: Served, home: Path, token: str | None, *args: str) -> Ran:
    """`aiprov --server URL [--token T] ARGS…` from the client home `home`."""
    auth = ["--token", token] if token else []
    return run_cli("--server", served.base_url, *auth, *args, env={"AIPROV_HOME": str(home)})


def remote_as_json(served: Served, home: Path, token: str | None, *args: str, code: int = 0) -> Any:
    ran = remote_as(served, home, token, *args, "--json")
    assert ran.code == code, ran.err
    return json.loads(ran.out)
