"""Liveness, readiness and Prometheus metrics: probes need no token, readiness names what is not ready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apitools import Hub, assert_problem, bearer, push
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from aiprov.api import create_app
from aiprov.config import Container, Settings


@pytest.fixture(scope="module")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    root = tmp_path_factory.mktemp("iris")
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(*load_iris(return_X_y=True)), root / "model.joblib")
    return root


def samples(text: str) -> dict[str, float]:
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_liveness_and_readiness_answer_without_a_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "log_key": "ok", "blobs": "ok"}}


def test_readiness_is_a_503_naming_the_missing_log_key_and_no_server_path(hub: Hub, tmp_path: Path) -> None:
    settings = hub.container.settings
    key = settings.resolved_log_key_file
    moved = tmp_path / "elsewhere.key"
    key.rename(moved)
    fresh = Container(Settings(home=settings.home, actor="alice"))
    try:
        client = TestClient(create_app(fresh), raise_server_exceptions=False)
        assert client.get("/healthz").status_code == 200  # alive, but not ready
        problem = assert_problem(client.get("/readyz"), 503)
        assert problem["detail"] == "not ready: log_key"
        assert str(settings.home) not in json.dumps(problem)
    finally:
        fresh.close()
        moved.rename(key)


def test_readiness_of_a_home_that_does_not_exist_is_a_503_naming_the_database(tmp_path: Path) -> None:
    missing = Container(Settings(home=tmp_path / "nowhere", actor="alice"))
    client = TestClient(create_app(missing), raise_server_exceptions=False)
    problem = assert_problem(client.get("/readyz"), 503)
    assert problem["detail"] == "not ready: database"
    missing.close()


def test_metrics_count_usage_batches_the_log_and_the_workers(hub: Hub, iris_dir: Path) -> None:
    push(hub.container, iris_dir, "alice/iris")
    app = create_app(hub.container)
    with TestClient(app, raise_server_exceptions=False, headers=bearer(hub.tokens["alice"])) as client:
        before = samples(client.get("/metrics").text)
        assert "aiprov_usage_batches_total" not in before  # no recorder yet: nothing is started by a scrape
        assert before["aiprov_log_size"] == hub.container.log.size()
        assert before["process_resident_memory_bytes"] > 0
        for _ in range(3):
            r = client.post("/api/v1/models/alice/iris/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]})
            assert r.status_code == 200, r.text
        response = client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        after = samples(response.text)
    assert after["aiprov_usage_batches_total"] >= 1
    assert after["aiprov_usage_dropped_total"] == 0 and after["aiprov_usage_pending"] == 0
    assert after["aiprov_log_size"] == before["aiprov_log_size"] + 3  # every prediction is an entry
    assert after["aiprov_model_workers"] == hub.container.settings.workers
    assert after["aiprov_model_workers_replaced_total"] == 0


def test_metrics_follow_the_read_rule(hub: Hub) -> None:
    fresh = Container(Settings(home=hub.container.settings.home, actor="alice", anonymous_reads=False))
    try:
        client = TestClient(create_app(fresh), raise_server_exceptions=False)
        assert_problem(client.get("/metrics"), 401)
        assert client.get("/metrics", headers=bearer(hub.tokens["alice"])).status_code == 200
        assert client.get("/readyz").status_code == 200  # probes stay open
    finally:
        fresh.close()
