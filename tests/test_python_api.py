"""The Python API (`aiprov.Hub`, `aiprov.sklearn.push`) on a real local home, with real workers and scanner."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from tests.conftest import MakeModel

import aiprov
import aiprov.sklearn
from aiprov.adapters.files import hash_model
from aiprov.core.digest import Digest
from aiprov.core.manifest import Manifest, ManifestEntry
from aiprov.core.names import ModelName
from aiprov.errors import (
    AiprovError,
    FailedVerification,
    InvalidInput,
    ModelExecutionError,
    NotFound,
    UnsafeModelError,
    VerificationError,
)
from aiprov.hub import Hub

SRC = Path(aiprov.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    x, y = load_iris(return_X_y=True)
    return x, y


@pytest.fixture(scope="module")
def classifier(iris: tuple[Any, Any]) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(*iris)


@pytest.fixture
def local(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A Hub on a home made by `aiprov init`, acting as alice, with no other AIPROV_* setting."""
    for name in [k for k in os.environ if k.startswith("AIPROV_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AIPROV_ACTOR", "alice")
    with Hub(home=home) as hub:
        yield hub


def joblib_model(make_model: MakeModel, estimator: Any) -> Path:
    root = make_model({"model.joblib": b""})
    joblib.dump(estimator, root / "model.joblib")
    return root


def python(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], input=stdin, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def script_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AIPROV_") and k != "PYTHONPATH"}
    return {**keep, "PYTHONPATH": str(SRC), "AIPROV_HOME": str(home), "AIPROV_ACTOR": "alice"}


# the package ----------------------------------------------------------------------------------------------------


def test_import_aiprov_stays_light_and_hub_is_exported_on_first_use() -> None:
    code = (
        "import sys, aiprov; before = set(sys.modules); h = aiprov.Hub; "
        "print(sorted(before & {'aiprov.hub', 'sqlalchemy', 'numpy', 'httpx', 'pydantic'})); print(h.__module__)"
    )
    result = python({**os.environ, "PYTHONPATH": str(SRC)}, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "aiprov.hub"]
    assert aiprov.Hub is Hub
    with pytest.raises(AttributeError):
        _ = aiprov.NoSuchThing  # type: ignore[attr-defined]


# push, show, ls, usage, pull, verify ----------------------------------------------------------------------------


def test_push_registers_a_version_show_and_ls_return_its_records(
    local: Hub, make_model: MakeModel, classifier: Any
) -> None:
    root = joblib_model(make_model, classifier)
    result = local.push(root, name="alice/iris", description="Iris", tags=["demo"], params={"C": "1.0"})
    assert result.version.ref == "alice/iris@1" and not result.deduplicated
    assert result.version.manifest.digest == hash_model(root).digest
    assert result.scan.verdict == "safe" and result.new_blobs == 1
    again = local.push(root, name="alice/iris")
    assert again.deduplicated and again.version.number == 1 and again.new_blobs == 0
    shown = local.show("alice/iris@1")
    assert shown == result.version and shown.lineage.params == {"C": "1.0"}
    (model,) = local.ls(author="alice", tag="demo")
    assert (model.full_name, model.description, model.latest and model.latest.number) == ("alice/iris", "Iris", 1)
    assert local.ls(name="bob/*") == []
    assert [m.full_name for m in local.ls(format="joblib", sort="downloads")] == ["alice/iris"]
    assert local.ls(format="onnx") == []
    with pytest.raises(InvalidInput, match="cannot sort models by"):
        local.ls(sort="size")


def test_usage_lists_the_model_events_newest_first(
    local: Hub, make_model: MakeModel, classifier: Any, tmp_path: Path
) -> None:
    local.push(joblib_model(make_model, classifier), name="alice/iris")
    local.pull("alice/iris", tmp_path / "pulled")
    events = local.usage("alice/iris")
    assert [e.action for e in events] == ["download", "push"]
    assert all(e.actor == "alice" and e.subject == str(local.show("alice/iris").manifest.digest) for e in events)
    assert len(local.usage("alice/iris", limit=1)) == 1
    with pytest.raises(InvalidInput):
        local.usage("alice/iris", limit=0)


def test_pull_writes_the_version_files_verified(
    local: Hub, make_model: MakeModel, classifier: Any, tmp_path: Path
) -> None:
    root = joblib_model(make_model, classifier)
    local.push(root, name="alice/iris")
    record = local.pull("alice/iris@1", tmp_path / "out")
    assert record.ref == "alice/iris@1"
    assert (tmp_path / "out" / "model.joblib").read_bytes() == (root / "model.joblib").read_bytes()
    (tmp_path / "out" / "model.joblib").write_bytes(b"other bytes")
    with pytest.raises(InvalidInput, match="other content"):
        local.pull("alice/iris@1", tmp_path / "out")
    local.pull("alice/iris@1", tmp_path / "out", force=True)
    assert (tmp_path / "out" / "model.joblib").read_bytes() == (root / "model.joblib").read_bytes()


def test_verify_returns_the_report_and_raises_naming_the_failed_check(
    local: Hub, home: Path, make_model: MakeModel, classifier: Any
) -> None:
    result = local.push(joblib_model(make_model, classifier), name="alice/iris")
    report = local.verify("alice/iris@1")
    assert report.ok and {"bytes", "log.inclusion"} <= {c.name for c in report.checks}
    entry = result.version.manifest.entries[0]
    blob = home / "blobs" / "sha256" / entry.sha256.hex[:2] / entry.sha256.hex[2:]
    blob.chmod(0o600)
    blob.write_bytes(b"\0" * entry.size)
    with pytest.raises(FailedVerification) as caught:
        local.verify("alice/iris@1")
    assert isinstance(caught.value, VerificationError)
    assert [c.name for c in caught.value.report.failed] == ["bytes"]
    assert "bytes" in caught.value.message


def test_a_server_verification_problem_stays_a_verification_error_with_the_hub_loaded() -> None:
    from aiprov.remote.client import error_from_problem

    body = {"title": "verification failed", "code": "verification_failed", "detail": "log entry 3 differs"}
    error = error_from_problem(422, body, "http://hub/api/v1/x")
    assert type(error) is VerificationError and error.message == "log entry 3 differs"
    assert FailedVerification.code != VerificationError.code


def test_show_of_an_unknown_or_malformed_reference_is_an_aiprov_error(local: Hub) -> None:
    with pytest.raises(NotFound):
        local.show("alice/nothing")
    with pytest.raises(InvalidInput):
        local.show("not a reference")
    with pytest.raises(InvalidInput):
        local.ls(min_metrics={"speed": 1.0})


def test_a_hub_without_a_home_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPROV_DATABASE_URL", raising=False)
    with Hub(home=tmp_path / "none") as hub, pytest.raises(NotFound) as caught:
        hub.ls()
    assert "aiprov init" in caught.value.diagnostics()
    with pytest.raises(InvalidInput, match="server"):
        Hub(token="t")


# evaluate and load: models run in workers ---------------------------------------------------------------------


def test_evaluate_records_the_metrics_sklearn_computes_on_the_test_split(
    local: Hub, make_model: MakeModel, classifier: Any, iris: tuple[Any, Any]
) -> None:
    local.push(joblib_model(make_model, classifier), name="alice/iris")
    record = local.evaluate("alice/iris", benchmark="iris")
    _, x_test, _, y_test = train_test_split(*iris, test_size=0.25, random_state=0, shuffle=True, stratify=iris[1])
    assert record.metrics["accuracy"] == accuracy_score(y_test, classifier.predict(x_test))
    assert (record.model, record.version, record.dataset) == ("alice/iris", 1, "sklearn:iris")
    assert local.usage("alice/iris")[0].action == "evaluate"
    with pytest.raises(InvalidInput):
        local.evaluate("alice/iris", benchmark="iris", dataset="alice/data")


def test_load_predicts_in_a_worker_process_like_the_estimator(
    local: Hub, make_model: MakeModel, classifier: Any, iris: tuple[Any, Any]
) -> None:
    local.push(joblib_model(make_model, classifier), name="alice/iris")
    model = local.load("alice/iris")
    x = iris[0][:10]
    assert model.predict(x) == classifier.predict(x).tolist()
    assert model.predict(x.tolist()) == classifier.predict(x).tolist()
    assert np.allclose(model.predict_proba(x), classifier.predict_proba(x))
    assert model.ref == "alice/iris@1"
    assert local._local is not None
    (worker,) = local._local.models.pool.pids()  # the one worker that answered, idle again
    assert Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-I", b"-c"]  # a fresh interpreter
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{worker}/status").read_text().splitlines())
    assert int(status["PPid"]) == os.getpid()  # started by this process, not this process
    inferences = [e for e in local.usage("alice/iris") if e.action == "inference"]
    assert len(inferences) == 3  # each prediction is a usage event, as over the API
    with pytest.raises(ModelExecutionError, match="4 features"):
        model.predict([[1.0, 2.0]])  # the model's own refusal, raised in the worker, as one aiprov error


def test_predict_proba_of_a_regressor_is_invalid_input_and_close_stops_the_workers(
    home: Path, make_model: MakeModel, iris: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import Ridge

    monkeypatch.setenv("AIPROV_ACTOR", "alice")
    x, y = iris
    regressor = Ridge().fit(x, y)
    hub = Hub(home=home)
    with hub:
        hub.push(joblib_model(make_model, regressor), name="alice/ridge")
        model = hub.load("alice/ridge")
        assert np.allclose(model.predict(x[:4]), regressor.predict(x[:4]))
        with pytest.raises(InvalidInput, match="no class probabilities"):
            model.predict_proba(x[:4])
        assert hub._local is not None
        (worker,) = hub._local.models.pool.pids()
        os.kill(worker, 0)  # alive while the hub is open
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # stopped (and reaped) by close
    with pytest.raises(InvalidInput, match="closed"):
        model.predict(x[:1])


def test_load_from_a_script_never_imports_the_model_library_in_the_caller(
    home: Path, make_model: MakeModel, classifier: Any
) -> None:
    with Hub(home=home) as hub:
        hub.push(joblib_model(make_model, classifier), name="alice/iris")
    script = textwrap.dedent(
        """
        import sys, aiprov
        with aiprov.Hub() as hub:
            model = hub.load("alice/iris")
            print(model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
            workers = hub._local.models.pool.pids()
            loaded_here = sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "joblib", "skops"))
            print(loaded_here, len(workers))
        """
    )
    result = python(script_env(home), "-", stdin=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        str(classifier.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).tolist()),
        "[] 1",
    ]


def test_a_version_whose_stored_file_is_unsafe_is_never_loaded(local: Hub, tmp_path: Path) -> None:
    """A version registered before a scanner rule (made here behind the registry's back) is refused by `load`."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps(Payload(), protocol=2)
    assert local._local is not None
    container = local._local
    writer = container.blobs.writer()
    writer.write(memoryview(data))
    writer.commit(expected=Digest.of(data))
    manifest = Manifest.build([ManifestEntry("model.pkl", len(data), Digest.of(data))])
    from aiprov.records import Lineage

    with container.db.unit(write=True) as u:
        model = u.upsert_model(ModelName.parse("mallory/old"), None, None, (), container.clock())
        u.add_version(model, manifest, "mallory", Lineage(), container.clock(), True, None)
    with pytest.raises(UnsafeModelError) as caught:
        local.load("mallory/old")
    assert any(f["path"] == "model.pkl" for f in caught.value.findings)
    with pytest.raises(UnsafeModelError):
        local.evaluate("mallory/old", benchmark="iris")
    assert not marker.exists()
    assert container.models.pool.pids() == []  # no worker was even started for it


# aiprov.sklearn.push ----------------------------------------------------------------------------------------------


def test_sklearn_push_stores_skops_the_scanner_calls_safe_with_version_params_and_signature(
    local: Hub, classifier: Any, iris: tuple[Any, Any]
) -> None:
    result = aiprov.sklearn.push(classifier, name="alice/skops", hub=local, example=iris[0][:5], tags=["nb"])
    (entry,) = result.version.manifest.entries
    assert entry.path == "model.skops"
    (scanned,) = result.scan.files
    assert (scanned.format, scanned.verdict) == ("skops", "safe")
    meta = result.version.lineage.metadata["sklearn"]
    assert meta["version"] == sklearn.__version__
    assert meta["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert meta["signature"] == {"n_features": 4, "dtypes": ["float64"] * 4}
    params = result.version.lineage.params
    assert (params["C"], params["max_iter"], params["class_weight"], params["fit_intercept"]) == (
        "1.0",
        "1000",
        "null",
        "true",
    )
    model = local.load("alice/skops")
    assert model.predict(iris[0][:20]) == classifier.predict(iris[0][:20]).tolist()


def test_sklearn_push_records_feature_names_and_column_dtypes_of_a_table(local: Hub, iris: tuple[Any, Any]) -> None:
    import pyarrow as pa

    names = ["sl", "sw", "pl", "pw"]
    table = pa.table({n: iris[0][:, i].astype("float32" if n == "pw" else "float64") for i, n in enumerate(names)})
    clf = LogisticRegression(max_iter=1000).fit(table, iris[1])
    result = aiprov.sklearn.push(clf, name="alice/named", hub=local, example=table)
    assert result.version.lineage.metadata["features"] == names
    signature = result.version.lineage.metadata["sklearn"]["signature"]
    assert signature == {"n_features": 4, "feature_names": names, "dtypes": ["double", "double", "double", "float"]}


def test_sklearn_push_without_a_hub_uses_the_home_of_the_environment(
    home: Path, classifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIPROV_HOME", str(home))
    monkeypatch.setenv("AIPROV_ACTOR", "carol")
    result = aiprov.sklearn.push(classifier, name="carol/iris")
    assert (result.version.ref, result.version.author) == ("carol/iris@1", "carol")
    with Hub(home=home) as hub:
        assert hub.show("carol/iris").manifest.digest == result.version.manifest.digest


def test_sklearn_push_refuses_what_is_not_a_fitted_estimator(local: Hub, iris: tuple[Any, Any]) -> None:
    with pytest.raises(InvalidInput, match="not fitted"):
        aiprov.sklearn.push(LogisticRegression(), name="alice/unfitted", hub=local)
    with pytest.raises(InvalidInput, match="not a scikit-learn estimator"):
        aiprov.sklearn.push(object(), name="alice/object", hub=local)
    fitted = LogisticRegression(max_iter=1000).fit(*iris)
    with pytest.raises(InvalidInput, match="3 columns"):
        aiprov.sklearn.push(fitted, name="alice/wrong", hub=local, example=iris[0][:2, :3])
    assert local.ls() == []


# scripts: `python -`, errors without a traceback ---------------------------------------------------------------


@pytest.mark.parametrize("how", [("-",), ("-i", "-q")], ids=["python-stdin", "repl"])
def test_evaluate_and_load_from_a_script_on_stdin_or_a_repl_work(
    home: Path, make_model: MakeModel, classifier: Any, iris: tuple[Any, Any], how: tuple[str, ...]
) -> None:
    """`python - <<EOF` was reported to kill the worker (re-importing `<stdin>`): workers are fresh interpreters."""
    with Hub(home=home) as hub:
        hub.push(joblib_model(make_model, classifier), name="alice/iris")
    script = "\n".join(  # no indented block: a REPL needs a blank line after one
        [
            "from aiprov import Hub",
            "hub = Hub()",
            'print(repr(hub.evaluate("alice/iris", benchmark="iris").metrics["accuracy"]))',
            'print(hub.load("alice/iris").predict([[5.1, 3.5, 1.4, 0.2]]))',
            "hub.close()",
            "",
        ]
    )
    result = python(script_env(home), *how, stdin=script)
    assert result.returncode == 0, result.stderr
    _, x_test, _, y_test = train_test_split(*iris, test_size=0.25, random_state=0, shuffle=True, stratify=iris[1])
    accuracy = accuracy_score(y_test, classifier.predict(x_test))
    assert result.stdout.splitlines() == [
        repr(float(accuracy)),
        str(classifier.predict([[5.1, 3.5, 1.4, 0.2]]).tolist()),
    ]
    assert "Traceback" not in result.stderr
    with Hub(home=home) as hub:
        assert [e.action for e in hub.usage("alice/iris")] == ["inference", "evaluate", "push"]


def test_an_aiprov_error_in_a_script_is_one_diagnostic(home: Path) -> None:
    script = textwrap.dedent(
        """
        from aiprov import Hub
        from aiprov.errors import AiprovError
        try:
            Hub().show("alice/missing")
        except AiprovError as e:
            print(type(e).__name__, e.exit_code, e.diagnostics())
        """
    )
    result = python(script_env(home), "-", stdin=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("NotFound 3 ") and "alice/missing" in result.stdout
    assert issubclass(FailedVerification, AiprovError)
