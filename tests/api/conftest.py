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

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apitools import ADMIN, Hub, Server, init_home, start_server
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
