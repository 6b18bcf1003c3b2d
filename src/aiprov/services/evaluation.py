"""Evaluating model versions on benchmarks and user datasets, in sandboxed workers, with every result logged.

The model runs in a worker (`aiprov.sandbox`); the metrics are computed here, in the caller, from the plain
predictions with scikit-learn's metric functions. An evaluation is recorded with the event that announces it in
the transparency log, in one transaction; with a key, it is also an in-toto statement (predicate
`EVALUATION_PREDICATE`) in a DSSE envelope, inside a Sigstore bundle like a model signature.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import math
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from importlib import metadata
from typing import Any

from aiprov.core import attestation
from aiprov.core.canonical import canonical_json
from aiprov.core.names import ModelName, Ref
from aiprov.errors import InvalidInput
from aiprov.ports import RegistryStore
from aiprov.records import EvaluationRecord, Reproduction, iso
from aiprov.sandbox.models import SandboxedModels
from aiprov.sandbox.spec import Prediction
from aiprov.services.datasets import DatasetService, TestSet, benchmark
from aiprov.signing import PrivateKey, PublicKey, key_fingerprint, open_bundle, sign_payload

EVALUATION_PREDICATE = "https://aiprov.dev/evaluation/v1"

CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "r2")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS

PACKAGES = ("aiprov", "scikit-learn", "numpy", "scipy", "joblib", "skops", "onnxruntime", "pyarrow")
"""Recorded with each evaluation (those installed): what a re-run needs to reproduce the metrics exactly."""


def parse_min(pairs: Iterable[str]) -> tuple[tuple[str, float], ...]:
    """Parse `METRIC=VALUE` filters. Raises InvalidInput for an unknown metric or a value that is not a number."""
    out = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().lower()
        if not sep or name not in METRICS:
            raise InvalidInput(f"filter {pair!r} is not METRIC=VALUE", hint=f"metrics: {', '.join(METRICS)}")
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"{value!r} in {pair!r} is not a number") from None
        if not math.isfinite(number):
            raise InvalidInput(f"{value!r} in {pair!r} is not a finite number")
        out.append((name, number))
    return tuple(out)


def installed_packages() -> dict[str, str]:
    """Versions of Python and the PACKAGES that are installed (workers run the same interpreter)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def compute_metrics(task: str, y_true: Any, prediction: Prediction) -> dict[str, float]:
    """The metrics of `task` for predictions against `y_true`, by scikit-learn's functions; non-finite ones left out.

    roc_auc is computed when the model gave class probabilities (one-vs-rest for more than two classes) and can
    be (every class of the data among the model's classes, more than one class present).
    Raises InvalidInput if the predictions do not fit the targets (count or label type).
    """
    import numpy as np
    from sklearn import metrics as m

    y_pred = np.asarray(prediction.predictions)
    if len(y_pred) != len(y_true):
        raise InvalidInput(f"the model returned {len(y_pred)} predictions for {len(y_true)} rows")
    try:
        if task == "regression":
            values = {
                "mae": m.mean_absolute_error(y_true, y_pred),
                "rmse": m.root_mean_squared_error(y_true, y_pred),
                "r2": m.r2_score(y_true, y_pred),
            }
        else:
            values = {
                "accuracy": m.accuracy_score(y_true, y_pred),
                "f1_macro": m.f1_score(y_true, y_pred, average="macro", zero_division=0),
                "precision_macro": m.precision_score(y_true, y_pred, average="macro", zero_division=0),
                "recall_macro": m.recall_score(y_true, y_pred, average="macro", zero_division=0),
            }
            auc = _roc_auc(y_true, prediction)
            if auc is not None:
                values["roc_auc"] = auc
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"the model's predictions do not fit the dataset's targets: {e}") from e
    return {k: float(v) for k, v in values.items() if math.isfinite(float(v))}


def _roc_auc(y_true: Any, prediction: Prediction) -> float | None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if prediction.probabilities is None:
        return None
    proba = np.asarray(prediction.probabilities, dtype=np.float64)
    present = np.unique(y_true)
    classes = prediction.classes
    if classes is None:  # no class labels (an ONNX tensor output): columns are the sorted labels, if they fit
        if proba.ndim != 2 or proba.shape[1] != len(present):
            return None
        classes = present.tolist()
    if len(present) < 2 or proba.ndim != 2 or proba.shape[1] != len(classes) or not set(present) <= set(classes):
        return None
    try:
        if len(classes) == 2:
            return float(roc_auc_score(np.asarray(y_true) == classes[1], proba[:, 1]))
        return float(roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    except ValueError:
        return None


def evaluation_statement(record: Mapping[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1 of an evaluation: the model version as subject, the result as predicate."""
    return attestation.version_statement(
        record["model"],
        record["version"],
        record["digest"],
        EVALUATION_PREDICATE,
        {
            "dataset": {"name": record["dataset"], "digest": record["dataset_digest"]},
            "task": record["task"],
            "split": record["split"],
            "metrics": record["metrics"],
            "packages": record["packages"],
            "evaluator": record["evaluator"],
            "evaluatedAt": record["created_at"],
        },
    )


def sign_statement(statement: Mapping[str, Any], key: PrivateKey) -> bytes:
    """A Sigstore bundle v0.3 whose DSSE envelope carries `statement` (canonical JSON) signed with `key`."""
    return sign_payload(canonical_json(dict(statement)), key)


def verify_evaluation(bundle: bytes, public_key: PublicKey) -> dict[str, Any]:
    """Check `bundle` is `public_key`'s signature over an evaluation statement; return the statement.

    Raises InvalidInput for a malformed bundle or a statement of another predicate type, VerificationError for
    a bad signature.
    """
    statement = json.loads(open_bundle(bundle, public_key).envelope.payload)
    if not isinstance(statement, dict) or statement.get("predicateType") != EVALUATION_PREDICATE:
        raise InvalidInput(f"the bundle does not hold an evaluation statement ({EVALUATION_PREDICATE})")
    return statement


class EvaluationService:
    def __init__(
        self,
        db: RegistryStore,
        datasets: DatasetService,
        models: Callable[[], SandboxedModels],
        *,
        clock: Callable[[], datetime],
        actor: str,
    ) -> None:
        self.db = db
        self.datasets = datasets
        self._models = models
        self.clock = clock
        self.actor = actor

    def evaluate(
        self,
        ref: str,
        *,
        benchmark: str | None = None,
        dataset: str | None = None,
        key: PrivateKey | None = None,
        actor: str | None = None,
    ) -> EvaluationRecord:
        """Evaluate version `ref` on a benchmark or a registered dataset (exactly one), record and log the result.

        `actor` is the evaluator (by default the hub's own actor). With `key`, the result is also signed as an
        in-toto statement. Raises InvalidInput (bad choice of data,
        predictions that do not fit), NotFound, IntegrityError (stored bytes altered), UnsafeModelError (the
        scanner refuses the model), ModelExecutionError and its subclasses (the model raised, hung, ran out of
        memory or crashed its worker), BackendError.
        """
        actor = self.actor if actor is None else actor
        data = self.test_set(benchmark, dataset)
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            record = u.version_record(model, version)
        metrics, duration = self._run(record, data)
        now = self.clock()
        result: dict[str, Any] = {
            "model": record.full_name,
            "version": record.number,
            "digest": str(record.manifest.digest),
            "dataset": data.name,
            "dataset_digest": data.digest,
            "task": data.task,
            "split": data.split,
            "metrics": metrics,
            "packages": installed_packages(),
            "evaluator": actor,
            "created_at": iso(now),
        }
        bundle = fingerprint = None
        if key is not None:
            bundle = sign_statement(evaluation_statement(result), key).decode()
            fingerprint = key_fingerprint(key)
        with self.db.unit(write=True) as u:
            model, version = u.resolve(Ref.parse(f"{record.full_name}@{record.number}"))
            details = {
                k: result[k] for k in ("version", "dataset", "dataset_digest", "task", "split", "metrics", "packages")
            }
            details["duration_s"] = duration
            if bundle is not None:
                details["attestation"] = "sha256:" + hashlib.sha256(bundle.encode()).hexdigest()
                details["key_fingerprint"] = fingerprint
            index = u.add_event(
                actor=actor,
                action="evaluate",
                subject=result["digest"],
                model=record.full_name,
                details=details,
                now=now,
            )
            made = EvaluationRecord(
                id=0,
                model=record.full_name,
                version=record.number,
                digest=result["digest"],
                dataset=data.name,
                dataset_digest=data.digest,
                task=data.task,
                split=data.split,
                metrics=metrics,
                packages=result["packages"],
                duration_s=duration,
                evaluator=actor,
                created_at=now,
                leaf_index=index,
                key_fingerprint=fingerprint,
                attestation=bundle,
            )
            return u.add_evaluation(version, made)

    def test_set(self, benchmark_name: str | None, dataset: str | None) -> TestSet:
        """The data an evaluation on a benchmark or a registered dataset (exactly one) runs on. Raises InvalidInput."""
        if (benchmark_name is None) == (dataset is None):
            raise InvalidInput("evaluate on one of a benchmark or a dataset", hint="--benchmark NAME or --dataset O/N")
        if benchmark_name is not None:
            return benchmark(benchmark_name)
        assert dataset is not None
        return self.datasets.test_set(dataset)

    def _run(self, record: Any, data: TestSet) -> tuple[dict[str, float], float]:
        start = time.perf_counter()
        prediction = self._models().predict(record, data.x, proba=data.task == "classification")
        duration = round(time.perf_counter() - start, 3)
        return compute_metrics(data.task, data.y, prediction), duration

    def get(self, evaluation_id: int) -> EvaluationRecord:
        """The evaluation with id `evaluation_id`. Raises NotFound."""
        with self.db.unit() as u:
            return u.evaluation(evaluation_id)

    def of_version(self, ref: str) -> builtins.list[EvaluationRecord]:
        """Every evaluation of version `ref`, oldest first. Raises NotFound, InvalidInput."""
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            return u.evaluations_of(model, version)

    def of_model(self, name: str) -> builtins.list[EvaluationRecord]:
        """Every evaluation of every version of model `name`, by version. Raises NotFound, InvalidInput."""
        with self.db.unit() as u:
            return u.evaluations_of_model(u.require_model(ModelName.parse(name)))

    def reproduce(self, evaluation_id: int) -> Reproduction:
        """Re-run evaluation `evaluation_id` on the same bytes, data and split, and compare; nothing is recorded.

        Metrics must be identical (bit for bit) to count as reproduced. Raises as `evaluate`.
        """
        original = self.get(evaluation_id)
        if original.dataset.startswith("sklearn:"):
            data = benchmark(original.dataset)
        else:
            data = self.datasets.test_set(original.dataset)
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(f"{original.model}@{original.version}"))
            record = u.version_record(model, version)
        metrics, _ = self._run(record, data)
        differences: list[dict[str, Any]] = []
        if data.digest != original.dataset_digest:
            differences.append({"field": "dataset_digest", "recorded": original.dataset_digest, "now": data.digest})
        if data.split != original.split:
            differences.append({"field": "split", "recorded": original.split, "now": data.split})
        for name in sorted(set(original.metrics) | set(metrics)):
            before, after = original.metrics.get(name), metrics.get(name)
            if before != after:
                differences.append({"field": f"metrics.{name}", "recorded": before, "now": after})
        return Reproduction(original, metrics, data.digest, installed_packages(), differences)
