"""API fixtures: a real `aiprov serve` process (`server`, `make_server`) and in-process apps (`hub`, `client`).

`server` is what end-to-end tests use:

    def test_something(server: Server) -> None:
        alice = server.add_user("alice")                  # -> a token with read and write scopes
        r = server.client(alice).get("/api/v1/models")    # httpx.Client on server.base_url, bearer token set
        server.cli("user", "ls", "--json")                # the CLI on the server's home, in a subprocess

It is a fresh `aiprov serve` on a free 127.0.0.1 port over a temp home (one admin user `root`), started per test
and stopped (SIGTERM: a clean shutdown) at teardown. `make_server(env={...}, workers=N)` starts one with more
settings. `server.log_text()` is the server's stderr, for assertions or a failed test's report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import ADMIN, FEATURES, Hub, InProcess, Server, init_home, start_server
from fastapi.testclient import TestClient

from aiprov.api import create_app


@pytest.fixture
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Factory: `make_server(env={"AIPROV_ANONYMOUS_READS": "false"}, workers=2)` starts a server on a new home."""
    started: list[Server] = []

    def make(*, env: dict[str, str] | None = None, workers: int = 1, database_url: str | None = None) -> Server:
        home = tmp_path_factory.mktemp("served") / "home"
        container, token = init_home(home, database_url)
        container.close()
        extra = dict(env or {})
        if database_url is not None:
            extra["AIPROV_DATABASE_URL"] = database_url
        server = start_server(home, token, env=extra, workers=workers)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    """A fresh `aiprov serve` process with an admin user (see the module docstring)."""
    return make_server()


# in-process ----------------------------------------------------------------------------------------------------


@pytest.fixture
def inprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    """A hub served in this process (`InProcess`): `--server` commands and `Hub(server=…)` reach its app through
    `TestClient` instead of a socket, with the app's lifespan on (usage recorder, workers) as under `aiprov serve`.
    """
    from aiprov.remote import client as remote_client

    home = tmp_path / "served" / "home"
    container, token = init_home(home)
    app = create_app(container)
    served = InProcess("http://inprocess.test", home, token, app)
    real_connect = remote_client.connect

    def connect(url: str, headers: dict[str, str], timeout_s: float) -> Any:
        if url != served.base_url:
            return real_connect(url, headers, timeout_s)
        return TestClient(app, base_url=url, headers=headers)

    monkeypatch.setattr(remote_client, "connect", connect)
    with TestClient(app):  # runs the lifespan: startup now, shutdown (and the container's close) at teardown
        yield served


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    container, root = init_home(tmp_path / "home")
    tokens = {ADMIN: root}
    for name in ("alice", "bob"):
        tokens[name] = container.accounts.add_user(name).token
    yield Hub(container, tokens)
    container.close()


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    """A TestClient over `create_app(hub.container)` (no lifespan: the hub fixture closes the container)."""
    yield TestClient(create_app(hub.container), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A trained Iris classifier saved as a model directory (model.joblib + config.json naming its features)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    root = tmp_path_factory.mktemp("iris")
    joblib.dump(model, root / "model.joblib")
    (root / "config.json").write_text(json.dumps({"features": FEATURES}))
    return root, model
