"""Helpers of the API tests: a real `aiprov serve` process (`Server`), an in-process hub, problem checks.

Import them in tests under tests/api as `from apitools import Server, assert_problem, bearer`; the fixtures are
in tests/api/conftest.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient
from tests.support import free_port
from tests.support.cli import Ran, cli

from aiprov.config import Container, Settings

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]
PREDICT = "/api/v1/models/alice/iris/predict"

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

    def cli_json(self, *args: str) -> Any:
        """`cli` with `--json`: the parsed document of a command that succeeded."""
        return json.loads(self.cli(*args, "--json").stdout)

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


@dataclass
class InProcess:
    """A hub served in the test's own process: `create_app` behind `TestClient`, reached by `--server` commands.

    For remote tests that need no real socket (the resume-after-a-cut, kill and timeout tests keep `Server`).
    The same helpers as `Server`: `base_url`, `home`, `admin_token`, `client`, `add_user`, `cli_json`.
    """

    base_url: str
    home: Path
    admin_token: str
    app: Any

    def client(self, token: str | None = None) -> TestClient:
        """An HTTP client on the app, sending `token` as a bearer token if given."""
        return TestClient(self.app, base_url=self.base_url, headers=bearer(token) if token else None)

    @property
    def admin(self) -> TestClient:
        return self.client(self.admin_token)

    def add_user(self, name: str, *, admin: bool = False, scopes: Sequence[str] = ()) -> str:
        """Create a user through the API (as the admin); return its token."""
        r = self.admin.post("/api/v1/users", json={"name": name, "admin": admin, "scopes": list(scopes)})
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token

    def cli(self, *args: str) -> Ran:
        """`aiprov --home HOME ARGS…` on the hub's own home, as the admin (in-process, like the app); must succeed."""
        ran = cli(self.home, *args, env={"AIPROV_ACTOR": ADMIN})
        assert ran.code == 0, ran.err
        return ran

    def cli_json(self, *args: str) -> Any:
        """`cli` with `--json`: the parsed document."""
        return self.cli(*args, "--json").json()


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


# uploads -------------------------------------------------------------------------------------------------------


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def upload(client: Any, token: str, data: bytes, digest: str | None = None, **headers: str) -> Any:
    return client.put(f"/api/v1/blobs/{digest or digest_of(data)}", content=data, headers={**bearer(token), **headers})


def commit(client: Any, token: str, name: str, files: dict[str, bytes], **metadata: Any) -> Any:
    body = {"files": [{"path": p, "size": len(b), "sha256": digest_of(b)} for p, b in files.items()], **metadata}
    return client.post(f"/api/v1/models/{name}/versions", json=body, headers=bearer(token))


def visible_blobs(home: Path) -> list[Path]:
    return [p for p in (home / "blobs" / "sha256").rglob("*") if p.is_file()] if (home / "blobs").exists() else []


def cut_upload(base_url: str, token: str, digest: str, data: bytes, sent: int) -> None:
    """Announce `len(data)` bytes, send the first `sent`, then drop the connection (a client that died)."""
    url = urlsplit(base_url)
    head = (
        f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(data)}\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port)) as s:
        s.sendall(head + data[:sent])
        time.sleep(0.2)  # let the server write what arrived before the cut
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close


def until(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Fetch until `done` says so (usage is logged in batches, off the request path) or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not done(value := fetch()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def wait_offset(client: httpx.Client, token: str, digest: str) -> dict[str, Any]:
    """The status once the server has noticed the cut: some bytes kept, and the count no longer moving."""
    deadline = time.monotonic() + 10
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.get(f"/api/v1/blobs/{digest}/status", headers=bearer(token)).json()
        if status["offset"] > 0 and status == last:
            break
        last = status
        time.sleep(0.1)
    return last
