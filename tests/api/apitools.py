"""Helpers of the API tests: a real `aiprov serve` process (`Server`), an in-process hub, problem checks.

Import them in tests under tests/api as `from apitools import Server, assert_problem, bearer`; the fixtures are
in tests/api/conftest.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.support import free_port

from aiprov.config import Container, Settings

ADMIN = "root"
READY_TIMEOUT_S = 30.0


def init_home(home: Path, database_url: str | None = None) -> tuple[Container, str]:
    """`aiprov init` a home and add the admin user; return the container (acting as the admin) and its token."""
    container = Container(Settings(home=home, database_url=database_url, actor=ADMIN, workers=1))
    container.init()
    token = container.accounts.add_user(ADMIN, admin=True).token
    return container, token


@dataclass
class Server:
    """A running `aiprov serve` process."""

    base_url: str
    home: Path
    admin_token: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        """An httpx client on the server (closed at teardown), sending `token` as a bearer token if given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=kw.pop("timeout", 60.0), **kw)
        self.clients.append(client)
        return client

    @property
    def admin(self) -> httpx.Client:
        return self.client(self.admin_token)

    def add_user(self, name: str, *, admin: bool = False, scopes: Sequence[str] = ()) -> str:
        """Create a user through the API (as the admin); return its token."""
        r = self.admin.post("/api/v1/users", json={"name": name, "admin": admin, "scopes": list(scopes)})
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `aiprov --home HOME ARGS…` in a subprocess with the server's environment."""
        result = subprocess.run(
            [sys.executable, "-m", "aiprov", "--home", str(self.home), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (uvicorn's clean shutdown: lifespan hooks run), then kill if it hangs; return the exit code."""
        for c in self.clients:
            c.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(home: Path, admin_token: str, *, env: dict[str, str] | None = None, workers: int = 1) -> Server:
    """Start `aiprov serve` on `home` (already initialised) and wait until it answers. Raises RuntimeError."""
    port = free_port()
    full_env = {**os.environ, "AIPROV_ACTOR": ADMIN, "AIPROV_WORKERS": "1", **(env or {})}
    full_env.pop("AIPROV_HOME", None)
    log_path = home.parent / f"server-{port}.log"
    command = [sys.executable, "-m", "aiprov", "--home", str(home), "serve", "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", home, admin_token, process, full_env, log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"aiprov serve exited with {process.returncode}:\n{server.log_text()}")
        try:
            # 401: up, with anonymous reads switched off
            if httpx.get(f"{server.base_url}/api/v1/user", timeout=2).status_code in (200, 401):
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"aiprov serve did not answer within {READY_TIMEOUT_S} s:\n{server.log_text()}")
        time.sleep(0.05)


@dataclass
class Hub:
    """An initialised home, its container (as the admin) and tokens for alice, bob and the admin `root`."""

    container: Container
    tokens: dict[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    return body


def push(container: Container, path: Path, name: str, **request: Any) -> Any:
    """Push the model at `path` as `name` (OWNER/NAME) in-process, as OWNER; return the PushResult."""
    from aiprov.services.registry import PushRequest

    return container.registry.push(path, PushRequest(name=name, **request), actor=name.split("/")[0])
