"""A scikit-learn model that misbehaves on a trigger value, loaded by a test's worker pool as format "joblib".

Workers import it by path (`LOADER`); a row starting with `HANG` makes `predict` hang, one starting with `CRASH`
makes the worker exit. Any other row is answered by the real estimator.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from aiprov.sandbox.spec import ModelSpec

LOADER = "misbehaving_sklearn:load"
HANG = -1000.0
CRASH = -2000.0


class Misbehaving:
    def __init__(self, model: Any) -> None:
        self.model = model
        self.classes_ = model.classes_

    def predict(self, x: Any) -> Any:
        if float(x[0][0]) == HANG:
            time.sleep(3600)
        if float(x[0][0]) == CRASH:
            os._exit(3)
        return self.model.predict(x)

    def predict_proba(self, x: Any) -> Any:
        return self.model.predict_proba(x)


def load(spec: ModelSpec) -> Misbehaving:
    import joblib

    return Misbehaving(joblib.load(Path(spec.root) / spec.entry))
