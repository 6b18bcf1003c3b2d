"""Concurrent pushes of the same bytes (issue 14): each succeeds, and the hub ends with one version and each
blob stored once. A second upload of a blob the same uploader is already writing waits for it, then finds the
blob stored; only past the wait bound is it refused (409)."""

from __future__ import annotations

import hashlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from apitools import Hub, Server, assert_problem, bearer, digest_of, upload, visible_blobs
from fastapi.testclient import TestClient
from tests.support.cli import at_once_json

from aiprov.api.routes import uploads as upload_routes
from aiprov.core.digest import Digest
from aiprov.services.uploads import upload_key

PUSHES = 8
FILES = {
    "config.json": b'{"layers": 2}',
    "weights.bin": hashlib.sha256(b"w").digest() * (4 * 2**20 // 32),  # 4 MiB: the uploads overlap
}


def http_push(server: Server, token: str) -> tuple[list[int], int, dict[str, Any]]:
    """Upload every blob (no status check first: all eight start at once), then commit; the statuses seen."""
    with httpx.Client(base_url=server.base_url, headers=bearer(token), timeout=60) as client:
        puts = [client.put(f"/api/v1/blobs/{digest_of(data)}", content=data).status_code for data in FILES.values()]
        body = {"files": [{"path": p, "size": len(b), "sha256": digest_of(b)} for p, b in FILES.items()]}
        r = client.post("/api/v1/models/alice/same/versions", json=body)
        return puts, r.status_code, r.json()


def assert_one_version_one_set_of_blobs(server: Server, token: str) -> None:
    versions = server.client(token).get("/api/v1/models/alice/same/versions").json()
    assert [v["version"] for v in versions] == [1]
    stored = sorted(p.read_bytes() for p in visible_blobs(server.home))
    assert stored == sorted(FILES.values())  # each blob once, nothing else
    assert list((server.home / "blobs" / "tmp" / "uploads").iterdir()) == []


def test_eight_concurrent_http_pushes_of_the_same_bytes_all_succeed_with_one_version(server: Server) -> None:
    alice = server.add_user("alice")
    with ThreadPoolExecutor(PUSHES) as pool:
        results = list(pool.map(lambda _: http_push(server, alice), range(PUSHES)))
    for puts, status, body in results:
        assert all(s in (200, 201) for s in puts), (puts, server.log_text())
        assert status in (200, 201), body
        assert body["version"] == 1
    assert sorted(status for _, status, _ in results) == [200] * (PUSHES - 1) + [201]  # one new, seven deduplicated
    assert sorted(puts[1] for puts, _, _ in results).count(201) == 1  # the weights were written once
    assert_one_version_one_set_of_blobs(server, alice)


def test_eight_concurrent_remote_cli_pushes_of_the_same_bytes_all_succeed(
    server: Server, make_model: Any, tmp_path: Path
) -> None:
    alice = server.add_user("alice")
    model = make_model(FILES)
    command = [sys.executable, "-m", "aiprov", "--server", server.base_url, "--token", alice, "push", str(model)]
    env = {**server.env, "AIPROV_HOME": str(tmp_path / "client-home"), "AIPROV_TOKEN": ""}
    documents = at_once_json([*command, "--name", "alice/same"], env, PUSHES)
    assert {d["version"] for d in documents} == {1}
    assert sum(not d["deduplicated"] for d in documents) == 1
    assert sum(d["new_blobs"] for d in documents) == len(FILES)  # each blob uploaded by one push only
    assert_one_version_one_set_of_blobs(server, alice)


def test_an_upload_waits_for_the_request_writing_the_same_blob_then_finds_it_stored(
    client: TestClient, hub: Hub
) -> None:
    data = FILES["weights.bin"]
    d = Digest.of(data)
    holder = hub.container.blobs.resumable(upload_key(d, "alice"), 0)  # as a PUT of alice's in progress
    holder.write(data[:1000])
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(upload, client, hub.tokens["alice"], data)
        time.sleep(0.3)
        assert not waiting.done()  # not refused: it waits
        holder.write(data[1000:])
        holder.commit(expected=d)
        r = waiting.result(10)
    assert r.status_code == 200 and r.json() == {"digest": str(d), "complete": True, "new": False, "offset": len(data)}
    assert list((hub.container.settings.home / "blobs" / "tmp" / "uploads").iterdir()) == []


def test_an_upload_still_held_past_the_wait_bound_is_a_409_and_a_retry_then_succeeds(
    client: TestClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_routes, "UPLOAD_WAIT_S", 0.3)
    data = b"held bytes"
    holder = hub.container.blobs.resumable(upload_key(Digest.of(data), "alice"), 0)
    holder.write(data[:4])
    started = time.monotonic()
    body = assert_problem(upload(client, hub.tokens["alice"], data), 409)
    assert 0.3 <= time.monotonic() - started < 3
    assert "still being uploaded by another request of yours after 0.3 s" in body["detail"]
    assert upload(client, hub.tokens["bob"], data).status_code == 201  # another uploader never waits for alice
    holder.suspend()
    r = upload(client, hub.tokens["alice"], data)
    assert r.status_code == 200, r.text
