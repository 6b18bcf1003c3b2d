"""Real model formats in real workers: scikit-learn (joblib, skops), ONNX, and ONNX graphs that misbehave."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aiprov.sandbox import Limits, ModelExecutionError, ModelResourceError, ModelSpec, ModelTimeout, WorkerPool


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    root = tmp_path_factory.getbasetemp()  # every test's tmp_path is under it
    with WorkerPool(1, Limits(memory_bytes=1024 * 2**20, cpu_seconds=5, timeout_s=5.0), model_root=root) as p:
        yield p


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any, Any]:
    x, y = load_iris(return_X_y=True)
    return x, y, make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def onnx_file(path: Path, nodes: list[Any], inits: list[Any], output: str = "Y") -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_joblib_skops_and_onnx_models_predict_like_the_estimator(
    pool: WorkerPool, iris: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    import skops.io
    from skl2onnx import to_onnx

    x, _, clf = iris
    joblib.dump(clf, tmp_path / "m.joblib", compress=3)
    skops.io.dump(clf, tmp_path / "m.skops")
    (tmp_path / "m.onnx").write_bytes(to_onnx(clf, x[:1].astype(np.float32)).SerializeToString())
    expected = clf.predict(x).tolist()
    for fmt, entry in (("joblib", "m.joblib"), ("skops", "m.skops"), ("onnx", "m.onnx")):
        spec = ModelSpec(fmt, str(tmp_path), entry, fmt)
        # The first load of a format imports its library in the worker (seconds on a loaded 2-core CI machine):
        # given its own time, so the 5 s limit applies to the prediction, as it does in serving.
        pool.load(spec, timeout=60)
        got = pool.predict(spec, x, proba=True)
        assert got.predictions == expected, fmt
        assert got.probabilities is not None
        np.testing.assert_allclose(got.probabilities, clf.predict_proba(x), atol=1e-5)
        assert got.classes == [0, 1, 2]


def test_a_scikit_learn_model_still_refuses_nan_and_infinity(
    pool: WorkerPool, iris: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    """The worker switches scikit-learn's finiteness check off only for input it has checked finite itself."""
    x, _, clf = iris
    joblib.dump(clf, tmp_path / "m.joblib")
    spec = ModelSpec("finite", str(tmp_path), "m.joblib", "joblib")
    pool.load(spec, timeout=60)
    assert pool.predict(spec, x[:3]).predictions == clf.predict(x[:3]).tolist()
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ModelExecutionError, match=r"ValueError: Input X contains (NaN|infinity)"):
            pool.predict(spec, [[bad, 1.0, 1.0, 1.0]])
    assert pool.predict(spec, x[:3]).predictions == clf.predict(x[:3]).tolist()


def test_skops_type_outside_trusted_list_is_refused_in_the_worker(
    pool: WorkerPool, iris: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    import skops.io
    from sklearn.tree import DecisionTreeClassifier

    x, y, _ = iris
    skops.io.dump(DecisionTreeClassifier().fit(x, y), tmp_path / "t.skops")  # needs sklearn.tree._tree.Tree
    with pytest.raises(ModelExecutionError, match=r"outside the allow-list: sklearn\.tree\._tree\.Tree"):
        pool.predict(ModelSpec("t", str(tmp_path), "t.skops", "skops"), x)
    trusted = ModelSpec("t2", str(tmp_path), "t.skops", "skops", trusted=("sklearn.tree._tree.Tree",))
    assert len(pool.predict(trusted, x).predictions) == len(x)


def test_onnx_graph_that_loops_forever_is_stopped_and_the_next_model_runs(
    pool: WorkerPool, iris: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Add", ["v", "one"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
        ],
        initializer=[helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    path = onnx_file(
        tmp_path / "loop.onnx",
        [helper.make_node("Loop", ["", "cond", "X"], ["Y"], body=body)],  # no trip count, condition stays true
        [helper.make_tensor("cond", TensorProto.BOOL, [], [True])],
    )
    x, _, clf = iris
    with pytest.raises((ModelTimeout, ModelResourceError)):
        pool.predict(ModelSpec("loop", str(tmp_path), path.name, "onnx"), x[:2])
    joblib.dump(clf, tmp_path / "ok.joblib")
    assert pool.predict(ModelSpec("ok", str(tmp_path), "ok.joblib", "joblib"), x).predictions == clf.predict(x).tolist()


def test_onnx_graph_that_allocates_past_the_limit_fails_clearly(
    pool: WorkerPool, iris: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    from onnx import TensorProto, helper

    path = onnx_file(
        tmp_path / "huge.onnx",
        [helper.make_node("ConstantOfShape", ["shape"], ["Y"])],  # 4 x 2^30 floats: 16 GiB
        [helper.make_tensor("shape", TensorProto.INT64, [2], [4, 2**30])],
    )
    x, _, clf = iris
    with pytest.raises(ModelExecutionError, match=r"(?i)alloc|memory"):
        pool.predict(ModelSpec("huge", str(tmp_path), path.name, "onnx"), x[:2])
    joblib.dump(clf, tmp_path / "ok.joblib")
    assert pool.predict(ModelSpec("ok", str(tmp_path), "ok.joblib", "joblib"), x).predictions == clf.predict(x).tolist()
