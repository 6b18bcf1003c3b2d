"""`aiprov gc`: blobs no version or dataset holds are removed past the grace period; nothing else ever is."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tests.conftest import MakeModel
from tests.support.cli import cli, cli_json

from aiprov.config import Container
from aiprov.core.digest import Digest
from aiprov.records import ModelFilter
from aiprov.services.registry import PushRequest


def orphan(hub: Container, data: bytes, age_s: float) -> Digest:
    """A blob stored as an upload leaves it, with no commit, `age_s` seconds ago."""
    writer = hub.blobs.writer()
    writer.write(data)
    digest, _ = writer.commit()
    then = time.time() - age_s
    os.utime(hub.blobs.path_of(digest), (then, then))
    return digest


def test_only_old_unreferenced_blobs_go(hub: Container, make_model: MakeModel, tmp_path: Path) -> None:
    pushed = hub.registry.push(make_model({"w.bin": b"model bytes", "c.json": b"{}"}), PushRequest("alice/m"))
    csv = tmp_path / "d.csv"
    csv.write_text("a,y\n1,0\n2,1\n")
    hub.datasets.add(csv, "alice/d", "y")
    for entry in pushed.version.manifest.entries:  # referenced blobs are kept however old
        os.utime(hub.blobs.path_of(entry.sha256), (0, 0))
    old = orphan(hub, b"uploaded, never committed", 2 * 86400)
    young = orphan(hub, b"uploaded a minute ago", 60)

    dry = hub.gc.collect(dry_run=True)
    assert [d for d, _ in dry.removed] == [old] and hub.blobs.exists(old)
    report = hub.gc.collect()
    assert [d for d, _ in report.removed] == [old] and report.removed_bytes == len(b"uploaded, never committed")
    assert report.kept_in_use == 3 and report.kept_young == 1
    assert not hub.blobs.exists(old) and hub.blobs.exists(young)
    assert hub.verification.verify("alice/m").ok
    assert hub.datasets.test_set("alice/d").x.shape == (2, 1)
    assert all(e.action != "gc" for e in hub.registry.usage("alice/m"))  # the gc event is about no model
    assert hub.gc.collect(older_than_s=0).removed == [(young, len(b"uploaded a minute ago"))]
    assert hub.gc.collect(older_than_s=0).removed == []


def test_gc_cli_reports_and_logs(home: Path) -> None:
    from aiprov.config import load_container

    c = load_container(home)
    try:
        digest = orphan(c, b"x" * 1000, 3 * 86400)
    finally:
        c.close()
    assert cli_json(home, "gc", "--dry-run")["removed"] == 1
    report = cli_json(home, "gc", "--older-than", "2d")
    assert report["removed"] == 1 and report["removed_bytes"] == 1000
    assert report["blobs"] == [{"digest": str(digest), "size": 1000}]
    entry = cli_json(home, "log", "entry", "0")
    assert entry["event"]["action"] == "gc" and entry["event"]["details"]["removed"] == 1
    code, _, err = cli(home, "gc", "--older-than", "soon")
    assert code == 2 and "not an age" in err


def test_a_version_never_refers_to_a_collected_blob(hub: Container, make_model: MakeModel) -> None:
    """A collection with no grace period racing a push: the push's transaction finds the blob gone and fails,
    rather than registering a version whose bytes are missing; pushed again, it works."""
    from aiprov.errors import BackendError

    model = make_model({"w.bin": b"racing bytes"})
    original = hub.registry._register

    def collect_then_register(*args: object, **kwargs: object) -> object:
        hub.gc.collect(older_than_s=0)  # runs after the blobs were stored, before the version is recorded
        return original(*args, **kwargs)  # type: ignore[arg-type]

    hub.registry._register = collect_then_register  # type: ignore[method-assign]
    try:
        with pytest.raises(BackendError, match="vanished before the version was recorded"):
            hub.registry.push(model, PushRequest("alice/race"))
    finally:
        hub.registry._register = original  # type: ignore[method-assign]
    assert hub.registry.list(ModelFilter()) == []
    pushed = hub.registry.push(model, PushRequest("alice/race"))
    assert hub.verification.verify(f"alice/race@{pushed.version.number}").ok
