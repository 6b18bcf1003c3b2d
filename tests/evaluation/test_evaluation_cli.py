"""`aiprov eval`, `eval --reproduce`, `dataset add`, `ls --min` and `show` as scripts see them."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sqlalchemy import create_engine, text
from tests.support.cli import cli, cli_json


@pytest.fixture
def regression(home: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A pushed linear model and a CSV of the diabetes rows it is evaluated on."""
    x, y = load_diabetes(return_X_y=True)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    joblib.dump(LinearRegression().fit(x, y), model_dir / "model.joblib")
    assert cli(home, "push", str(model_dir), "--name", "alice/diabetes")[0] == 0
    csv = tmp_path / "diabetes.csv"
    lines = [",".join([*(f"f{i}" for i in range(x.shape[1])), "y"])]
    lines += [",".join(repr(float(v)) for v in (*row, target)) for row, target in zip(x, y, strict=True)]
    csv.write_text("\n".join(lines) + "\n")
    return model_dir, csv


def test_eval_json_reproduce_show_and_ls_min(home: Path, regression: tuple[Path, Path]) -> None:
    _, csv = regression
    added = cli_json(home, "dataset", "add", str(csv), "--name", "alice/diabetes-all", "--target", "y")
    assert isinstance(added, dict)
    assert (added["name"], added["format"], added["task"], added["rows"], added["new"]) == (
        "alice/diabetes-all",
        "csv",
        "regression",
        442,
        True,
    )
    out = cli_json(home, "eval", "alice/diabetes", "--dataset", "alice/diabetes-all")
    assert isinstance(out, dict)
    assert {"id", "model", "version", "digest", "dataset", "split", "metrics", "packages", "duration_s"} <= out.keys()
    assert (out["model"], out["version"], out["dataset"], out["dataset_digest"]) == (
        "alice/diabetes",
        1,
        "alice/diabetes-all",
        added["digest"],
    )
    assert set(out["metrics"]) == {"mae", "rmse", "r2"}

    again = cli_json(home, "eval", "--reproduce", str(out["id"]))
    assert isinstance(again, dict) and again["identical"] is True and again["metrics"] == out["metrics"]
    code, text_out, _ = cli(home, "eval", "--reproduce", str(out["id"]))
    assert code == 0 and "identical metrics" in text_out

    shown = cli_json(home, "show", "alice/diabetes")
    assert isinstance(shown, dict)
    assert [(e["id"], e["metrics"], e["signed"]) for e in shown["evaluations"]] == [(out["id"], out["metrics"], False)]

    r2 = out["metrics"]["r2"]
    assert [m["name"] for m in cli_json(home, "ls", "--min", f"r2={r2}")] == ["alice/diabetes"]  # type: ignore[union-attr]
    assert cli_json(home, "ls", "--min", f"r2={r2 + 0.01}") == []
    code, _, err = cli(home, "ls", "--min", "speed=3")
    assert code == 2 and "METRIC=VALUE" in err


def test_reproduce_that_differs_prints_the_difference_and_exits_6(home: Path, regression: tuple[Path, Path]) -> None:
    out = cli_json(home, "eval", "alice/diabetes", "--benchmark", "diabetes")
    assert isinstance(out, dict)
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE evaluations SET metrics = :m"), {"m": json.dumps({**out["metrics"], "r2": 0.123})})
    engine.dispose()
    code, _, err = cli(home, "eval", "--reproduce", str(out["id"]))
    assert code == 6 and "did not reproduce" in err and "metrics.r2: recorded 0.123" in err
    code, stdout, _ = cli(home, "eval", "--reproduce", str(out["id"]), "--json")
    assert code == 6 and json.loads(stdout)["differences"][0]["field"] == "metrics.r2"


def test_eval_errors_are_one_line_diagnostics(home: Path, regression: tuple[Path, Path]) -> None:
    code, _, err = cli(home, "eval", "alice/diabetes")
    assert code == 2 and "one of a benchmark or a dataset" in err
    code, _, err = cli(home, "eval", "alice/diabetes", "--dataset", "alice/none")
    assert code == 3 and "no dataset named alice/none" in err
    code, _, err = cli(home, "eval", "--reproduce", "99")
    assert code == 3 and "no evaluation 99" in err
    code, _, err = cli(home, "dataset", "add", str(regression[1]), "--name", "alice/d", "--target", "nope")
    assert code == 2 and "no column 'nope'" in err


def test_signed_eval_with_key_records_the_fingerprint(
    home: Path, regression: tuple[Path, Path], tmp_path: Path
) -> None:
    key = tmp_path / "k.pem"
    assert cli(home, "keys", "new", "--out", str(key))[0] == 0
    out = cli_json(home, "eval", "alice/diabetes", "--benchmark", "diabetes", "--key", str(key))
    assert isinstance(out, dict) and out["signed"] is True and len(out["key_fingerprint"]) == 64
    assert out["attestation"]["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
