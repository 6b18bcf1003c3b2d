"""The log over HTTP: the checkpoint opens with the log key, proofs verify with the core's verifiers, tiles match."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from apitools import Server, assert_problem, push
from fastapi.testclient import TestClient

from aiprov.config import Container, Settings
from aiprov.core import merkle, tiles
from aiprov.core.note import Verifier
from aiprov.services.transparency import open_checkpoint


def _grow(server: Server, make_model: Any, events: int = 0) -> None:
    """Push two models and append `events` more log entries, in-process, on the server's home."""
    container = Container(Settings(home=server.home, actor="root"))
    try:
        push(container, make_model({"a.bin": b"a"}), "alice/one")
        push(container, make_model({"b.bin": b"b", "c/d.bin": b"d"}), "alice/two")
        if events:
            container.registry  # noqa: B018 - hooks checkpoint signing into the write units
            with container.db.unit(write=True) as u:
                for i in range(events):
                    u.add_event(
                        actor="root", action="test", subject=f"n:{i}", model=None, details={}, now=datetime.now(UTC)
                    )
    finally:
        container.close()


def test_checkpoint_opens_with_the_log_key_and_proofs_verify(server: Server, make_model: Any) -> None:
    _grow(server, make_model)
    http = server.client()
    key = http.get("/api/v1/log/key").text.strip()
    assert key == (server.home / "log.pub").read_text().strip()
    note = http.get("/api/v1/log/checkpoint")
    assert note.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(note.text, Verifier.parse(key))
    assert note.text == http.get("/checkpoint").text
    size = checkpoint.size
    for index in range(size):
        entry = http.get(f"/api/v1/log/entries/{index}").json()
        data = _entry_bytes(server, index)
        assert bytes.fromhex(entry["leaf_hash"]) == merkle.leaf_hash(data)
        proof = http.get("/api/v1/log/proof/inclusion", params={"index": index, "size": size}).json()
        merkle.verify_inclusion(
            merkle.leaf_hash(data), index, size, [bytes.fromhex(h) for h in proof["hashes"]], checkpoint.root_hash
        )
    for old in range(1, size):
        proof = http.get("/api/v1/log/proof/consistency", params={"from": old, "to": size}).json()
        assert bytes.fromhex(proof["root2"]) == checkpoint.root_hash
        merkle.verify_consistency(
            old, size, [bytes.fromhex(h) for h in proof["hashes"]], bytes.fromhex(proof["root1"]), checkpoint.root_hash
        )


def _entry_bytes(server: Server, index: int) -> bytes:
    container = Container(Settings(home=server.home))
    try:
        return container.log.entry(index)[0]
    finally:
        container.close()


def test_tiles_follow_the_log_like_a_tiles_client(server: Server, make_model: Any) -> None:
    _grow(server, make_model, events=300)
    http = server.client()
    checkpoint = open_checkpoint(http.get("/checkpoint").text, Verifier.parse(http.get("/api/v1/log/key").text.strip()))
    size = checkpoint.size
    assert size > 256
    leaves: list[bytes] = []
    entries: list[bytes] = []
    for tile in tiles.tiles_for_size(size):
        r = http.get("/" + tile.path)
        assert r.status_code == 200, (tile.path, r.text)
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        if tile.level == 0:
            leaves += tiles.decode_tile(r.content, tile.width)
    for bundle in tiles.entry_bundles_for_size(size):
        entries += tiles.decode_entry_bundle(http.get("/" + bundle.path).content, bundle.width)
    assert len(leaves) == len(entries) == size
    assert [merkle.leaf_hash(e) for e in entries] == leaves
    assert merkle.root_from_leaf_hashes(leaves) == checkpoint.root_hash


def test_verify_endpoint_reports_every_check(server: Server, make_model: Any) -> None:
    _grow(server, make_model)
    report = server.client().get("/api/v1/models/alice/two/versions/1/verify").json()
    assert report["ok"] is True and report["name"] == "alice/two"
    assert {"manifest", "bytes", "log.entry", "log.checkpoint", "log.inclusion"} <= {
        c["check"] for c in report["checks"]
    }


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/tile/0/000.p/256", 422),  # a second name for the full tile
        ("/tile/0/0", 422),
        ("/tile/x/000", 422),
        ("/tile/0/999", 404),
        ("/tile/entries/000.p/200", 404),
        ("/api/v1/log/entries/99999", 404),
        ("/api/v1/log/proof/inclusion?index=5&size=99999", 404),
        ("/api/v1/log/proof/inclusion?index=5&size=2", 422),
        ("/api/v1/log/proof/consistency?from=3&to=2", 422),
    ],
)
def test_bad_log_requests_are_problems(client: TestClient, path: str, status: int) -> None:
    assert_problem(client.get(path), status)
