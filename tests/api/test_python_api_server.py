"""`aiprov.Hub(server=URL, token=T)` against a real `aiprov serve`: the same methods and records as on a home."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from apitools import ADMIN, Server
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import aiprov.sklearn
from aiprov.config import Container, Settings
from aiprov.core.digest import Digest
from aiprov.core.manifest import Manifest, ManifestEntry
from aiprov.core.names import ModelName
from aiprov.errors import Forbidden, InvalidInput, ModelExecutionError, NotFound, UnsafeModelError
from aiprov.hub import Hub
from aiprov.records import Lineage


def test_a_server_hub_pushes_shows_lists_pulls_verifies_evaluates_and_reports_usage(
    server: Server, make_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIPROV_LOG_VERIFIER_KEY", raising=False)
    alice = server.add_user("alice")
    x, y = load_iris(return_X_y=True)
    root = make_model({"model.joblib": b""})
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), root / "model.joblib")
    with Hub(tmp_path / "client", server=server.base_url, token=alice) as hub:
        pushed = hub.push(root, name="alice/iris", description="over HTTP")
        assert (pushed.version.ref, pushed.version.author, pushed.scan.verdict) == ("alice/iris@1", "alice", "safe")
        assert hub.show("alice/iris") == pushed.version
        assert [m.full_name for m in hub.ls(author="alice")] == ["alice/iris"]
        pulled = hub.pull("alice/iris@1", tmp_path / "out")
        assert (tmp_path / "out" / "model.joblib").read_bytes() == (root / "model.joblib").read_bytes()
        assert pulled.manifest.digest == pushed.version.manifest.digest
        report = hub.verify("alice/iris@1")
        assert report.ok and "log.key" in {c.name for c in report.checks}  # the server's key pinned on first use
        evaluation = hub.evaluate("alice/iris", benchmark="iris")  # run by the server's sandboxed workers
        assert evaluation.metrics["accuracy"] > 0.9 and (evaluation.model, evaluation.version) == ("alice/iris", 1)
        actions = [e.action for e in hub.usage("alice/iris")]
        assert actions[0] == "evaluate" and "push" in actions and "download" in actions
        with pytest.raises(Forbidden):
            hub.push(root, name="bob/iris")  # another owner's namespace
        with pytest.raises(NotFound):
            hub.show("alice/nothing")
    with Hub(tmp_path / "client", server=server.base_url, token=alice) as hub:
        result = aiprov.sklearn.push(LogisticRegression(max_iter=1000).fit(x, y), name="alice/skops", hub=hub)
        assert result.scan.files[0].format == "skops" and result.scan.verdict == "safe"
        assert hub.show("alice/skops").lineage.metadata["sklearn"]["signature"] == {"n_features": 4}


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = dict(line.split(":\t", 1) for line in (entry / "status").read_text().splitlines())
            except OSError:
                continue
            if int(status["PPid"]) == pid:
                found.append(int(entry.name))
    return found


def _is_worker(pid: int) -> bool:
    """A sandboxed model worker: a fresh isolated interpreter (`python -I -c ...`)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-I", b"-c"]
    except OSError:
        return False


def test_a_server_hub_loads_a_model_in_a_worker_of_the_server_and_each_predict_is_a_usage_event(
    server: Server, make_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIPROV_LOG_VERIFIER_KEY", raising=False)
    alice = server.add_user("alice")
    reader = server.add_user("reader", scopes=["read"])
    x, y = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=1000).fit(x, y)
    root = make_model({"model.joblib": b""})
    joblib.dump(classifier, root / "model.joblib")
    assert [p for p in _children(server.process.pid) if _is_worker(p)] == []
    with Hub(tmp_path / "client", server=server.base_url, token=alice) as hub:
        hub.push(root, name="alice/iris")
        model = hub.load("alice/iris")
        assert model.ref == "alice/iris@1" and model.version == hub.show("alice/iris@1")
        workers = [p for p in _children(server.process.pid) if _is_worker(p)]
        assert len(workers) == 1  # load started the server's worker before any prediction
        assert workers[0] not in (os.getpid(), server.process.pid)
        assert [p for p in _children(os.getpid()) if _is_worker(p)] == []  # nothing of the model runs here
        assert model.predict(x[:10]) == classifier.predict(x[:10]).tolist()  # a numpy array, sent as rows
        assert np.allclose(model.predict_proba(x[:5].tolist()), classifier.predict_proba(x[:5]))
        assert [p for p in _children(server.process.pid) if _is_worker(p)] == workers  # the same worker answered
        inferences = [e for e in hub.usage("alice/iris") if e.action == "inference"]
        assert [e.actor for e in inferences] == ["alice", "alice"]  # the token's user, one event per call
        with pytest.raises(ModelExecutionError, match="4 features"):
            model.predict([[1.0, 2.0]])  # the model's refusal in the server's worker, as the same aiprov error
        hub.push(
            make_model({"model.joblib": (root / "model.joblib").read_bytes(), "README.md": b"2"}), name="alice/iris"
        )
        assert model.predict(x[:1]) == classifier.predict(x[:1]).tolist()
        assert next(e.details["version"] for e in hub.usage("alice/iris") if e.action == "inference") == 1  # pinned
        digest = str(hub.show("alice/iris@2").manifest.digest)
        assert hub.load(digest).ref == "alice/iris@2"  # a digest names its version
        with pytest.raises(NotFound):
            hub.load("alice/nothing")
    with pytest.raises(InvalidInput, match="closed"):
        model.predict(x[:1])  # after close: one aiprov error, as on a home
    with Hub(tmp_path / "client", server=server.base_url, token=reader) as hub, pytest.raises(Forbidden):
        hub.load("alice/iris")  # loading runs the server's workers: the write scope, as predicting


def test_a_server_hub_never_loads_a_version_whose_stored_file_is_unsafe(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version registered before a scanner rule (made here in the server's home, behind its registry's back)."""
    monkeypatch.delenv("AIPROV_LOG_VERIFIER_KEY", raising=False)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps(Payload(), protocol=2)
    container = Container(Settings(home=server.home, actor=ADMIN, workers=1))
    try:
        writer = container.blobs.writer()
        writer.write(memoryview(data))
        writer.commit(expected=Digest.of(data))
        manifest = Manifest.build([ManifestEntry("model.pkl", len(data), Digest.of(data))])
        with container.db.unit(write=True) as u:
            model = u.upsert_model(ModelName.parse("mallory/old"), None, None, (), container.clock())
            u.add_version(model, manifest, "mallory", Lineage(), container.clock(), True, None)
    finally:
        container.close()
    alice = server.add_user("alice")
    with Hub(tmp_path / "client", server=server.base_url, token=alice) as hub:
        with pytest.raises(UnsafeModelError) as caught:
            hub.load("mallory/old")
        assert "unsafe" in caught.value.diagnostics().lower()
        assert any(f["path"] == "model.pkl" for f in caught.value.findings)  # the scanner's reasons, as on a home
        with pytest.raises(UnsafeModelError):
            hub.evaluate("mallory/old", benchmark="iris")
    assert not marker.exists()
    assert [p for p in _children(server.process.pid) if _is_worker(p)] == []  # no worker was started for it
