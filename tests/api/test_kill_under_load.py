"""Acknowledged means logged, under kill -9 (issue 14, docs/api.md "Acknowledged means logged"): with 4 clients
predicting against a real `aiprov serve`, the server is killed with SIGKILL about 1.5 s in, then restarted on
the same home; every prediction that was answered 200 has its inference event in the log, and the log verifies.
Five rounds on one home, each round's events on top of the last."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from apitools import Server, bearer, init_home, push, start_server

from aiprov.config import Container, Settings
from aiprov.core.events import Event
from aiprov.services.usage import UsageQueries, input_digest

ROUNDS = 5
CLIENTS = 4
KILL_AFTER_S = 1.5
PREDICT = "/api/v1/models/alice/iris/predict"


@pytest.fixture
def iris_home(tmp_path: Path) -> tuple[Path, str, str]:
    """A home where alice pushed a small Iris classifier; (home, admin token, alice's write token)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = tmp_path / "iris"
    model.mkdir()
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), model / "model.joblib")
    (model / "config.json").write_text(json.dumps({"features": ["a", "b", "c", "d"]}))
    home = tmp_path / "home"
    container, admin = init_home(home)
    try:
        alice = container.accounts.add_user("alice").token
        push(container, model, "alice/iris")
    finally:
        container.close()
    return home, admin, alice


def predict_until_cut(server: Server, token: str, client: int, round_: int, answered: list[str]) -> None:
    """Predict distinct rows back to back on one keep-alive connection until the server goes away; record the
    input digest of every 200 (what identifies its usage event)."""
    with httpx.Client(base_url=server.base_url, headers=bearer(token), timeout=10) as http:
        for i in range(100_000):
            rows = [[float(round_), float(client), float(i), 0.5]]
            try:
                r = http.post(PREDICT, json={"inputs": rows})
            except httpx.TransportError:
                return  # killed: whatever was in flight was never answered
            assert r.status_code == 200, r.text
            answered.append(input_digest(rows))


def test_every_prediction_answered_before_a_kill_9_is_in_the_log_five_times(
    iris_home: tuple[Path, str, str],
) -> None:
    home, admin, alice = iris_home
    answered: list[str] = []
    for round_ in range(ROUNDS):
        server = start_server(home, admin)
        try:
            warm = httpx.post(
                server.base_url + PREDICT, json={"inputs": [[0.0] * 4]}, headers=bearer(alice), timeout=60
            )
            assert warm.status_code == 200, warm.text  # the model is loaded before the clock starts
            before = len(answered)
            threads = [
                threading.Thread(target=predict_until_cut, args=(server, alice, c, round_, answered))
                for c in range(CLIENTS)
            ]
            for t in threads:
                t.start()
            time.sleep(KILL_AFTER_S)
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
            for t in threads:
                t.join(30)
            assert len(answered) - before > 20, "too few predictions before the kill to test anything"
        finally:
            server.stop()
        assert_answered_are_logged(home, answered, answered[before:])


def assert_answered_are_logged(home: Path, answered: list[str], this_round: list[str]) -> None:
    """Every answered prediction's event is committed; this round's are in the log with verifying proofs."""
    local = Container(Settings(home=home, actor="root"))
    try:
        events = UsageQueries(local.registry.db).of_model("alice/iris", actions=["inference"], limit=10**6)
        logged = {e.details["input_digest"]: e for e in events}
        missing = [d for d in answered if d not in logged]
        assert missing == [], f"{len(missing)} of {len(answered)} answered predictions are not in the log"
        checkpoint = local.log.latest().checkpoint
        for digest in this_round:
            event = logged[digest]
            assert event.leaf_index is not None
            data, _, entry = local.log.entry(event.leaf_index)
            assert Event.from_entry(data) == entry
            local.log.inclusion(event.leaf_index, checkpoint.size).verify()
        report: Any = local.verification.verify("alice/iris@1")
        assert report.ok, report
    finally:
        local.close()
