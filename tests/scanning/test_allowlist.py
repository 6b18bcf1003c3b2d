"""The exact allow-list: re-exports are refused, the committed list matches what the installed libraries define."""

from __future__ import annotations

import importlib
import io
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import FunctionTransformer

from aiprov.scanning import allowlist, allowlist_generated, gen_allowlist, scan_stream


def _global_pickle(module: str, name: str) -> bytes:
    """Protocol 4 bytes of `module.name(("127.0.0.1", port))` as pickle would write it, with the given spelling."""

    def s(text: str) -> bytes:
        data = text.encode()
        return b"\x8c" + bytes([len(data)]) + data

    return b"\x80\x04" + s(module) + s(name) + b"\x93" + s("127.0.0.1") + b"J\x09\x00\x00\x00\x86\x85R."


@pytest.mark.parametrize("module", ["multiprocessing.connection", "sklearn.callback._transport"])
@pytest.mark.parametrize("name", ["Client", "Listener", "Connection"])
def test_network_classes_are_refused_under_either_spelling(module: str, name: str) -> None:
    report = scan_stream("m.pkl", io.BytesIO(_global_pickle(module, name)))
    assert report.verdict == "unsafe"
    assert any(f"{module}.{name}" in f.detail for f in report.findings)


def test_pickled_client_is_unsafe() -> None:
    from multiprocessing.connection import Client

    for proto in (2, 4, 5):
        report = scan_stream("m.pkl", io.BytesIO(pickle.dumps(FunctionTransformer(func=Client), protocol=proto)))
        assert report.verdict == "unsafe", proto
        assert any("multiprocessing.connection.Client" in f.detail for f in report.findings)


@pytest.mark.parametrize("func", [os.system, eval, exec, getattr, socket.create_connection])
def test_function_transformer_with_a_disallowed_func_is_unsafe(func: object) -> None:
    report = scan_stream("ft.pkl", io.BytesIO(pickle.dumps(FunctionTransformer(func=func), protocol=4)))
    assert report.verdict == "unsafe"


@pytest.mark.parametrize("func", [np.log1p, np.exp, np.sqrt])
def test_function_transformer_with_a_numpy_ufunc_is_safe(func: object) -> None:
    ft = FunctionTransformer(func=func).fit(np.ones((3, 2)))
    for proto in (2, 4, 5):
        report = scan_stream("ft.pkl", io.BytesIO(pickle.dumps(ft, protocol=proto)))
        assert report.verdict == "safe", (proto, report)


def test_a_ufunc_is_a_value_never_a_call() -> None:
    assert allowlist.classify("numpy", "log1p") is allowlist.Kind.VALUE
    data = b"\x80\x04\x8c\x05numpy\x8c\x05log1p\x93K\x01\x85R."  # numpy.log1p(1) while unpickling
    report = scan_stream("m.pkl", io.BytesIO(data))
    assert report.verdict == "unsafe" and any(f.reason == "not-callable" for f in report.findings)


def test_every_allowed_name_resolves_to_an_object_defined_there() -> None:
    """What the scanner allows really is what it names: no committed name is a re-export from elsewhere."""
    for module, name in sorted(allowlist_generated.CLASSES | allowlist_generated.PYX_UNPICKLERS):
        obj = getattr(importlib.import_module(module), name)
        owner = module.split(".")[0]
        if owner == "scipy" and not module.startswith("scipy.sparse._"):
            defining = importlib.import_module(obj.__module__)
            assert getattr(defining, obj.__qualname__) is obj and obj.__module__.startswith("scipy.sparse._")
            continue
        assert obj.__module__ == module, (module, name, obj.__module__)
        if isinstance(obj, type):
            assert obj.__qualname__ == name


def test_committed_allowlist_matches_the_installed_libraries() -> None:
    """Fails when a new scikit-learn (or numpy/scipy) release changes what is defined where: regenerate, review."""
    committed = Path(allowlist_generated.__file__).read_text()
    assert gen_allowlist.render(gen_allowlist.generate()) == committed, (
        "run `python -m aiprov.scanning.gen_allowlist` and review the diff"
    )


def test_no_re_export_under_an_allowed_module_is_allowed() -> None:
    """Walk every scikit-learn module: a name bound there to an object defined elsewhere is never allowed."""
    leaks = []
    for module in gen_allowlist.sklearn_modules():
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", module.__name__) != module.__name__ and allowlist.classify(
                module.__name__, name
            ):
                leaks.append(f"{module.__name__}.{name}")
    assert leaks == []


def test_classes_that_act_while_unpickled_are_left_out() -> None:
    _, left_out = gen_allowlist.sklearn_classes(gen_allowlist.sklearn_modules())
    assert "__setstate__" in left_out["sklearn.callback._scoring_monitor.ScoringMonitor"]
    assert "threading.Thread" in left_out["sklearn.callback._progressbar.RichProgressMonitor"]
    assert allowlist.classify("sklearn.callback._scoring_monitor", "ScoringMonitor") is None
    assert allowlist.classify("sklearn.tree._classes", "DecisionTreeClassifier") is allowlist.Kind.CLASS


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


@pytest.mark.parametrize("scoring", [None, "f1_macro", "roc_auc_ovr", "neg_log_loss", ("accuracy", "f1_macro")])
def test_a_fitted_search_with_a_named_scorer_is_safe(scoring: object) -> None:
    # cv_results_ holds masked arrays; scorer_ keeps the metric function as a value.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    refit = "accuracy" if isinstance(scoring, tuple) else True
    search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]}, cv=2, scoring=scoring, refit=refit)
    report = scan_stream("search.pkl", io.BytesIO(pickle.dumps(search.fit(*_iris()))))
    assert report.verdict == "safe", report


def _custom_metric(y_true: object, y_pred: object) -> float:
    return 0.0


def test_a_search_scored_by_an_unknown_function_is_unsafe() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [1.0]}, cv=2, scoring=make_scorer(_custom_metric))
    report = scan_stream("search.pkl", io.BytesIO(pickle.dumps(search.fit(*_iris()))))
    assert report.verdict == "unsafe"
    assert any("_custom_metric" in f.detail for f in report.findings), report


def test_masked_array_reconstructor_needs_an_allowed_class() -> None:
    good = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    assert scan_stream("m.pkl", io.BytesIO(pickle.dumps(good))).verdict == "safe"
    evil = b"\x80\x04cnumpy.ma.core\n_mareconstruct\ncos\nsystem\n\x85R."
    report = scan_stream("m.pkl", io.BytesIO(evil))
    assert report.verdict == "unsafe" and any(f.reason == "dangerous-global" for f in report.findings), report
    sneaky = b"\x80\x04cnumpy.ma.core\n_mareconstruct\ncnumpy\nlog1p\n\x85R."  # an allowed VALUE, not a class
    assert scan_stream("m.pkl", io.BytesIO(sneaky)).verdict == "unsafe"


def test_a_model_with_a_scoring_monitor_is_refused_with_the_way_out() -> None:
    # ScoringMonitor.__setstate__ opens a listener (a socket and a thread): loading it is not inert.
    import sklearn.callback
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression(max_iter=300)
    est.set_callbacks(sklearn.callback.ScoringMonitor(scoring="accuracy"))
    est.fit(*_iris())
    report = scan_stream("m.pkl", io.BytesIO(pickle.dumps(est)))
    assert report.verdict == "unsafe"
    assert any("set_callbacks()" in f.detail for f in report.findings), report
    est.set_callbacks()
    assert scan_stream("m.pkl", io.BytesIO(pickle.dumps(est))).verdict == "safe"


def test_a_uuid_is_plain_data() -> None:
    import uuid

    data = pickle.dumps({"run": uuid.UUID(int=7), "safe": uuid.SafeUUID.safe})
    assert scan_stream("m.pkl", io.BytesIO(data)).verdict == "safe"
