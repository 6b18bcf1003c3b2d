"""A registry row edited in the database is caught: `verify` names the check, `pull` refuses, `show` marks it.

The rows are edited with SQL, as someone with the database but not the log key would, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests.conftest import MakeModel
from tests.support.cli import cli as support_cli

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(tmp_path: Path, database_url: str | None) -> Cli:
    """`aiprov --home HOME ARGS…` as carol, on the parametrised database."""
    env = {"AIPROV_ACTOR": "carol", "COLUMNS": "80"}
    if database_url is not None:
        env["AIPROV_DATABASE_URL"] = database_url

    def run(*args: str) -> tuple[int, str, str]:
        return support_cli(tmp_path / "home", *args, env=env)

    return run


@pytest.fixture
def sql(tmp_path: Path, database_url: str | None) -> Callable[[str], None]:
    url = database_url or f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))

    def run(statement: str) -> None:
        with engine.begin() as conn:
            assert conn.execute(text(statement)).rowcount >= 1, statement

    return run


@pytest.fixture
def big(cli: Cli, make_model: MakeModel) -> None:
    """carol/big versions 1 (prod) and 2, with lineage, tags, licence and metadata, as the issue's example."""
    assert cli("init")[0] == 0
    code, out, err = cli("push", str(make_model({"w": b"base"})), "--name", "carol/base", "--json")
    assert code == 0, err
    base = json.loads(out)["digest"]
    for content in (b"one", b"two"):
        code, _, err = cli(
            "push", str(make_model({"w": content})), "--name", "carol/big", "--desc", "Big", "--license", "MIT",
            "--tag", "sklearn", "--parent", base, "--dataset", "iris", "--param", "depth=3",
        )  # fmt: skip
        assert code == 0, err
    assert cli("alias", "carol/big@1", "prod")[0] == 0


def checks(cli: Cli, ref: str) -> dict[str, bool]:
    code, out, _ = cli("verify", ref, "--json")
    report = json.loads(out)
    assert (code == 0) == report["ok"]
    return {c["check"]: c["ok"] for c in report["checks"]}


def assert_caught(cli: Cli, tmp_path: Path, ref: str, check: str) -> None:
    """`verify` fails `check`, `pull` refuses writing nothing, `show` marks it (human and JSON)."""
    found = checks(cli, ref)
    assert found[check] is False, found
    dest = tmp_path / "out"
    code, _, err = cli("pull", ref, str(dest))
    assert code == 6 and check in err and "refused to pull" in err
    assert not dest.exists()
    code, out, _ = cli("show", ref, "--json")
    assert code == 0 and check in [m["check"] for m in json.loads(out)["log_mismatches"]]
    code, out, err = cli("show", ref)
    assert code == 0 and "disagrees with the log" in out and check in err


def test_untampered_rows_pass_every_check_and_pull(cli: Cli, big: None, tmp_path: Path) -> None:
    for ref in ("carol/big@prod", "carol/big@1", "carol/big@2", "carol/base"):
        found = checks(cli, ref)
        assert all(found.values()), found
        assert {"actor", "lineage", "metadata", "tags", "formats"} <= found.keys()
    assert "alias:prod" in checks(cli, "carol/big@prod")
    code, out, _ = cli("show", "carol/big@prod", "--json")
    assert code == 0 and json.loads(out)["log_mismatches"] == []
    code, out, err = cli("show", "carol/big@prod")
    assert code == 0 and "disagrees" not in out + err
    assert cli("pull", "carol/big@prod", str(tmp_path / "out"))[0] == 0
    assert (tmp_path / "out" / "w").read_bytes() == b"one"


def test_moved_alias_row_is_caught(cli: Cli, big: None, sql: Callable[[str], None], tmp_path: Path) -> None:
    sql(
        "UPDATE aliases SET version_id = (SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id "
        "WHERE m.full_name = 'carol/big' AND v.number = 2) WHERE alias = 'prod'"
    )
    assert_caught(cli, tmp_path, "carol/big@prod", "alias:prod")  # serves version 2 while the log says 1
    assert checks(cli, "carol/big@1")["alias:prod"] is False  # the log's prod is no longer version 1


def test_edited_version_author_is_caught(cli: Cli, big: None, sql: Callable[[str], None], tmp_path: Path) -> None:
    sql("UPDATE versions SET author = 'mallory' WHERE number = 1")
    assert_caught(cli, tmp_path, "carol/big@1", "actor")
    assert checks(cli, "carol/big@2")["actor"] is True


def test_edited_event_actor_is_caught_and_usage_marks_it(
    cli: Cli, big: None, sql: Callable[[str], None], tmp_path: Path
) -> None:
    sql("UPDATE events SET actor = 'mallory' WHERE action = 'alias'")
    code, out, _ = cli("usage", "carol/big", "--json")
    events = json.loads(out)["events"]
    marked = {e["action"]: e["log_mismatch"] for e in events}
    assert code == 0 and "actor" in marked["alias"] and marked["push"] is None
    code, out, err = cli("usage", "carol/big")
    assert code == 0 and "(disagrees" in out and "1 event row(s) disagree" in err, out
    sql("UPDATE events SET actor = 'mallory' WHERE action = 'push'")
    assert_caught(cli, tmp_path, "carol/big@1", "log.entry")


def test_edited_file_format_is_caught(cli: Cli, big: None, sql: Callable[[str], None], tmp_path: Path) -> None:
    # a pickle relabelled as safetensors would hide from `ls --format pickle`: the push logged each file's format
    sql(
        "UPDATE version_files SET format = 'safetensors' WHERE version_id = (SELECT v.id FROM versions v "
        "JOIN models m ON m.id = v.model_id WHERE m.full_name = 'carol/big' AND v.number = 2)"
    )
    assert_caught(cli, tmp_path, "carol/big@2", "formats")
    assert checks(cli, "carol/big@1")["formats"] is True


def test_edited_tag_is_caught(cli: Cli, big: None, sql: Callable[[str], None], tmp_path: Path) -> None:
    sql("UPDATE model_tags SET tag = 'audited' WHERE tag = 'sklearn'")
    assert_caught(cli, tmp_path, "carol/big@2", "tags")


def test_edited_lineage_parents_are_caught(cli: Cli, big: None, sql: Callable[[str], None], tmp_path: Path) -> None:
    forged = {"parents": ["sha256:" + "ab" * 32], "datasets": ["iris"], "code_revision": None}
    sql(f"UPDATE versions SET lineage = '{json.dumps({**forged, 'params': {'depth': '3'}, 'metadata': {}})}'")
    assert_caught(cli, tmp_path, "carol/big@1", "lineage")


def test_edited_metadata_is_caught(cli: Cli, big: None, sql: Callable[[str], None], tmp_path: Path) -> None:
    sql("UPDATE models SET description = 'Certified safe' WHERE full_name = 'carol/big'")
    assert_caught(cli, tmp_path, "carol/big@1", "metadata")


def test_edited_version_metadata_is_caught(
    cli: Cli, big: None, sql: Callable[[str], None], tmp_path: Path, make_model: MakeModel
) -> None:
    lineage = {"parents": [], "datasets": [], "code_revision": None, "params": {}, "metadata": {"acc": 0.99}}
    sql(f"UPDATE versions SET lineage = '{json.dumps(lineage)}' WHERE number = 2")
    assert_caught(cli, tmp_path, "carol/big@2", "metadata")
