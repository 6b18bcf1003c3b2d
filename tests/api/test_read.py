"""Read endpoints mirror the CLI's JSON; bad input is a problem body, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import pytest
from apitools import Hub, assert_problem, bearer, push
from fastapi.testclient import TestClient
from tests.support.cli import cli_json


@pytest.fixture
def models(hub: Hub, make_model: Any) -> dict[str, Any]:
    """alice/iris v1 and v2 (tagged, aliased), bob/other v1."""
    v1 = push(hub.container, make_model({"w.bin": b"one"}), "alice/iris", description="flowers", tags=["demo"])
    v2 = push(hub.container, make_model({"w.bin": b"two", "cfg.json": b"{}"}), "alice/iris")
    hub.container.registry.alias("alice/iris@1", "prod", actor="alice")
    push(hub.container, make_model({"w.bin": b"three"}), "bob/other", description="something else")
    return {"v1": v1.version, "v2": v2.version}


def test_list_matches_cli_ls_json(client: TestClient, hub: Hub, models: dict[str, Any]) -> None:
    listed = client.get("/api/v1/models").json()
    assert listed == cli_json(hub.container.settings.home, "ls")
    assert [m["name"] for m in listed] == ["alice/iris", "bob/other"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"author": "bob"}, ["bob/other"]),
        ({"name": "alice/*"}, ["alice/iris"]),
        ({"tag": "demo"}, ["alice/iris"]),
        ({"search": "else"}, ["bob/other"]),
        ({"min": "accuracy=0.5"}, []),
    ],
)
def test_list_filters(client: TestClient, models: dict[str, Any], query: dict[str, str], expected: list[str]) -> None:
    assert [m["name"] for m in client.get("/api/v1/models", params=query).json()] == expected


def test_show_latest_and_numbered_versions_match_cli_show(client: TestClient, hub: Hub, models: dict[str, Any]) -> None:
    home = hub.container.settings.home
    for path, ref in (
        ("/api/v1/models/alice/iris", "alice/iris"),
        ("/api/v1/models/alice/iris/versions/1", "alice/iris@1"),
    ):
        shown = cli_json(home, "show", ref)
        # The CLI adds its own check of the served rows against the log; the API serves the rows.
        assert shown.pop("log_mismatches") == []
        assert client.get(path).json() == shown
    versions = client.get("/api/v1/models/alice/iris/versions").json()
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["aliases"] == ["prod"]


def test_alias_and_digest_references_resolve(client: TestClient, models: dict[str, Any]) -> None:
    by_alias = client.get("/api/v1/versions/alice/iris@prod").json()
    assert by_alias["version"] == 1
    digest = str(models["v2"].manifest.digest)
    assert client.get(f"/api/v1/versions/{digest[:20]}").json()["version"] == 2
    assert client.get(f"/api/v1/versions/{digest}").json()["name"] == "alice/iris"


def test_alias_by_digest_of_another_model_is_refused(client: TestClient, hub: Hub, models: dict[str, Any]) -> None:
    other = hub.container.registry.show("bob/other")[1]
    r = client.put(
        "/api/v1/models/alice/iris/aliases/x",
        json={"version": str(other.manifest.digest)},
        headers=bearer(hub.tokens["alice"]),
    )
    assert_problem(r, 422)
    assert hub.container.registry.show("bob/other")[1].aliases == ()


def test_missing_things_are_404_problems(client: TestClient, models: dict[str, Any]) -> None:
    for path in (
        "/api/v1/models/alice/nope",
        "/api/v1/models/alice/iris/versions/9",
        "/api/v1/versions/alice/iris@nope",
        "/api/v1/evaluations/12345",
        "/api/v1/no/such/route",
    ):
        assert_problem(client.get(path), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models/ALICE!/iris",
        "/api/v1/models/alice/iris/versions/0",
        "/api/v1/models/alice/iris/versions/x",
        "/api/v1/versions/sha256:zz",
        "/api/v1/log/entries/-1",
        "/api/v1/log/proof/inclusion",
        "/api/v1/models?min=accuracy",
    ],
)
def test_bad_input_is_a_422_problem(client: TestClient, models: dict[str, Any], path: str) -> None:
    assert_problem(client.get(path), 422)


def test_bad_json_body_is_a_problem_not_a_500(client: TestClient, hub: Hub, models: dict[str, Any]) -> None:
    headers = {**bearer(hub.tokens["alice"]), "content-type": "application/json"}
    assert_problem(client.put("/api/v1/models/alice/iris/aliases/x", content=b"{not json", headers=headers), 422)
    assert_problem(client.post("/api/v1/models/alice/iris/evaluations", json={}, headers=headers), 422)
    assert_problem(
        client.post("/api/v1/models/alice/iris/evaluations", json={"benchmark": "nope"}, headers=headers), 422
    )


def test_body_over_the_limit_is_a_413_problem(client: TestClient, hub: Hub, models: dict[str, Any]) -> None:
    big = b'{"version": "' + b"1" * (17 * 2**20) + b'"}'
    headers = {**bearer(hub.tokens["alice"]), "content-type": "application/json"}
    assert_problem(client.put("/api/v1/models/alice/iris/aliases/x", content=big, headers=headers), 413)

    def chunks() -> Any:  # no Content-Length: counted while it streams
        yield b'{"version": "'
        for _ in range(17):
            yield b"1" * 2**20
        yield b'"}'

    assert_problem(client.put("/api/v1/models/alice/iris/aliases/x", content=chunks(), headers=headers), 413)


def test_events_list_what_happened_to_a_model(client: TestClient, models: dict[str, Any]) -> None:
    actions = [e["action"] for e in client.get("/api/v1/models/alice/iris/events").json()]
    assert actions == ["alias", "push", "push"]


def test_evaluation_trigger_runs_records_and_lists(client: TestClient, hub: Hub, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    directory = tmp_path / "clf"
    directory.mkdir()
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), directory / "model.joblib")
    push(hub.container, directory, "alice/clf")
    assert_problem(client.post("/api/v1/models/alice/clf/evaluations", json={"benchmark": "iris"}), 401)
    r = client.post(
        "/api/v1/models/alice/clf/evaluations", json={"benchmark": "iris"}, headers=bearer(hub.tokens["bob"])
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["evaluator"] == "bob" and made["metrics"]["accuracy"] > 0.8
    listed = client.get("/api/v1/models/alice/clf/evaluations").json()
    assert [e["id"] for e in listed] == [made["id"]]
    assert client.get(f"/api/v1/evaluations/{made['id']}").json() == made
    shown = client.get("/api/v1/models/alice/clf").json()
    assert shown["evaluations"][0]["metrics"] == made["metrics"]
    assert [m["name"] for m in client.get("/api/v1/models", params={"min": "accuracy=0.8"}).json()] == ["alice/clf"]


def test_lifespan_runs_startup_and_shutdown_hooks_then_closes_the_container(hub: Hub) -> None:
    from aiprov.api import create_app

    app = create_app(hub.container)
    calls: list[str] = []
    app.state.on_startup.append(lambda: calls.append("start"))
    app.state.on_shutdown.extend([lambda: calls.append("stop 1"), lambda: calls.append("stop 2")])
    with TestClient(app) as client:
        assert client.get("/docs").status_code == 200
        assert calls == ["start"]
    assert calls == ["start", "stop 2", "stop 1"]


def test_serve_with_several_workers_answers_and_stops_cleanly(make_server: Any) -> None:
    server = make_server(workers=2)
    alice = server.add_user("alice")
    assert {server.client(alice).get("/api/v1/user").json()["user"] for _ in range(10)} == {"alice"}
    assert server.stop() == 0, server.log_text()
