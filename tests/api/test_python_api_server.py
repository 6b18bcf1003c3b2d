"""`aiprov.Hub(server=URL, token=T)` against a real `aiprov serve`: the same methods and records as on a home."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import pytest
from apitools import Server
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import aiprov.sklearn
from aiprov.errors import Forbidden, InvalidInput, NotFound
from aiprov.hub import Hub


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
        with pytest.raises(InvalidInput, match="local home"):
            hub.load("alice/iris")
        with pytest.raises(Forbidden):
            hub.push(root, name="bob/iris")  # another owner's namespace
        with pytest.raises(NotFound):
            hub.show("alice/nothing")
    with Hub(tmp_path / "client", server=server.base_url, token=alice) as hub:
        result = aiprov.sklearn.push(LogisticRegression(max_iter=1000).fit(x, y), name="alice/skops", hub=hub)
        assert result.scan.files[0].format == "skops" and result.scan.verdict == "safe"
        assert hub.show("alice/skops").lineage.metadata["sklearn"]["signature"] == {"n_features": 4}
