"""A real `aiprov serve` refuses a decompression bomb within its scan limit and answers other requests meanwhile."""

from __future__ import annotations

import bz2
import gzip
import lzma
import threading
import time
import zlib
from collections.abc import Callable

import httpx
import pytest
from apitools import Hub, Server, assert_problem, commit, upload
from fastapi.testclient import TestClient
from tests.scanning.scan_corpus import nested_zip_bomb


def _multi_stream(compress: Callable[[bytes], bytes], pairs_mib: int) -> bytes:
    """A harmless pickle of `pairs_mib` Mi NONE/POP pairs as concatenated streams (each format reads them all).

    Compressing the 1 MiB middle once and repeating it makes a large bomb in milliseconds (bz2 of the whole
    payload takes ten seconds here).
    """
    middle = compress(b"N0" * (1 << 20))
    return compress(b"\x80\x04") + middle * pairs_mib + compress(b"N.")


BOMBS: dict[str, Callable[[], bytes]] = {
    "gzip": lambda: _multi_stream(lambda d: gzip.compress(d, 9), 256),
    "bz2": lambda: _multi_stream(lambda d: bz2.compress(d, 1), 256),
    "xz": lambda: _multi_stream(lzma.compress, 256),
    "lzma": lambda: _multi_stream(lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE), 256),
    "zlib": lambda: zlib.compress(b"\x80\x04" + b"N0" * (64 << 20) + b"N.", 1),
    "nested-zip": nested_zip_bomb,
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_bomb_is_refused_within_the_limits_while_the_server_keeps_answering(
    kind: str, make_server: Callable[..., Server]
) -> None:
    # Ratio and cap wide open for the compressed streams: only the time limit can stop those scans (the walk would
    # take minutes). The nested zip meets the default decompression cap.
    wide = {"AIPROV_SCAN_MAX_RATIO": "100000", "AIPROV_SCAN_RATIO_ALLOWANCE_MB": "4096"}
    server = make_server(env={"AIPROV_SCAN_MAX_SECONDS": "3", **({} if kind == "nested-zip" else wide)})
    token = server.add_user("alice")
    alice = server.client(token)
    bomb = BOMBS[kind]()
    assert len(bomb) < 2 << 20  # under 2 MiB, for hundreds of MiB to gigabytes decompressed
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
    reasons = [f["reason"] for f in problem["findings"]]
    if kind == "nested-zip":
        assert reasons == ["decompression-limit"]
        assert seconds[0] < 10.0
    else:
        assert reasons == ["time-limit"]
        assert 3.0 <= seconds[0] < 30.0
        assert answered_meanwhile >= 5  # each within 2 s, on a machine whose two cores the test suite shares
    assert reader.get("/api/v1/models").status_code == 200
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
