"""The Hub's LFS upload route through `huggingface_hub` against a real `aiprov serve`: files above the LFS
threshold are uploaded to single-use capability URLs, then committed, scanned and registered as a push is."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from apitools import Server, start_server, until, visible_blobs
from huggingface_hub import HfApi, constants, lfs
from huggingface_hub.errors import HfHubHTTPError
from tests.support.cli import remote_json
from tests.support.hf import BODY_MB, FILES, THRESHOLD, WEIGHTS, Exploit, assert_refused_as_unsafe, small_hub

from aiprov.core.digest import Digest


@pytest.fixture(autouse=True)
def lfs_not_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    """What HF_HUB_DISABLE_XET=1 does: hf_xet is installed here, and without this the client uploads through Xet
    (tests/api/test_hf_xet.py)."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def puts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The upload URLs huggingface_hub PUTs LFS objects to, in order."""
    seen: list[str] = []
    real = lfs._upload_single_part

    def spy(operation: Any, upload_url: str) -> None:
        seen.append(upload_url)
        real(operation=operation, upload_url=upload_url)

    monkeypatch.setattr(lfs, "_upload_single_part", spy)
    yield seen


@pytest.fixture
def small(make_server: Callable[..., Server]) -> tuple[Server, str, HfApi]:
    return small_hub(make_server)


def _batch(server: Server, token: str, repo: str, objects: list[tuple[str, int]]) -> list[dict[str, Any]]:
    body = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": o, "size": s} for o, s in objects]}
    answer = server.client(token).post(f"/{repo}.git/info/lfs/objects/batch", json=body)
    assert answer.status_code == 200, answer.text
    objects_out: list[dict[str, Any]] = answer.json()["objects"]
    return objects_out


def _commit(server: Server, token: str, repo: str, *ops: dict[str, Any]) -> httpx.Response:
    lines = [{"key": "header", "value": {"summary": "raw"}}, *ops]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    headers = {"Content-Type": "application/x-ndjson"}
    return server.client(token).post(f"/api/models/{repo}/commit/main", content=body, headers=headers)


def _lfs_file(path: str, data: bytes) -> dict[str, Any]:
    oid = hashlib.sha256(data).hexdigest()
    return {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": len(data)}}


def test_preupload_answers_lfs_only_above_the_threshold(small: tuple[Server, str, HfApi]) -> None:
    server, token, _ = small
    files = [{"path": "edge.bin", "size": THRESHOLD}, {"path": "above.bin", "size": THRESHOLD + 1}]
    answer = server.client(token).post("/api/models/alice/m/preupload/main", json={"files": files})
    assert answer.status_code == 200, answer.text
    assert {f["path"]: f["uploadMode"] for f in answer.json()["files"]} == {"edge.bin": "regular", "above.bin": "lfs"}
    assert THRESHOLD == 2**19  # half of the 1 MiB body limit: below the Hub's 10 MiB


def test_upload_folder_above_the_body_limit_goes_through_lfs_and_verifies(
    small: tuple[Server, str, HfApi], make_model: Any, puts: list[str]
) -> None:
    server, token, api = small
    info = api.upload_folder(folder_path=make_model(FILES), repo_id="alice/big", commit_message="weights")
    assert len(puts) == 1 and "/api/lfs/uploads/" in puts[0]  # only the weights: config.json went inline
    shown = remote_json(server, token, "show", "alice/big")
    assert {f["path"]: f["sha256"] for f in shown["files"]} == {p: Digest.of(b).hex for p, b in FILES.items()}
    assert info.oid == shown["digest"].removeprefix("sha256:")[:40]
    assert remote_json(server, token, "verify", "alice/big@1")["ok"] is True
    events = server.client(token).get("/api/v1/models/alice/big/events").json()
    assert [e["action"] for e in events] == ["push"]
    again = HfApi(endpoint=server.base_url, token=token)  # the same bytes again: stored, so nothing is uploaded
    again.upload_folder(folder_path=make_model(FILES), repo_id="alice/copy")
    assert len(puts) == 1
    assert remote_json(server, token, "show", "alice/copy")["digest"] == shown["digest"]
    assert "actions" not in _batch(server, token, "alice/copy", [(Digest.of(WEIGHTS).hex, len(WEIGHTS))])[0]


def test_the_tokenless_put_works_when_anonymous_reads_are_off(
    make_server: Callable[..., Server], make_model: Any, puts: list[str]
) -> None:
    server = make_server(env={"AIPROV_MAX_BODY_MB": str(BODY_MB), "AIPROV_ANONYMOUS_READS": "false"})
    token = server.add_user("alice")
    HfApi(endpoint=server.base_url, token=token).upload_folder(folder_path=make_model(FILES), repo_id="alice/big")
    assert len(puts) == 1
    assert remote_json(server, token, "show", "alice/big")["version"] == 1
    anonymous = httpx.post(f"{server.base_url}/alice/big.git/info/lfs/objects/batch", json={"operation": "upload"})
    assert anonymous.status_code == 401  # the batch needs the token; only the upload URL itself is tokenless


def test_a_malicious_pickle_sent_through_lfs_is_refused_with_its_reason(
    small: tuple[Server, str, HfApi], make_model: Any, puts: list[str]
) -> None:
    api = small[2]
    evil = pickle.dumps((Exploit(), os.urandom(THRESHOLD)))
    with pytest.raises(HfHubHTTPError) as refused:
        api.upload_folder(folder_path=make_model({**FILES, "model.pkl": evil}), repo_id="alice/evil")
    assert len(puts) == 2  # the weights and the pickle, each through LFS
    assert_refused_as_unsafe(refused, small, "alice/evil")


def test_an_upload_url_takes_one_upload_without_a_token_and_then_is_gone(small: tuple[Server, str, HfApi]) -> None:
    server, token, _ = small
    data = os.urandom(1000)
    oid = hashlib.sha256(data).hexdigest()
    [granted] = _batch(server, token, "alice/m", [(oid, len(data))])
    href = granted["actions"]["upload"]["href"]
    assert len(href.rsplit("/", 1)[1]) == 43  # secrets.token_urlsafe(32)
    assert httpx.put(href, content=data).json() == {"oid": oid, "size": 1000}  # no Authorization header
    verify = granted["actions"]["verify"]["href"]
    assert server.client(token).post(verify, json={"oid": oid, "size": 1000}).status_code == 200
    assert server.client(token).post(verify, json={"oid": oid, "size": 999}).status_code == 404
    used = httpx.put(href, content=data)
    assert used.status_code == 410 and "used already" in used.headers["X-Error-Message"]
    for unknown in (href[:-1] + ("A" if href[-1] != "A" else "B"), f"{server.base_url}/api/lfs/uploads/short"):
        missing = httpx.put(unknown, content=data)
        assert missing.status_code == 404 and "no such upload URL" in missing.headers["X-Error-Message"]
    for answer in (used, missing):
        assert str(server.home) not in answer.text and "/tmp" not in answer.text
    assert _commit(server, token, "alice/m", _lfs_file("w.bin", data)).status_code == 200
    assert remote_json(server, token, "show", "alice/m")["files"][0]["sha256"] == oid


def test_an_upload_url_is_gone_after_its_ttl(make_server: Callable[..., Server]) -> None:
    server = make_server(env={"AIPROV_HF_LFS_TTL_S": "1"})
    token = server.add_user("alice")
    data = os.urandom(1000)
    before = visible_blobs(server.home)
    [granted] = _batch(server, token, "alice/m", [(hashlib.sha256(data).hexdigest(), len(data))])
    time.sleep(1.2)
    late = httpx.put(granted["actions"]["upload"]["href"], content=data)
    assert late.status_code == 410 and "expired" in late.headers["X-Error-Message"]
    assert visible_blobs(server.home) == before


def test_a_tampered_body_stores_nothing_and_the_url_can_be_retried(small: tuple[Server, str, HfApi]) -> None:
    server, token, _ = small
    data = os.urandom(1000)
    oid = hashlib.sha256(data).hexdigest()
    before = visible_blobs(server.home)
    [granted] = _batch(server, token, "alice/m", [(oid, len(data))])
    href = granted["actions"]["upload"]["href"]
    for body in (os.urandom(1000), data[:-1], data + b"x"):  # wrong digest, too short, too long
        refused = httpx.put(href, content=body)
        assert refused.status_code == 422 and "nothing was stored" in refused.headers["X-Error-Message"]
        assert visible_blobs(server.home) == before
    tampered = _commit(server, token, "alice/m", _lfs_file("w.bin", data))
    assert tampered.status_code == 422 and "did not upload" in tampered.headers["X-Error-Message"]
    assert httpx.put(href, content=data).status_code == 200
    assert len(visible_blobs(server.home)) == len(before) + 1


def _cut_put(href: str, data: bytes, sent: int) -> None:
    """Announce `len(data)` bytes to the upload URL, send the first `sent`, then reset the connection."""
    url = urlsplit(href)
    head = f"PUT {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
    with socket.create_connection((url.hostname, url.port)) as s:
        s.sendall(head + data[:sent])
        time.sleep(0.2)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close


def test_a_cut_upload_gives_the_url_back_for_the_retry(small: tuple[Server, str, HfApi]) -> None:
    server, token, _ = small
    data = os.urandom(3 * 2**20)
    before = visible_blobs(server.home)
    [granted] = _batch(server, token, "alice/m", [(hashlib.sha256(data).hexdigest(), len(data))])
    href = granted["actions"]["upload"]["href"]
    _cut_put(href, data, 2**20 + 5)
    assert visible_blobs(server.home) == before
    # 410 `in use` until the server has noticed the cut and given the URL back
    retried = until(lambda: httpx.put(href, content=data), lambda r: r.status_code != 410)
    assert retried.status_code == 200, retried.text
    assert len(visible_blobs(server.home)) == len(before) + 1


def test_a_commit_may_name_only_lfs_objects_its_caller_uploaded(small: tuple[Server, str, HfApi]) -> None:
    server, alice, _ = small
    bob = server.add_user("bob")
    data = os.urandom(1000)
    [granted] = _batch(server, bob, "bob/m", [(hashlib.sha256(data).hexdigest(), len(data))])
    assert httpx.put(granted["actions"]["upload"]["href"], content=data).status_code == 200
    for who, repo, op in (
        (alice, "alice/m", _lfs_file("w.bin", data)),  # bob's upload, named by alice
        (bob, "bob/other", _lfs_file("w.bin", data)),  # bob's upload, for another of his models
        (alice, "alice/m", _lfs_file("w.bin", b"never uploaded")),
    ):
        refused = _commit(server, who, repo, op)
        assert refused.status_code == 422 and "did not upload" in refused.headers["X-Error-Message"], refused.text
    bad = _commit(server, alice, "alice/m", {"key": "lfsFile", "value": {"path": "w", "oid": "zz", "size": 1}})
    assert bad.status_code == 422
    assert server.client(alice).get("/api/v1/models/alice/m").status_code == 404
    assert _commit(server, bob, "bob/m", _lfs_file("w.bin", data)).status_code == 200
    with sqlite3.connect(server.home / "registry.db") as db:  # every grant gone, as after their TTL
        db.execute("DELETE FROM hf_lfs_uploads")
    copy = {"key": "lfsFile", "value": {"path": "copy.bin", "algo": "sha256", "oid": Digest.of(data).hex}}
    assert _commit(server, bob, "bob/m", copy).status_code == 200  # a copy (no size) of what the model holds
    assert {f["path"]: f["size"] for f in remote_json(server, bob, "show", "bob/m")["files"]} == {
        "w.bin": 1000,
        "copy.bin": 1000,
    }
    assert _commit(server, bob, "bob/new", copy).status_code == 422  # another model of his does not hold it
    forbidden = server.client(alice).post(
        "/bob/m.git/info/lfs/objects/batch", json={"operation": "upload", "objects": []}
    )
    assert forbidden.status_code == 403


def test_another_server_on_the_same_database_accepts_the_upload_url(
    make_server: Callable[..., Server], database_url: str | None
) -> None:
    """Two `aiprov serve` processes on one database (SQLite, and PostgreSQL as many machines share it) and one
    blob store: an upload URL one of them made is accepted by the other, and spent for both."""
    env = {"AIPROV_MAX_BODY_MB": str(BODY_MB)}
    server = make_server(env=env, database_url=database_url)
    token = server.add_user("alice")
    if database_url is not None:
        env["AIPROV_DATABASE_URL"] = database_url
    other = start_server(server.home, server.admin_token, env=env)
    try:
        data = os.urandom(1000)
        [granted] = _batch(server, token, "alice/m", [(hashlib.sha256(data).hexdigest(), len(data))])
        href = granted["actions"]["upload"]["href"]
        assert href.startswith(server.base_url)
        assert httpx.put(href.replace(server.base_url, other.base_url), content=data).status_code == 200
        assert httpx.put(href, content=data).status_code == 410  # spent on the other process
        assert _commit(server, token, "alice/m", _lfs_file("w.bin", data)).status_code == 200
    finally:
        other.stop()
