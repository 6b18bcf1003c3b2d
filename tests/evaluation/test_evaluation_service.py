"""Evaluation on the real registry (SQLite and PostgreSQL) with real workers and the real scanner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn import metrics
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import update

from aiprov.adapters.db.schema import EvaluationRow
from aiprov.config import Container
from aiprov.core.events import Event
from aiprov.errors import IntegrityError, InvalidInput, VerificationError
from aiprov.records import ModelFilter
from aiprov.services.registry import PushRequest


def push(hub: Container, tmp_path: Path, estimator: Any, name: str) -> str:
    directory = tmp_path / name.replace("/", "_") / str(len(list(tmp_path.rglob("*.joblib"))))
    directory.mkdir(parents=True)
    joblib.dump(estimator, directory / "model.joblib")
    return hub.registry.push(directory, PushRequest(name=name)).version.ref


def split(loader: Any, stratify: bool) -> tuple[Any, Any, Any, Any]:
    x, y = loader(return_X_y=True)
    return train_test_split(x, y, test_size=0.25, random_state=0, shuffle=True, stratify=y if stratify else None)


def classification_metrics(y: Any, clf: Any, x: Any) -> dict[str, float]:
    pred = clf.predict(x)
    proba = clf.predict_proba(x)
    auc = (
        metrics.roc_auc_score(y, proba[:, 1])
        if proba.shape[1] == 2
        else metrics.roc_auc_score(y, proba, multi_class="ovr", labels=clf.classes_)
    )
    return {
        "accuracy": metrics.accuracy_score(y, pred),
        "f1_macro": metrics.f1_score(y, pred, average="macro", zero_division=0),
        "precision_macro": metrics.precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": metrics.recall_score(y, pred, average="macro", zero_division=0),
        "roc_auc": auc,
    }


@pytest.mark.parametrize("loader", [load_iris, load_breast_cancer], ids=["multiclass", "binary"])
def test_benchmark_metrics_equal_sklearn_metric_functions_on_the_same_rows(
    hub: Container, tmp_path: Path, loader: Any
) -> None:
    x_train, x_test, y_train, y_test = split(loader, stratify=True)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, y_train)
    ref = push(hub, tmp_path, clf, "alice/clf")
    name = "iris" if loader is load_iris else "breast_cancer"
    record = hub.evaluation.evaluate(ref, benchmark=name)
    assert record.metrics == classification_metrics(y_test, clf, x_test)
    assert record.split == {
        "method": "sklearn.model_selection.train_test_split",
        "test_size": 0.25,
        "random_state": 0,
        "shuffle": True,
        "stratify": True,
        "rows": len(y_train) + len(y_test),
        "test_rows": len(y_test),
    }
    assert (record.dataset, record.task, record.evaluator) == (f"sklearn:{name}", "classification", "alice")
    assert record.packages["scikit-learn"] and record.duration_s > 0


def test_regression_benchmark_metrics_equal_sklearn_metric_functions(hub: Container, tmp_path: Path) -> None:
    x_train, x_test, y_train, y_test = split(load_diabetes, stratify=False)
    reg = Ridge(alpha=0.5).fit(x_train, y_train)
    record = hub.evaluation.evaluate(push(hub, tmp_path, reg, "alice/reg"), benchmark="sklearn:diabetes")
    pred = reg.predict(x_test)
    assert record.metrics == {
        "mae": metrics.mean_absolute_error(y_test, pred),
        "rmse": metrics.root_mean_squared_error(y_test, pred),
        "r2": metrics.r2_score(y_test, pred),
    }
    assert record.split["stratify"] is False and record.task == "regression"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_user_dataset_is_registered_by_digest_and_evaluated_whole(hub: Container, tmp_path: Path, fmt: str) -> None:
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet

    data = load_wine(as_frame=False)
    columns = {name.replace("/", "_"): data.data[:, i] for i, name in enumerate(data.feature_names)}
    table = pa.table({**columns, "label": data.target})
    path = tmp_path / f"wine.{fmt}"
    (pyarrow.csv.write_csv if fmt == "csv" else pyarrow.parquet.write_table)(table, path)
    record, new = hub.datasets.add(path, "alice/wine", "label")
    assert new and record.task == "classification" and record.rows == len(data.target)
    assert record.digest == "sha256:" + __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert hub.datasets.add(path, "alice/wine", "label") == (record, False)

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(data.data[::2], data.target[::2])
    result = hub.evaluation.evaluate(push(hub, tmp_path, clf, "alice/wine-clf"), dataset="alice/wine")
    assert result.metrics == classification_metrics(data.target, clf, data.data)
    assert (result.dataset, result.dataset_digest, result.split) == (
        "alice/wine",
        record.digest,
        {"method": "whole", "rows": len(data.target), "test_rows": len(data.target)},
    )


def test_reproduce_gives_identical_metrics_and_reports_any_difference(hub: Container, tmp_path: Path) -> None:
    x_train, _, y_train, _ = split(load_iris, stratify=True)
    ref = push(hub, tmp_path, LogisticRegression(max_iter=1000).fit(x_train, y_train), "alice/iris")
    record = hub.evaluation.evaluate(ref, benchmark="iris")
    again = hub.evaluation.reproduce(record.id)
    assert again.identical and again.metrics == record.metrics and again.differences == []

    forged = {**record.metrics, "accuracy": 0.5}
    with hub.db.unit(write=True) as u:
        u.s.execute(update(EvaluationRow).where(EvaluationRow.id == record.id).values(metrics=forged))
    changed = hub.evaluation.reproduce(record.id)
    assert not changed.identical
    assert changed.differences == [{"field": "metrics.accuracy", "recorded": 0.5, "now": record.metrics["accuracy"]}]


def test_evaluation_is_an_event_in_the_log_with_a_verifying_inclusion_proof(hub: Container, tmp_path: Path) -> None:
    x_train, _, y_train, _ = split(load_iris, stratify=True)
    ref = push(hub, tmp_path, LogisticRegression(max_iter=1000).fit(x_train, y_train), "alice/iris")
    record = hub.evaluation.evaluate(ref, benchmark="iris")
    proof = hub.log.inclusion(record.leaf_index)
    proof.verify()
    data, leaf, event = hub.log.entry(record.leaf_index)
    assert proof.leaf_hash == leaf and Event.from_entry(data) == event
    assert (event.action, event.subject, event.model, event.actor) == ("evaluate", record.digest, "alice/iris", "alice")
    assert event.details["metrics"] == record.metrics
    assert event.details["dataset_digest"] == record.dataset_digest
    assert [e.action for e in hub.registry.usage("alice/iris")][:1] == ["evaluate"]


def test_signed_evaluation_is_an_in_toto_statement_the_public_key_verifies(hub: Container, tmp_path: Path) -> None:
    import hashlib

    from aiprov import signing
    from aiprov.services.evaluation import EVALUATION_PREDICATE, verify_evaluation

    private_pem, public_pem = signing.generate_key_pair()
    key = signing.private_key_from_pem(private_pem)
    x_train, _, y_train, _ = split(load_iris, stratify=True)
    ref = push(hub, tmp_path, LogisticRegression(max_iter=1000).fit(x_train, y_train), "alice/iris")
    record = hub.evaluation.evaluate(ref, benchmark="iris", key=key)
    assert record.attestation is not None and record.key_fingerprint == signing.key_fingerprint(key)
    statement = verify_evaluation(record.attestation.encode(), signing.public_key_from_pem(public_pem))
    assert statement["predicateType"] == EVALUATION_PREDICATE
    assert statement["subject"] == [
        {"name": "alice/iris@1", "digest": {"sha256": record.digest.removeprefix("sha256:")}}
    ]
    assert statement["predicate"]["metrics"] == record.metrics
    _, _, event = hub.log.entry(record.leaf_index)
    assert event.details["attestation"] == "sha256:" + hashlib.sha256(record.attestation.encode()).hexdigest()
    other = signing.public_key_from_pem(signing.generate_key_pair()[1])
    with pytest.raises(VerificationError, match="made by another key"):
        verify_evaluation(record.attestation.encode(), other)


def test_min_metric_filter_keeps_models_whose_latest_version_reaches_it(hub: Container, tmp_path: Path) -> None:
    x_train, _, y_train, _ = split(load_iris, stratify=True)
    good = push(hub, tmp_path, LogisticRegression(max_iter=1000).fit(x_train, y_train), "alice/good")
    bad = push(hub, tmp_path, DummyClassifier(strategy="most_frequent").fit(x_train, y_train), "alice/bad")
    push(hub, tmp_path, DummyClassifier().fit(x_train, y_train), "alice/never-evaluated")
    hub.evaluation.evaluate(good, benchmark="iris")
    hub.evaluation.evaluate(bad, benchmark="iris")

    def names(**minimums: float) -> list[str]:
        return [m.full_name for m in hub.registry.list(ModelFilter(min_metrics=tuple(minimums.items())))]

    assert names(accuracy=0.9) == ["alice/good"]
    assert names(accuracy=0.2) == ["alice/bad", "alice/good"]
    assert names(accuracy=0.9, roc_auc=0.99) == ["alice/good"]
    assert names(r2=0.0) == []
    push(hub, tmp_path, LogisticRegression(max_iter=5000).fit(x_train, y_train), "alice/good")  # v2, not evaluated
    assert names(accuracy=0.9) == []


def test_altered_stored_bytes_are_refused_before_any_worker_loads_them(hub: Container, tmp_path: Path) -> None:
    x_train, _, y_train, _ = split(load_iris, stratify=True)
    ref = push(hub, tmp_path, LogisticRegression(max_iter=1000).fit(x_train, y_train), "alice/iris")
    _, version = hub.registry.show(ref)
    blob = hub.blobs.path_of(version.manifest.entries[0].sha256)
    blob.chmod(0o600)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError, match=r"model\.joblib"):
        hub.evaluation.evaluate(ref, benchmark="iris")
    assert hub.evaluation.of_version(ref) == []


def test_eval_needs_exactly_one_of_benchmark_and_dataset(hub: Container) -> None:
    with pytest.raises(InvalidInput, match="one of a benchmark or a dataset"):
        hub.evaluation.evaluate("alice/x", benchmark="iris", dataset="alice/d")
    with pytest.raises(InvalidInput, match="unknown benchmark"):
        hub.evaluation.evaluate("alice/x", benchmark="mnist")


def test_predictions_that_do_not_fit_the_targets_are_an_input_error(hub: Container, tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    ref = push(hub, tmp_path, LogisticRegression(max_iter=1000).fit(x, names), "alice/strings")
    with pytest.raises(InvalidInput, match="do not fit"):
        hub.evaluation.evaluate(ref, benchmark="iris")


@pytest.mark.parametrize("compress", ["zlib", "gzip", "lzma"])
def test_compressed_joblib_models_are_evaluated_like_plain_ones(hub: Container, tmp_path: Path, compress: str) -> None:
    x_train, x_test, y_train, y_test = split(load_iris, stratify=True)
    clf = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    directory = tmp_path / f"compressed-{compress}"
    directory.mkdir()
    joblib.dump(clf, directory / "model.joblib", compress=(compress, 3))
    ref = hub.registry.push(directory, PushRequest(name=f"alice/{compress}")).version.ref
    record = hub.evaluation.evaluate(ref, benchmark="iris")
    assert record.metrics == classification_metrics(y_test, clf, x_test)
