"""The inference fast path: prediction requests reach their routes without the framework's layers, and behave
exactly as through them (auth, body limit, problem bodies, root path); every other request is untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import PREDICT, ROWS, Hub, assert_problem, bearer, push
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from aiprov.api import create_app
from aiprov.api.fastpath import InferenceFastPath


@pytest.fixture
def client(hub: Hub, iris: tuple[Path, Any]) -> Iterator[TestClient]:
    push(hub.container, iris[0], "alice/iris")
    app = create_app(hub.container)
    with TestClient(app, raise_server_exceptions=False, headers=bearer(hub.tokens["alice"])) as client:
        yield client


def test_predictions_skip_the_framework_and_everything_else_does_not(client: TestClient) -> None:
    client.get("/api/v1/models")  # builds the framework's middleware stack
    app: Any = client.app
    assert isinstance(app.fast_path, InferenceFastPath)
    crossed: list[str] = []
    inner = app.middleware_stack

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        crossed.append(f"{scope.get('method')} {scope.get('path')}")
        await inner(scope, receive, send)

    app.middleware_stack = spy
    r = client.post(PREDICT, json={"inputs": ROWS})
    assert r.status_code == 200
    assert client.post(f"/infer/{r.json()['model']['digest']}", json={"inputs": ROWS}).status_code == 200
    assert crossed == []
    assert client.get("/api/v1/models/alice/iris").status_code == 200
    assert client.get(PREDICT).status_code == 405  # another method: the router answers, as before
    assert crossed == ["GET /api/v1/models/alice/iris", f"GET {PREDICT}"]


def test_the_fast_path_keeps_auth_limits_and_problem_bodies(hub: Hub, client: TestClient) -> None:
    assert_problem(client.post(PREDICT, json={"inputs": ROWS}, headers=bearer("not-a-token")), 401)
    assert_problem(TestClient(client.app).post(PREDICT, json={"inputs": ROWS}), 401)  # no token
    r = client.post(PREDICT, content=b"{", headers={"content-type": "application/json"})
    assert_problem(r, 422)
    assert_problem(client.post("/api/v1/models/alice/nothing/predict", json={"inputs": ROWS}), 404)
    limit = hub.container.settings.max_body_mb * 2**20
    big = b'{"inputs": [' + b"[1.0, 2.0, 3.0, 4.0]," * (limit // 20) + b"[1.0, 2.0, 3.0, 4.0]]}"
    assert_problem(client.post(PREDICT, content=big, headers={"content-type": "application/json"}), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while the body streams in
        yield big

    assert_problem(client.post(PREDICT, content=chunks(), headers={"content-type": "application/json"}), 413)
    r = client.post(PREDICT + "?proba=maybe", json={"inputs": ROWS})
    assert_problem(r, 422)


def test_an_unexpected_error_is_a_500_problem(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiprov.api.routes import inference

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(inference, "_predict", broken)
    r = client.post(PREDICT, json={"inputs": ROWS})
    assert_problem(r, 500)
    assert "a bug" not in r.text  # the traceback goes to the server log, not the client


def test_behind_a_proxy_prefix_the_fast_path_still_matches(hub: Hub, iris: tuple[Path, Any]) -> None:
    push(hub.container, iris[0], "alice/iris")
    with TestClient(create_app(hub.container), root_path="/hub", headers=bearer(hub.tokens["alice"])) as client:
        r = client.post("/hub" + PREDICT, json={"inputs": ROWS})
        assert r.status_code == 200 and len(r.json()["predictions"]) == len(ROWS)
