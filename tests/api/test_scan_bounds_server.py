"""A real `aiprov serve` refuses a decompression bomb within its scan limit and answers other requests meanwhile."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections.abc import Callable

import httpx
from apitools import Server, assert_problem


def _upload(client: httpx.Client, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = client.put(f"/api/v1/blobs/{digest}", content=data)
    assert r.status_code == 201, r.text
    return digest


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
    alice = server.client(server.add_user("alice"))
    bomb = gzip.compress(b"\x80\x04" + b"N0" * (256 * 1024 * 1024) + b"N.", 9)
    digest = _upload(alice, bomb)
    outcome: dict[str, httpx.Response] = {}
    seconds: list[float] = []

    def commit() -> None:
        started = time.monotonic()
        outcome["response"] = alice.post(
            "/api/v1/models/alice/bomb/versions",
            json={"files": [{"path": "m.joblib", "size": len(bomb), "sha256": digest}]},
        )
        seconds.append(time.monotonic() - started)

    worker = threading.Thread(target=commit)
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
