"""`--from-log`: entries read as tlog-tiles are trusted only when they rebuild the root the pinned key signed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from aiprov.config import Container
from aiprov.core import tiles
from aiprov.core.checkpoint import Checkpoint
from aiprov.core.note import Signer, sign_note
from aiprov.errors import VerificationError
from aiprov.services.reputation import recompute


def fill(hub: Container) -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)
    with hub.db.unit(write=True) as u:
        u.add_event(actor="alice", action="claim", subject="sha256:" + "a" * 64, model="alice/m", details={}, now=now)
        for auditor in ("bob", "carol"):
            details = {"target": "claim", "claim_id": 0, "verdict": "refuted"}
            u.add_event(
                actor=auditor, action="audit", subject="sha256:" + "a" * 64, model="alice/m", details=details, now=now
            )
        for i in range(300):  # more than one entry bundle
            u.add_event(
                actor="x", action="download", subject="sha256:" + "b" * 64, model="alice/m", details={"i": i}, now=now
            )


def test_the_log_recomputation_matches_the_tables_and_spans_every_bundle(
    make_container: Callable[..., Container],
) -> None:
    hub = make_container()
    fill(hub)
    fetched: list[str] = []

    def fetch(path: str) -> bytes:
        fetched.append(path)
        return hub.log.tile(path)

    from_log = recompute(hub.log.latest().note, hub.trusted_log_verifier, fetch)
    assert [r.to_json() for r in from_log] == [r.to_json() for r in hub.reputation.all()]
    assert fetched == [b.path for b in tiles.entry_bundles_for_size(hub.log.size())] and len(fetched) == 2
    assert {r.account: r.score for r in from_log} == {"bob": 3, "carol": 3, "alice": -20}


def test_an_altered_entry_or_another_key_is_refused(make_container: Callable[..., Container]) -> None:
    hub = make_container()
    fill(hub)
    note = hub.log.latest().note

    def altered(path: str) -> bytes:
        data = hub.log.tile(path)
        return data.replace(b'"verdict":"refuted"', b'"verdict":"confirm"', 1) if path.endswith("000") else data

    with pytest.raises(VerificationError, match="do not hash to the root"):
        recompute(note, hub.trusted_log_verifier, altered)
    with pytest.raises(VerificationError):
        recompute(note, Signer.generate(hub.trusted_log_verifier.name).verifier, hub.log.tile)


def test_a_log_that_does_not_extend_the_trusted_checkpoint_is_refused(make_container: Callable[..., Container]) -> None:
    hub = make_container()
    fill(hub)
    earlier = hub.log.latest().note
    with hub.db.unit(write=True) as u:
        u.add_event(
            actor="x", action="flag", subject="sha256:" + "a" * 64, model="alice/m", details={}, now=datetime.now(UTC)
        )
    note, verifier = hub.log.latest().note, hub.trusted_log_verifier
    assert recompute(note, verifier, hub.log.tile, trusted=earlier)  # it only grew
    signer = hub.log_signer

    def forged(size: int) -> str:
        return sign_note(Checkpoint(signer.name, size, b"\x07" * 32).to_body(), [signer])

    with pytest.raises(VerificationError, match="not the trusted checkpoint's"):
        recompute(note, verifier, hub.log.tile, trusted=forged(5))
    with pytest.raises(VerificationError, match="shrank"):
        recompute(note, verifier, hub.log.tile, trusted=forged(10_000))
