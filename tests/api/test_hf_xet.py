"""Xet uploads through the real `huggingface_hub` + `hf_xet` against a real `aiprov serve` (no HF_HUB_DISABLE_XET):
files above the LFS threshold go as xorbs and a shard to this hub's CAS routes, then are committed, scanned and
registered as a push is. Bad input to the CAS routes is a 4xx problem."""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import sqlite3
import struct
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from apitools import Server, start_server, visible_blobs
from huggingface_hub import HfApi, _commit_api, constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import _xet
from tests.support.cli import remote_json
from tests.support.hf import BODY_MB, FILES, THRESHOLD, WEIGHTS, Exploit, assert_refused_as_unsafe, small_hub

from aiprov.core.digest import Digest
from aiprov.core.xet import SHARD_HEADER_TAG, XORB_MAX_BYTES
from aiprov.services.hf_xet import SHARD_MAX_BYTES

CAS = "/api/xet/cas"


@pytest.fixture(autouse=True)
def xet_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The default client: Xet on (whatever the environment says), and no token cached from another server."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    _xet.XET_CONNECTION_INFO_CACHE.clear()
    yield
    _xet.XET_CONNECTION_INFO_CACHE.clear()


@pytest.fixture
def small(make_server: Callable[..., Server]) -> tuple[Server, str, HfApi]:
    return small_hub(make_server)


def _xet_token(server: Server, token: str, repo: str = "alice/m") -> str:
    answer = server.client(token).get(f"/api/models/{repo}/xet-write-token/main")
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Xet-Cas-Url"] == server.base_url + CAS
    xet: str = answer.headers["X-Xet-Access-Token"]
    assert answer.json()["accessToken"] == xet and int(answer.headers["X-Xet-Token-Expiration"]) > 0
    return xet


def _cas(server: Server, xet: str | None, method: str, path: str, body: bytes = b"") -> httpx.Response:
    headers = {} if xet is None else {"Authorization": f"Bearer {xet}"}
    return httpx.request(method, server.base_url + CAS + path, content=body, headers=headers, timeout=30)


def _xorb(*chunks: bytes) -> bytes:
    """A xorb of uncompressed chunks (scheme 0)."""
    out = b""
    for c in chunks:
        n = len(c).to_bytes(3, "little")
        out += b"\x00" + n + b"\x00" + n + c
    return out


def _hash_bytes(hex64: str) -> bytes:
    """The 32 bytes of a Xet hash from its URL form (four little-endian u64s)."""
    return struct.pack("<4Q", *(int(hex64[i : i + 16], 16) for i in range(0, 64, 16)))


def _shard(xorb_hex: str, start: int, end: int, size: int, sha256: str) -> bytes:
    """A shard with one file of one term and its SHA-256 (metadata extension), no verification entries."""
    header = SHARD_HEADER_TAG + struct.pack("<QQ", 2, 0)
    file_header = b"\x11" * 32 + struct.pack("<II", 1 << 30, 1) + bytes(8)
    term = _hash_bytes(xorb_hex) + struct.pack("<IIII", 0, size, start, end)
    ext = _hash_bytes(sha256) + bytes(16)
    bookend = b"\xff" * 32 + bytes(16)
    return header + file_header + term + ext + bookend + bookend


def _no_lfs(**_: Any) -> None:
    raise AssertionError("the LFS batch API was asked: this upload should have gone through Xet")


def test_upload_folder_with_a_large_file_goes_through_xet_and_verifies(
    small: tuple[Server, str, HfApi], make_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, token, api = small
    monkeypatch.setattr(_commit_api, "post_lfs_batch_info", _no_lfs)
    info = api.upload_folder(folder_path=make_model(FILES), repo_id="alice/big", commit_message="weights")
    with sqlite3.connect(server.home / "registry.db") as db:  # the weights came as xorbs, for alice/big
        assert db.execute("SELECT DISTINCT account, model FROM hf_xet_xorbs").fetchall() == [("alice", "alice/big")]
    shown = remote_json(server, token, "show", "alice/big")
    assert {f["path"]: f["sha256"] for f in shown["files"]} == {p: Digest.of(b).hex for p, b in FILES.items()}
    assert info.oid == shown["digest"].removeprefix("sha256:")[:40]
    assert remote_json(server, token, "verify", "alice/big@1")["ok"] is True
    events = server.client(token).get("/api/v1/models/alice/big/events").json()
    assert [e["action"] for e in events] == ["push"]
    downloaded = server.client(token).get("/alice/big/resolve/main/weights/model.safetensors")
    assert hashlib.sha256(downloaded.content).hexdigest() == Digest.of(WEIGHTS).hex


def test_a_malicious_pickle_sent_through_xet_is_refused_with_its_reason(
    small: tuple[Server, str, HfApi], make_model: Any
) -> None:
    api = small[2]
    evil = pickle.dumps((Exploit(), os.urandom(THRESHOLD)))
    with pytest.raises(HfHubHTTPError) as refused:
        api.upload_folder(folder_path=make_model({**FILES, "model.pkl": evil}), repo_id="alice/evil")
    assert_refused_as_unsafe(refused, small, "alice/evil")


def test_the_token_route_needs_a_writer_of_the_namespace(small: tuple[Server, str, HfApi]) -> None:
    server, token, _ = small
    assert server.client(None).get("/api/models/alice/m/xet-write-token/main").status_code == 401
    bob = server.add_user("bob")
    assert server.client(bob).get("/api/models/alice/m/xet-write-token/main").status_code == 403
    _xet_token(server, token)


def test_the_cas_routes_need_a_live_xet_token(small: tuple[Server, str, HfApi]) -> None:
    server, token, _ = small
    xorb = _xorb(b"x" * 100)
    path = "/v1/xorbs/default/" + "ab" * 32
    for bad in (None, token, "A" * 43):  # none, the API token itself, a made-up one
        answer = _cas(server, bad, "POST", path, xorb)
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    xet = _xet_token(server, token)
    assert _cas(server, xet, "POST", path, xorb).json() == {"was_inserted": True}
    assert _cas(server, xet, "POST", path, xorb).json() == {"was_inserted": False}
    assert _cas(server, xet, "GET", "/v1/chunks/default-merkledb/" + "cd" * 32).status_code == 404


def test_a_truncated_or_malformed_xorb_is_a_422_and_stores_nothing(small: tuple[Server, str, HfApi]) -> None:
    server, token, _ = small
    xet = _xet_token(server, token)
    before = visible_blobs(server.home)
    whole = _xorb(b"a" * 1000, b"b" * 1000)
    cases = {
        "truncated": whole[:-10],
        "header cut": whole[:1012],
        "unknown scheme": whole[:4] + b"\x09" + whole[5:],
        "bad lz4": b"\x00\x05\x00\x00\x01\x10\x00\x00" + b"junk!",
        "empty": b"",
    }
    for why, body in cases.items():
        answer = _cas(server, xet, "POST", "/v1/xorbs/default/" + "ef" * 32, body)
        assert answer.status_code == 422, (why, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "xorb" in answer.json()["detail"] and str(server.home) not in answer.text, why
    assert _cas(server, xet, "POST", "/v1/xorbs/other/" + "ef" * 32, whole).status_code == 422
    assert _cas(server, xet, "POST", "/v1/xorbs/default/not-a-hash", whole).status_code == 422
    assert visible_blobs(server.home) == before


def test_a_xorb_or_shard_announced_over_its_limit_is_a_413_before_its_body_is_read(
    small: tuple[Server, str, HfApi],
) -> None:
    server, token, _ = small
    xet = _xet_token(server, token)
    url = urlsplit(server.base_url)
    for path, length in ((f"/v1/xorbs/default/{'ab' * 32}", XORB_MAX_BYTES + 1), ("/v1/shards", SHARD_MAX_BYTES + 1)):
        head = (
            f"POST {CAS}{path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {xet}\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
        with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
            conn.sendall(head + b"\x00" * 1000)
            answer = conn.recv(4096)
        assert b" 413 " in answer.split(b"\r\n")[0], answer[:200]


def test_a_shard_may_name_only_xorbs_its_caller_sent_for_the_model(small: tuple[Server, str, HfApi]) -> None:
    server, token, _ = small
    data = os.urandom(5000)
    sha = hashlib.sha256(data).hexdigest()
    xorb_hex = "12" * 32
    bob = server.add_user("bob")
    bob_xet = _xet_token(server, bob, "bob/m")
    assert _cas(server, bob_xet, "POST", f"/v1/xorbs/default/{xorb_hex}", _xorb(data)).status_code == 200
    xet = _xet_token(server, token)
    unknown = _cas(server, xet, "POST", "/v1/shards", _shard(xorb_hex, 0, 1, len(data), sha))
    assert unknown.status_code == 422 and "did not upload" in unknown.json()["detail"]  # bob's xorb is not alice's
    assert str(server.home) not in unknown.text
    assert _cas(server, xet, "POST", f"/v1/xorbs/default/{xorb_hex}", _xorb(data)).status_code == 200
    assert _cas(server, xet, "POST", "/v1/shards", _shard(xorb_hex, 0, 2, len(data), sha)).status_code == 422
    wrong_size = _cas(server, xet, "POST", "/v1/shards", _shard(xorb_hex, 0, 1, len(data) + 1, sha))
    assert wrong_size.status_code == 422
    lying = _cas(server, xet, "POST", "/v1/shards", _shard(xorb_hex, 0, 1, len(data), "00" * 32))
    assert lying.status_code == 422 and "does not hash" in lying.json()["detail"]
    assert _cas(server, xet, "POST", "/v1/shards", b"not a shard").status_code == 422
    truncated = _shard(xorb_hex, 0, 1, len(data), sha)[:100]
    assert _cas(server, xet, "POST", "/v1/shards", truncated).status_code == 422
    assert _cas(server, xet, "POST", "/v1/shards", _shard(xorb_hex, 0, 1, len(data), sha)).json() == {"result": 1}


def test_a_token_one_server_issued_works_on_another_on_the_same_database(
    make_server: Callable[..., Server], database_url: str | None, make_model: Any
) -> None:
    """Two `aiprov serve` processes on one database (SQLite, and PostgreSQL as many machines share it) and one blob
    store: the real client gets its token from one and sends xorbs and the shard to the CAS URL of the other."""
    env = {"AIPROV_MAX_BODY_MB": str(BODY_MB)}
    server = make_server(env=env, database_url=database_url)
    token = server.add_user("alice")
    if database_url is not None:
        env["AIPROV_DATABASE_URL"] = database_url
    other = start_server(server.home, server.admin_token, env=env)
    try:
        xet = _xet_token(server, token)
        data = os.urandom(5000)
        xorb_hex = "34" * 32
        assert _cas(other, xet, "POST", f"/v1/xorbs/default/{xorb_hex}", _xorb(data)).status_code == 200
        shard = _shard(xorb_hex, 0, 1, len(data), hashlib.sha256(data).hexdigest())
        assert _cas(server, xet, "POST", "/v1/shards", shard).json() == {"result": 1}
        api = HfApi(endpoint=other.base_url, token=token)
        api.upload_folder(folder_path=make_model(FILES), repo_id="alice/two")
        assert remote_json(server, token, "verify", "alice/two@1")["ok"] is True
    finally:
        other.stop()


def test_the_lfs_path_stays_when_xet_is_disabled(
    small: tuple[Server, str, HfApi], make_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, token, api = small
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    api.upload_folder(folder_path=make_model(FILES), repo_id="alice/lfs")
    assert remote_json(server, token, "verify", "alice/lfs@1")["ok"] is True
