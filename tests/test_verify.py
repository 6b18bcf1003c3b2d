"""`verify` catches tampering: with bytes, with event rows, with history, with checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import MakeModel
from tests.support.tamper import rewrite_history

from aiprov import signing
from aiprov.adapters.db import log
from aiprov.config import Container
from aiprov.core.note import Signer
from aiprov.errors import BackendError
from aiprov.records import ModelFilter
from aiprov.services.registry import PushRequest
from aiprov.services.transparency import LogService
from aiprov.services.verification import VerifyReport


def failed(report: VerifyReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


def detail(report: VerifyReport, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


@pytest.fixture
def pushed(hub: Container, make_model: MakeModel) -> Path:
    root = make_model({"weights.bin": b"\x01" * 1000, "cfg/config.json": b"{}"})
    hub.registry.push(root, PushRequest("alice/m"))
    hub.registry.alias("alice/m@1", "prod")
    return root


def test_untouched_version_passes_every_check(hub: Container, pushed: Path) -> None:
    report = hub.verification.verify("alice/m@1")
    assert report.ok, failed(report)
    names = [c.name for c in report.checks]
    assert names == [
        "manifest",
        "bytes",
        "log.entry",
        "log.checkpoint",
        "log.inclusion",
        "log.consistency",
        "log.history",
        "actor",
        "lineage",
        "metadata",
        "tags",
        "formats",
        "alias:prod",
    ]
    assert "first use" in detail(report, "log.consistency")
    assert detail(hub.verification.verify("alice/m"), "log.consistency").startswith("consistent with the trusted")


def test_altered_blob_fails_naming_the_file(hub: Container, pushed: Path) -> None:
    _, v = hub.registry.show("alice/m")
    entry = next(e for e in v.manifest.entries if e.path == "weights.bin")
    hub.blobs.path_of(entry.sha256).write_bytes(b"\x02" * 1000)
    problems = failed(hub.verification.verify("alice/m"))
    assert list(problems) == ["bytes"]
    assert "weights.bin" in problems["bytes"]


def test_local_copy_with_one_changed_byte_or_extra_file_fails(hub: Container, pushed: Path) -> None:
    assert hub.verification.verify("alice/m", path=pushed).ok
    (pushed / "weights.bin").write_bytes(b"\x01" * 999 + b"\x00")
    (pushed / "extra.txt").write_bytes(b"sneaky")
    detail = failed(hub.verification.verify("alice/m", path=pushed))["local"]
    assert "weights.bin differs" in detail and "extra.txt is not in the registered model" in detail


def test_rewritten_event_row_is_caught(hub: Container, pushed: Path) -> None:
    with hub.db.engine.begin() as conn:
        conn.execute(text("UPDATE events SET actor = 'mallory' WHERE action = 'push'"))
    problems = failed(hub.verification.verify("alice/m"))
    assert "log.entry" in problems and "row was altered" in problems["log.entry"]


def test_rewritten_history_fails_consistency_with_the_trusted_checkpoint(
    hub: Container, pushed: Path, make_model: MakeModel
) -> None:
    assert hub.verification.verify("alice/m").ok  # the client now trusts this checkpoint
    trusted = hub.settings.trusted_checkpoint_file.read_text()
    _, _, alias_event = hub.log.entry(1)
    assert alias_event.action == "alias"
    forged = alias_event.entry().replace(b'"prod"', b'"test"')
    rewrite_history(hub, 1, forged)
    problems = failed(hub.verification.verify("alice/m"))
    # The forged log also no longer backs the alias row (prod) and names an alias no row has (test).
    assert list(problems) == ["log.consistency", "alias:prod", "alias:test"]
    assert "history was rewritten" in problems["log.consistency"]
    hub.registry.push(make_model({"w": b"later"}), PushRequest("bob/x"))  # the forged log grows on
    problems = failed(hub.verification.verify("alice/m"))
    assert next(iter(problems)) == "log.consistency" and "not an extension" in problems["log.consistency"]
    assert hub.settings.trusted_checkpoint_file.read_text() == trusted, "trust never advances past a failure"


def test_checkpoint_signed_by_another_key_is_refused(hub: Container, pushed: Path) -> None:
    with hub.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM log_checkpoints"))
    LogService(hub.db, Signer.generate(hub.log.origin), clock=hub.clock).publish()
    problems = failed(hub.verification.verify("alice/m"))
    assert list(problems) == ["log.checkpoint"]


def test_state_change_and_log_append_commit_together(
    hub: Container, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version row is flushed before the append; when the append fails, the version vanishes with it."""

    def broken_append(conn: object, entries: object) -> int:
        raise BackendError("disk full (simulated)")

    monkeypatch.setattr(log, "append", broken_append)
    with pytest.raises(BackendError, match="disk full"):
        hub.registry.push(make_model({"w": b"1"}), PushRequest("alice/m"))
    monkeypatch.undo()
    assert hub.registry.list(ModelFilter()) == []
    assert hub.log.size() == 0


def test_recorded_signatures_are_checked(hub: Container, pushed: Path, tmp_path: Path) -> None:
    private_pem, _ = signing.generate_key_pair()
    key = signing.private_key_from_pem(private_pem)
    result = hub.signatures.sign("alice/m", key)
    assert result.recorded and not hub.signatures.sign("alice/m", key).recorded
    report = hub.verification.verify("alice/m")
    assert report.ok and any(c.name.startswith("signature:") for c in report.checks)
    with hub.db.engine.begin() as conn:
        conn.execute(text("UPDATE signatures SET bundle = replace(bundle, 'dsseEnvelope', 'dsseEnvelopX')"))
    assert any(name.startswith("signature:") for name in failed(hub.verification.verify("alice/m")))
    assert [e.action for e in hub.registry.usage("alice/m")][:1] == ["sign"]


def test_the_logged_cids_are_checked_against_the_registrys(hub: Container, pushed: Path) -> None:
    """The push entry carries the version's IPFS root CIDs, so a CID changed in the database is caught."""
    _, v = hub.registry.show("alice/m")
    assert v.cids is not None
    with hub.db.engine.connect() as conn:
        details = conn.execute(text("SELECT details FROM events WHERE action = 'push'")).scalar_one()
    assert "cids" in str(details) and str(v.cids.v1) in str(details)
    report = hub.verification.verify("alice/m")
    assert report.ok, failed(report)
    assert "with its IPFS CIDs" in next(c.detail for c in report.checks if c.name == "log.entry")
    forged = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
    with hub.db.engine.begin() as conn:
        conn.execute(text("UPDATE versions SET cid_v1 = :c"), {"c": forged})
    problems = failed(hub.verification.verify("alice/m"))
    assert list(problems) == ["log.entry"]
    assert "a CID was altered" in problems["log.entry"] and forged in problems["log.entry"]
