"""`aiprov.sklearn.push`: a fitted scikit-learn estimator pushed from a script or notebook, in the skops format.

The estimator is written with `skops.io.dump` (a zip of JSON and arrays: no pickle), which the scanner checks
type by type against its allow-list and a worker loads trusting exactly those types. What a reader needs to call
the model is recorded with the version: the scikit-learn version, the estimator's class and parameters, and the
signature of its input (feature count, feature names and dtypes when known).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiprov.errors import InvalidInput
from aiprov.extras import require

if TYPE_CHECKING:
    from aiprov.hub import Hub
    from aiprov.services.registry import PushResult

FILE_NAME = "model.skops"
"""The one file of the version."""

MAX_PARAM_CHARS = 1000
"""A parameter whose value is longer than this is recorded by its type only (a nested estimator's repr)."""


def push(
    estimator: Any,
    *,
    name: str,
    hub: Hub | None = None,
    example: Any = None,
    description: str | None = None,
    license: str | None = None,
    tags: Sequence[str] = (),
    parents: Sequence[str] = (),
    datasets: Sequence[str] = (),
    code_revision: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PushResult:
    """Push the fitted `estimator` as a new version of `name` (one file, `model.skops`) to `hub` (default `Hub()`).

    The version's params are the estimator's `get_params()` (scalar values as text); its metadata holds
    `sklearn` (version, estimator class, input signature) and `features` (the feature names, when the estimator
    was fitted on named columns, so predictions can be sent as records), merged over `metadata`. `example` (a
    few input rows: a numpy array or a pandas DataFrame) adds the input dtypes to the signature.
    Raises InvalidInput (not a fitted estimator, or what `Hub.push` refuses), MissingExtra (skops), and what
    `Hub.push` raises (UnsafeModelError should the scanner refuse the file).
    """
    require("aiprov.sklearn.push", "skops", "sklearn")
    import sklearn
    import skops.io
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(estimator, BaseEstimator):
        raise InvalidInput(f"{type(estimator).__name__} is not a scikit-learn estimator")
    try:
        check_is_fitted(estimator)
    except NotFittedError as e:
        raise InvalidInput(f"the {type(estimator).__name__} is not fitted: call fit() before pushing it") from e
    signature = input_signature(estimator, example)
    described: dict[str, Any] = {
        "sklearn": {
            "version": sklearn.__version__,
            "estimator": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
            "signature": signature,
        }
    }
    if "feature_names" in signature:
        described["features"] = signature["feature_names"]
    request_metadata = {**dict(metadata or {}), **described}
    from aiprov.hub import Hub

    with tempfile.TemporaryDirectory(prefix="aiprov-sklearn-") as tmp:
        path = Path(tmp) / FILE_NAME
        skops.io.dump(estimator, path)
        owned = hub is None
        target = Hub() if hub is None else hub
        try:
            return target.push(
                path,
                name=name,
                description=description,
                license=license,
                tags=tags,
                parents=parents,
                datasets=datasets,
                code_revision=code_revision,
                params=estimator_params(estimator),
                metadata=request_metadata,
            )
        finally:
            if owned:
                target.close()


def estimator_params(estimator: Any) -> dict[str, str]:
    """`get_params()` as text: scalars as JSON would write them, a nested estimator or other object by its type."""
    params: dict[str, str] = {}
    for key, value in sorted(estimator.get_params(deep=True).items()):
        if value is None or isinstance(value, bool):
            text = "null" if value is None else str(value).lower()
        elif isinstance(value, int | str) or (isinstance(value, float) and math.isfinite(value)):
            text = str(value)
        else:
            text = f"<{type(value).__module__}.{type(value).__qualname__}>"
        params[key] = text if len(text) <= MAX_PARAM_CHARS else f"<{type(value).__qualname__}>"
    return params


def input_signature(estimator: Any, example: Any = None) -> dict[str, Any]:
    """What the fitted estimator takes, as far as it is known.

    `n_features`; `feature_names` when it was fitted on named columns; `dtypes` (one per feature) from `example`.

    Raises InvalidInput if `example` does not have the estimator's feature count.
    """
    signature: dict[str, Any] = {}
    n = getattr(estimator, "n_features_in_", None)
    if isinstance(n, int):
        signature["n_features"] = n
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        signature["feature_names"] = [str(v) for v in names]
    if example is not None:
        dtypes = _dtypes(example)
        if "n_features" in signature and len(dtypes) != signature["n_features"]:
            raise InvalidInput(f"the example has {len(dtypes)} columns; the estimator takes {signature['n_features']}")
        signature["dtypes"] = dtypes
    return signature


def _dtypes(example: Any) -> list[str]:
    """One dtype name per column: of a table (pandas or polars `dtypes`, a pyarrow `schema`), else the array's."""
    import numpy as np

    columns = getattr(example, "dtypes", None)
    if columns is not None and not isinstance(columns, np.dtype):  # a DataFrame: one dtype per column
        return [str(d) for d in columns]
    schema = getattr(example, "schema", None)
    if schema is not None and isinstance(getattr(schema, "types", None), list):  # a pyarrow Table
        return [str(t) for t in schema.types]
    array = np.asarray(example)
    if array.ndim != 2:
        raise InvalidInput(f"the example has {array.ndim} dimensions, not 2 (rows of features)")
    return [str(array.dtype)] * array.shape[1]
