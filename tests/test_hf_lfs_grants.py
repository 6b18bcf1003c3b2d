"""LFS grants and their capability URLs (`services.hf_lfs`) on SQLite and PostgreSQL: single use, expiry at its
edge, only the hash stored, and a commit may name only what its caller received."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from aiprov.config import Container
from aiprov.core.digest import Digest
from aiprov.errors import Gone, InvalidInput, NotFound
from aiprov.services.hf_lfs import LfsUploads, capability_hash

START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TTL_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def lfs(make_container: Callable[..., Container], database_url: str | None) -> tuple[LfsUploads, Clock, Container]:
    hub = make_container(database_url)
    clock = Clock()
    return LfsUploads(hub.checked_db, hub.blobs, clock=clock, ttl_s=TTL_S, max_blob_bytes=2**20), clock, hub


def _grant(service: LfsUploads, data: bytes, account: str = "alice", model: str = "alice/m") -> str:
    [answer] = service.batch(account, model, [(hashlib.sha256(data).hexdigest(), len(data))])
    assert answer.capability is not None and answer.error is None
    return answer.capability


def test_a_capability_takes_one_upload_and_one_holder_at_a_time(lfs: tuple[LfsUploads, Clock, Container]) -> None:
    service, _, hub = lfs
    data = os.urandom(100)
    capability = _grant(service, data)
    first = service.receive(capability)
    with pytest.raises(Gone, match="in use by another upload"):
        service.receive(capability)
    first.write(data)
    assert first.finish() == Digest.of(data)
    with pytest.raises(Gone, match="used already"):
        service.receive(capability)
    assert hub.blobs.exists(Digest.of(data))


def test_a_refused_body_gives_the_capability_back_and_stores_nothing(lfs: tuple[LfsUploads, Clock, Container]) -> None:
    service, _, hub = lfs
    data = os.urandom(100)
    capability = _grant(service, data)
    wrong = service.receive(capability)
    wrong.write(os.urandom(100))
    with pytest.raises(InvalidInput, match="do not hash to the oid"):
        wrong.finish()
    assert not hub.blobs.exists(Digest.of(data))
    too_long = service.receive(capability)
    with pytest.raises(InvalidInput, match="more bytes than the 100"):
        too_long.write(data + b"x")
    retry = service.receive(capability)
    retry.write(data)
    retry.finish()
    service.check_commit("alice", "alice/m", [("w.bin", Digest.of(data))])


def test_a_capability_expires_at_its_ttl_exactly(lfs: tuple[LfsUploads, Clock, Container]) -> None:
    service, clock, _ = lfs
    data = os.urandom(100)
    capability = _grant(service, data)
    clock.now = START + timedelta(seconds=TTL_S)
    with pytest.raises(Gone, match="expired"):
        service.receive(capability)
    clock.now = START + timedelta(seconds=TTL_S) - timedelta(microseconds=1)
    service.receive(capability).abort()


def test_only_the_hash_of_a_capability_is_stored(lfs: tuple[LfsUploads, Clock, Container]) -> None:
    service, _, hub = lfs
    capability = _grant(service, b"weights")
    with hub.checked_db.engine.connect() as conn:
        rows = conn.execute(text("SELECT capability_hash, account, model, sha256, size, state FROM hf_lfs_uploads"))
        assert [tuple(r) for r in rows] == [
            (capability_hash(capability), "alice", "alice/m", hashlib.sha256(b"weights").hexdigest(), 7, "pending")
        ]
    with pytest.raises(NotFound, match="no such upload URL"):
        service.receive(capability_hash(capability)[:43])


def test_a_commit_names_only_what_its_caller_received_into_that_model(
    lfs: tuple[LfsUploads, Clock, Container],
) -> None:
    service, clock, hub = lfs
    data = os.urandom(100)
    digest = Digest.of(data)
    receiver = service.receive(_grant(service, data))
    with pytest.raises(InvalidInput, match="did not upload"):  # granted, not yet received
        service.check_commit("alice", "alice/m", [("w.bin", digest)])
    receiver.write(data)
    receiver.finish()
    service.check_commit("alice", "alice/m", [("w.bin", digest)])
    for account, model in (("bob", "alice/m"), ("alice", "alice/other")):
        with pytest.raises(InvalidInput, match="did not upload"):
            service.check_commit(account, model, [("w.bin", digest)])
    [stored] = service.batch("bob", "bob/m", [(digest.hex, 100)])  # stored already: no upload, but a grant
    assert stored.capability is None and stored.error is None
    service.check_commit("bob", "bob/m", [("w.bin", digest)])
    clock.now = START + timedelta(seconds=TTL_S)
    with pytest.raises(InvalidInput, match="or its upload expired"):
        service.check_commit("alice", "alice/m", [("w.bin", digest)])
    with hub.checked_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM hf_lfs_uploads")).scalar() == 2
    service.batch("carol", "carol/m", [])  # prunes every expired grant
    with hub.checked_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM hf_lfs_uploads")).scalar() == 0


def test_a_batch_refuses_bad_objects_one_by_one(lfs: tuple[LfsUploads, Clock, Container]) -> None:
    service, _, _ = lfs
    stored = os.urandom(10)
    receiver = service.receive(_grant(service, stored))
    receiver.write(stored)
    receiver.finish()
    objects = [("ZZ", 1), ("a" * 64, 2**20 + 1), ("b" * 64, 2**20), (Digest.of(stored).hex, 11)]
    answers = service.batch("alice", "alice/m", objects)
    assert [a.error[0] if a.error else None for a in answers] == [422, 413, None, 422]
    assert answers[2].capability is not None  # the limit itself is allowed
