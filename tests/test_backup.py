"""`aiprov backup` and `aiprov restore`: a hub wiped and restored on a new home (across SQLite and PostgreSQL)
verifies every version and proves its log consistent with a checkpoint taken before the backup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import MakeModel
from tests.support.cli import cli, cli_json

from aiprov.config import Container, load_settings
from aiprov.core.checkpoint import Checkpoint
from aiprov.core.merkle import verify_consistency
from aiprov.core.note import Note
from aiprov.errors import Conflict, IntegrityError, InvalidInput

Env = dict[str, str | None]


def env_for(url: str | None) -> Env:
    return {"AIPROV_DATABASE_URL": url}


def populate(home: Path, env: Env, make_model: MakeModel) -> None:
    assert cli(home, "init", env=env).code == 0
    cli_json(home, "push", str(make_model({"w.bin": b"one", "cfg/a.json": b"{}"})), "--name", "alice/a", env=env)
    cli_json(home, "push", str(make_model({"w.bin": b"two"})), "--name", "alice/a", "--tag", "x", env=env)
    cli_json(home, "push", str(make_model({"m.bin": b"\x00" * 70_000})), "--name", "bob/b", env=env)
    cli_json(home, "alias", "alice/a@1", "prod", env=env)


def checkpoint(home: Path, env: Env) -> Checkpoint:
    note = cli(home, "log", "checkpoint", env=env).out
    return Checkpoint.parse(Note.parse(note).text)


@pytest.fixture(params=["sqlite-sqlite", "sqlite-postgres", "postgres-sqlite"])
def engines(request: pytest.FixtureRequest) -> tuple[Env, Env]:
    source, target = request.param.split("-")

    def url(kind: str) -> str | None:
        return request.getfixturevalue("postgres_url") if kind == "postgres" else None

    return env_for(url(source)), env_for(url(target))


def test_a_hub_wiped_and_restored_verifies_every_version_and_its_old_checkpoint(
    tmp_path: Path, make_model: MakeModel, engines: tuple[Env, Env]
) -> None:
    source, target = engines
    old, new, saved = tmp_path / "old", tmp_path / "new", tmp_path / "backup"
    populate(old, source, make_model)
    before = checkpoint(old, source)
    cli_json(old, "push", str(make_model({"w.bin": b"three"})), "--name", "alice/a", env=source)  # after `before`
    key = cli_json(old, "log", "key", env=source)

    made = cli_json(old, "backup", str(saved), env=source)
    assert made["blobs"] == 5 and made["tables"]["versions"] == 4 and made["tree_size"] == before.size + 1
    assert (saved / "log.key").stat().st_mode & 0o777 == 0o600
    shutil.rmtree(old)  # the wipe (a PostgreSQL source schema is simply never used again)

    restored = cli_json(new, "restore", str(saved), env=target)
    assert restored["tree_size"] == made["tree_size"] and restored["root_hash"] == made["root_hash"]
    assert cli_json(new, "log", "key", env=target) == key
    listed = {m["name"]: m["versions"] for m in cli_json(new, "ls", env=target)}
    versions = [f"alice/a@{n}" for n in (1, 2, 3)] + ["bob/b@1"]
    for ref in versions:
        report = cli_json(new, "verify", ref, env=target)
        assert report["ok"], (ref, report)
    assert listed == {"alice/a": 3, "bob/b": 1} and cli_json(new, "show", "alice/a@prod", env=target)["version"] == 1

    proof = cli_json(new, "log", "consistency", "--from", str(before.size), env=target)
    verify_consistency(
        before.size, proof["size2"], [bytes.fromhex(h) for h in proof["hashes"]], before.root_hash,
        bytes.fromhex(proof["root2"]),
    )  # fmt: skip
    pulled = tmp_path / "pulled"
    cli_json(new, "pull", "bob/b@1", str(pulled), env=target)
    assert (pulled / "m.bin").read_bytes() == b"\x00" * 70_000

    # The restored hub goes on: new rows get new ids (PostgreSQL's sequences moved past the restored rows).
    after = cli_json(new, "push", str(make_model({"w.bin": b"four"})), "--name", "alice/a", env=target)
    assert after["version"] == 4 and cli_json(new, "verify", "alice/a@4", env=target)["ok"]
    assert cli_json(new, "rate", "alice/a@4", "--stars", "5", env=target)["stars"] == 5


def test_restore_refuses_a_tampered_backup_or_a_home_in_use_and_keeps_nothing(
    tmp_path: Path, make_model: MakeModel
) -> None:
    old, saved = tmp_path / "old", tmp_path / "backup"
    populate(old, {}, make_model)
    cli_json(old, "backup", str(saved))

    ran = cli(old, "backup", str(saved))  # never over an existing directory
    assert ran.code == InvalidInput.exit_code and "already exists" in ran.error()
    ran = cli(old, "restore", str(saved))  # a home with a hub in it
    assert ran.code == Conflict.exit_code and "restore needs an empty one" in ran.error()
    ran = cli(tmp_path / "h1", "restore", str(tmp_path))
    assert ran.code == InvalidInput.exit_code and "is not an aiprov backup" in ran.error()

    rows = saved / "tables" / "events.jsonl"
    original = rows.read_bytes()
    rows.write_bytes(original.replace(b'"alias"', b'"alibi"'))
    ran = cli(tmp_path / "h2", "restore", str(saved))
    assert ran.code == IntegrityError.exit_code and "tables/events.jsonl" in ran.error()
    rows.write_bytes(original)

    blob = next((saved / "blobs").iterdir())
    blob.write_bytes(blob.read_bytes() + b"!")
    h3 = tmp_path / "h3"
    ran = cli(h3, "restore", str(saved))
    assert ran.code == IntegrityError.exit_code
    fresh = cli(h3, "ls")  # nothing half-restored: the home has no hub, and a retry could proceed
    assert fresh.code != 0 and "aiprov init" in fresh.error()


def test_a_backup_holds_only_what_the_snapshot_names(tmp_path: Path, make_model: MakeModel) -> None:
    from tests.support.cli import run

    old, saved = tmp_path / "old", tmp_path / "backup"
    populate(old, {}, make_model)
    hub = Container(load_settings(old))
    writer = hub.blobs.writer()  # uploaded but never committed into a version: not the hub's, not backed up
    writer.write(b"stray bytes")
    stray, _ = writer.commit()
    hub.close()
    made = cli_json(old, "backup", str(saved))
    manifest: dict[str, Any] = json.loads((saved / "backup.json").read_text())
    assert set(manifest["files"]) == {"log.key", *(f"tables/{t}.jsonl" for t in made["tables"])}
    assert sorted(p.name for p in (saved / "blobs").iterdir()) == sorted(
        {f["sha256"] for v in ("alice/a@1", "alice/a@2", "bob/b@1") for f in cli_json(old, "show", v)["files"]}
    )
    assert stray.hex not in {p.name for p in (saved / "blobs").iterdir()}
    assert run("backup", "--help").code == 0
