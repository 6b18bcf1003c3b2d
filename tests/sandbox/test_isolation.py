"""From inside a real worker, a model that runs code finds no network, no files but its own and no secrets.

Models are of the test-only "escape" format (tests/sandbox/escape.py), loaded through the pool's loader registry
as a model that slipped past the scanner would be. Each layer is also tested alone (the others left out), so one
layer failing open is caught, and with the sandbox off the same attempt succeeds: the test can see an escape.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.sandbox.escape import LOADER

from aiprov.config import Container, Settings, load_settings
from aiprov.errors import InvalidInput, ModelExecutionError, SandboxUnavailable
from aiprov.sandbox import Limits, ModelSpec, WorkerPool
from aiprov.sandbox.isolation import LAYERS
from aiprov.sandbox.pool import python_path, worker_environment
from aiprov.services.registry import PushRequest

LIMITS = Limits(memory_bytes=1024 * 2**20, cpu_seconds=20, timeout_s=30.0)

Attempt = Callable[..., str]


@pytest.fixture
def attempt() -> Iterator[Callable[..., str]]:
    """`attempt(try=..., without=(...), sandbox=...)`: what a model trying that in a fresh worker gets."""
    pools: list[WorkerPool] = []

    def run(*, without: Collection[str] = (), sandbox: Any = "best-effort", **plan: Any) -> str:
        pool = WorkerPool(1, LIMITS, loaders={"escape": LOADER}, sandbox=sandbox, without=without)
        pools.append(pool)
        (pool.model_root / "plan.json").write_text(json.dumps({"on": "predict", **plan}))
        answer: str = pool.predict(ModelSpec("k", str(pool.model_root), "plan.json", "escape"), [[0.0]]).predictions[0]
        return answer

    yield run
    for pool in pools:
        pool.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.settimeout(0.5)
        yield s


def connections(listener: socket.socket) -> int:
    """How many connections reached the listener (it waits half a second for one)."""
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        return 0
    conn.close()
    return 1


ONLY = {
    "every layer": (),
    "network namespace alone": ("landlock", "seccomp"),
    "landlock alone": ("network namespace", "seccomp"),
    "seccomp alone": ("network namespace", "landlock"),
}


@pytest.mark.parametrize("without", ONLY.values(), ids=ONLY.keys())
def test_a_model_cannot_open_a_tcp_connection_to_a_listener_on_the_loopback(
    attempt: Attempt, listener: socket.socket, without: tuple[str, ...]
) -> None:
    answer = attempt(**{"try": "connect", "port": listener.getsockname()[1]}, without=without)
    assert answer.startswith("refused: ")
    assert connections(listener) == 0


def test_with_the_sandbox_off_the_same_model_connects_so_the_test_can_see_an_escape(
    attempt: Attempt, listener: socket.socket
) -> None:
    assert attempt(**{"try": "connect", "port": listener.getsockname()[1]}, sandbox="off") == "ok: connected"
    assert connections(listener) == 1


def test_a_model_cannot_reach_a_path_named_unix_socket(attempt: Attempt, tmp_path: Path) -> None:
    """Docker's or PostgreSQL's socket would be reachable through any namespace: seccomp refuses new sockets."""
    path = str(tmp_path / "hub.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)
        s.listen()
        s.settimeout(0.5)
        assert attempt(**{"try": "unix", "path": path}).startswith("refused: PermissionError")
        with pytest.raises(TimeoutError):
            s.accept()


@pytest.fixture
def secrets_outside(make_container: Callable[..., Container]) -> Iterator[dict[str, Path]]:
    """The hub's SQLite database and a file in the user's home, both holding a secret."""
    hub = make_container()
    database = hub.settings.home / "registry.db"
    assert database.is_file()
    in_home = Path.home() / f".aiprov-sandbox-test-{uuid.uuid4().hex}"
    in_home.write_text("the user's secret")
    try:
        yield {"database": database, "home": in_home}
    finally:
        in_home.unlink()


@pytest.mark.parametrize("target", ["database", "home"])
def test_a_model_cannot_read_the_hubs_database_or_a_file_in_home(
    attempt: Attempt, secrets_outside: dict[str, Path], target: str
) -> None:
    path = str(secrets_outside[target])
    assert attempt(**{"try": "read", "path": path}).startswith("refused: PermissionError")
    assert attempt(**{"try": "read", "path": path}, without=["landlock"]).startswith("ok: ")  # the probe works


def test_an_import_path_entry_holding_home_or_the_hubs_home_is_not_opened_to_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_home = tmp_path / "srv" / "aiprov"
    hub_home.mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path / "srv"), str(Path.home()), "/", str(hub_home / "x")])
    granted = python_path([hub_home])
    assert str(tmp_path / "srv") not in granted and str(Path.home()) not in granted and "/" not in granted
    assert str(hub_home / "x") in granted  # below the hub's home, not holding it: only itself is granted
    assert str(tmp_path / "srv") in python_path()  # a pool not told of the hub's home would grant it


def test_a_model_reads_its_own_files_and_nothing_of_the_caller(attempt: Attempt) -> None:
    """Its model file is readable; the parent's /proc entry (its environ, its memory maps) is not."""
    assert attempt(**{"try": "read", "path": "plan.json"}).startswith("ok: ")
    assert attempt(**{"try": "read", "path": f"/proc/{os.getpid()}/environ"}).startswith("refused: PermissionError")


def test_proc_self_environ_holds_none_of_the_callers_variables(
    attempt: Attempt, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    monkeypatch.setenv("AIPROV_SANDBOX_TEST_MARKER", marker)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", marker)
    answer = attempt(**{"try": "environ"})
    assert answer.startswith("ok: ")
    assert marker not in answer
    entries = [e for e in answer.removeprefix("ok: ").split("\0") if e]
    names = {e.partition("=")[0] for e in entries}
    assert names == set(worker_environment("/x"))  # only what the pool wrote; none copied from the caller
    assert f"HOME={os.environ['HOME']}" not in entries  # its HOME is its private temp dir


def test_a_model_that_writes_a_pickle_on_its_workers_socket_runs_nothing_in_the_caller(tmp_path: Path) -> None:
    marker = tmp_path / "created-by-the-caller"
    with WorkerPool(1, LIMITS, loaders={"escape": LOADER}) as pool:
        (pool.model_root / "plan.json").write_text(json.dumps({"on": "predict", "try": "forge", "marker": str(marker)}))
        with pytest.raises(ModelExecutionError, match="answered with something other than plain data"):
            pool.predict(ModelSpec("k", str(pool.model_root), "plan.json", "escape"), [[0.0]])
        assert pool.replaced == 1
    assert not marker.exists()


def test_strict_mode_refuses_a_worker_missing_a_protection_and_loads_nothing(
    listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    """A kernel without seccomp is simulated by leaving the layer out: the worker really runs without it."""
    with WorkerPool(1, LIMITS, loaders={"escape": LOADER}, sandbox="strict", without=["seccomp"]) as pool:
        plan = {"on": "load", "try": "connect", "port": listener.getsockname()[1]}
        (pool.model_root / "plan.json").write_text(json.dumps(plan))
        spec = ModelSpec("k", str(pool.model_root), "plan.json", "escape")
        with caplog.at_level(logging.ERROR, "aiprov.sandbox"), pytest.raises(SandboxUnavailable) as e:
            pool.predict(spec, [[0.0]])
    assert "\n" not in e.value.diagnostics()
    assert "sandbox is incomplete (AIPROV_SANDBOX=strict): seccomp: left out" in e.value.message
    assert "refused (AIPROV_SANDBOX=strict)" in caplog.text
    assert connections(listener) == 0


def test_best_effort_runs_and_logs_which_protection_is_missing_and_why(
    attempt: Attempt, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "aiprov.sandbox"):
        assert attempt(**{"try": "read", "path": "plan.json"}, without=["landlock"]).startswith("ok: ")
    assert "started with protections missing" in caplog.text
    assert "missing: landlock (left out for this pool" in caplog.text


def test_every_protection_is_active_on_this_machine_and_the_start_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The test machine's kernel has every layer: the report says so, one entry per protection."""
    with WorkerPool(1, LIMITS, sandbox="strict") as pool:
        report = pool.probe()
    assert [p.name for p in report.protections] == [*LAYERS, "resource limits"]
    assert report.complete, report.summary()


def test_an_honest_scikit_learn_model_predicts_in_strict_mode_through_the_registry(
    make_container: Callable[..., Container], tmp_path: Path
) -> None:
    hub = make_container()
    strict = Container(Settings(home=hub.settings.home, actor="alice", sandbox="strict", workers=1))
    try:
        x, y = load_iris(return_X_y=True)
        clf = LogisticRegression(max_iter=500).fit(x, y)
        (tmp_path / "m").mkdir()
        joblib.dump(clf, tmp_path / "m" / "model.joblib")
        version = strict.registry.push(tmp_path / "m", PushRequest(name="alice/iris")).version
        answer = strict.models.predict(version, x[:5], proba=True)
        assert answer.predictions == clf.predict(x[:5]).tolist()
        assert answer.probabilities is not None
        report = strict.models.pool.probe()
        assert report.complete, report.summary()
    finally:
        strict.close()


def test_an_unknown_sandbox_mode_is_a_one_line_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPROV_SANDBOX", "sometimes")
    with pytest.raises(InvalidInput) as e:
        load_settings()
    assert e.value.message.startswith("invalid configuration: AIPROV_SANDBOX: Input should be 'strict'")
    assert "\n" not in e.value.diagnostics()


def test_an_unknown_layer_to_leave_out_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown sandbox layers: selinux"):
        WorkerPool(1, without=["selinux"])
