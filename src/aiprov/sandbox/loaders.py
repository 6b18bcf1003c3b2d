"""Loaders by format. They run only inside worker processes (`aiprov.sandbox.worker`), never in the caller.

A loader takes a `ModelSpec` and returns an estimator-like object: `predict(X)` and, when the model has them,
`predict_proba(X)` and `classes_`. Formats map to loaders by import path ("module:function") so a worker
started with spawn can resolve them, including loaders a test registers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiprov.sandbox.spec import ModelSpec

Loader = Callable[[ModelSpec], Any]

DEFAULT_LOADERS: dict[str, str] = {
    "pickle": "aiprov.sandbox.loaders:load_sklearn",
    "joblib": "aiprov.sandbox.loaders:load_sklearn",
    "skops": "aiprov.sandbox.loaders:load_skops",
    "onnx": "aiprov.sandbox.loaders:load_onnx",
}
"""The formats the hub loads. Pickle and joblib files reach a loader only after the scanner called them safe."""


def resolve(path: str) -> Loader:
    """The loader function named `module:function`. Raises ImportError or AttributeError if there is none."""
    module, _, name = path.partition(":")
    loader: Loader = getattr(importlib.import_module(module), name)
    return loader


def _path(spec: ModelSpec) -> Path:
    return Path(spec.root) / spec.entry


def load_sklearn(spec: ModelSpec) -> Any:
    """A scikit-learn estimator from a pickle or joblib file (joblib reads both)."""
    import joblib

    return joblib.load(_path(spec))


def load_skops(spec: ModelSpec) -> Any:
    """A scikit-learn estimator from a skops file, constructing only the types in `spec.trusted`.

    Raises ValueError if the file needs a type that is not trusted (skops refuses to load it).
    """
    from skops.io import get_untrusted_types, load

    path = _path(spec)
    untrusted = set(get_untrusted_types(file=path)) - set(spec.trusted)
    if untrusted:
        raise ValueError(f"skops file needs types outside the allow-list: {', '.join(sorted(untrusted))}")
    return load(path, trusted=list(spec.trusted))


class OnnxModel:
    """An ONNX graph behind the estimator interface.

    The first output is the prediction (the label for a skl2onnx classifier); a second output, if any, holds
    class probabilities, as a tensor or as skl2onnx's list of {class: probability} maps.
    """

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0]
        self._outputs = [o.name for o in self.session.get_outputs()]
        self.classes_: list[Any] | None = None

    def _run(self, x: Any) -> list[Any]:
        import numpy as np

        dtype = np.int64 if "int64" in self._input.type else np.float32
        return list(self.session.run(self._outputs, {self._input.name: np.asarray(x, dtype=dtype)}))

    def predict(self, x: Any) -> Any:
        return self._run(x)[0]

    def has_proba(self) -> bool:
        return len(self._outputs) > 1

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        out = self._run(x)
        if len(out) < 2:
            raise AttributeError("this ONNX model has no probability output")
        proba = out[1]
        if isinstance(proba, list) and proba and isinstance(proba[0], dict):
            classes = sorted(proba[0])
            self.classes_ = classes
            return np.asarray([[row[c] for c in classes] for row in proba], dtype=np.float64)
        return np.asarray(proba, dtype=np.float64)


def load_onnx(spec: ModelSpec) -> OnnxModel:
    """An ONNX model run by onnxruntime on the CPU, one thread."""
    return OnnxModel(_path(spec))
