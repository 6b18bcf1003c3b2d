"""The quickstart's demo model: the seed's Iris decision tree, trained reproducibly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aiprov.extras import missing

DEMO_NAME = "demo/iris-classifier"
DEMO_DESCRIPTION = "Decision tree on the Iris data set (scikit-learn), the aiprov quickstart model"
DEMO_PARAMS = {"criterion": "gini", "max_depth": "3", "random_state": "42"}


@dataclass(frozen=True, slots=True)
class DemoModel:
    directory: Path
    train_accuracy: float
    sklearn_version: str


def train_demo_model(out_dir: Path) -> DemoModel:
    """Train the Iris DecisionTree on the benchmark's training part; write `model.joblib` and `config.json`.

    Trained on the train part of the `iris` benchmark split only, so `aiprov eval --benchmark iris` measures it on
    rows it never saw. Deterministic: the same library versions give the same bytes, so pushing twice deduplicates.
    Raises MissingExtra if scikit-learn is not installed.
    """
    try:
        import joblib
        import sklearn
        from sklearn.datasets import load_iris
        from sklearn.tree import DecisionTreeClassifier
    except ImportError as e:
        raise missing("the quickstart", e, "sklearn") from e

    from aiprov.services.datasets import split_benchmark

    data = load_iris()
    train, _ = split_benchmark("iris")
    clf = DecisionTreeClassifier(criterion="gini", max_depth=3, random_state=42).fit(train.x, train.y)
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(clf, out_dir / "model.joblib")
    config = {
        "framework": "scikit-learn",
        "framework_version": sklearn.__version__,
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "features": list(data.feature_names),
        "classes": [str(c) for c in data.target_names],
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return DemoModel(out_dir, float(clf.score(train.x, train.y)), sklearn.__version__)
