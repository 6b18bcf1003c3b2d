"""A real `aiprov serve` refuses a decompression bomb within its scan limit and answers other requests meanwhile."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable

import httpx
from apitools import Hub, Server, assert_problem
from fastapi.testclient import TestClient
from test_uploads import commit, upload


def test_a_bomb_is_refused_within_the_time_limit_while_the_server_keeps_answering(
    make_server: Callable[..., Server],
) -> None:
    # Ratio and cap wide open: only the time limit can stop this scan (it would take the walker minutes).
    server = make_server(
        env={
            "AIPROV_SCAN_MAX_SECONDS": "3",
            "AIPROV_SCAN_MAX_RATIO": "100000",
            "AIPROV_SCAN_RATIO_ALLOWANCE_MB": "4096",
        }
    )
    token = server.add_user("alice")
    alice = server.client(token)
    bomb = gzip.compress(b"\x80\x04" + b"N0" * (256 * 1024 * 1024) + b"N.", 9)
    assert upload(alice, token, bomb).status_code == 201
    outcome: dict[str, httpx.Response] = {}
    seconds: list[float] = []

    def commit_bomb() -> None:
        started = time.monotonic()
        outcome["response"] = commit(alice, token, "alice/bomb", {"m.joblib": bomb})
        seconds.append(time.monotonic() - started)

    worker = threading.Thread(target=commit_bomb)
    reader = server.client()
    worker.start()
    answered_meanwhile = 0
    while worker.is_alive():
        r = reader.get("/api/v1/models", timeout=2.0)  # a server stuck in the scan would time out here
        assert r.status_code == 200
        answered_meanwhile += worker.is_alive()
        time.sleep(0.05)
    worker.join()
    problem = assert_problem(outcome["response"], 422)
    assert [f["reason"] for f in problem["findings"]] == ["time-limit"]
    assert 3.0 <= seconds[0] < 30.0
    assert answered_meanwhile >= 10
    assert alice.get("/api/v1/models/alice/bomb/events").json()[0]["action"] == "flagged"


def test_an_http_commit_smuggling_git_metadata_is_refused_and_nothing_is_written(client: TestClient, hub: Hub) -> None:
    token = hub.tokens["alice"]
    payload = b"cos\nsystem\n(S'touch pwned'\ntR."
    files = {"model.json": b"{}", ".git/evil.pkl": payload}
    for data in files.values():
        assert upload(client, token, data).status_code == 201
    problem = assert_problem(commit(client, token, "alice/smuggled", files), 422)
    assert "git metadata" in problem["detail"] and ".git/evil.pkl" in problem["detail"]
    assert_problem(client.get("/api/v1/models/alice/smuggled"), 404)
    # Without the git path the same payload is scanned like any file, whatever its name, and refused as unsafe.
    renamed = {"model.json": b"{}", "sub/.gitkeep": payload}
    refused = assert_problem(commit(client, token, "alice/smuggled", renamed), 422)
    assert [f["path"] for f in refused["findings"]] == ["sub/.gitkeep"]
