"""Search through the trigram index finds exactly what the plain scan finds, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, text
from tests.conftest import MakeModel

from aiprov.adapters.db.engine import make_engine, migrate
from aiprov.adapters.db.schema import ModelRow, TagRow
from aiprov.adapters.db.search import FTS_TABLE, fts_query, literal_runs
from aiprov.config import Container
from aiprov.records import ModelFilter
from aiprov.services.registry import PushRequest

MODELS = {
    "alice/percent": ("100% sure", ["pct"]),
    "alice/under": ("snake_case_name here", ["a-b"]),
    "alice/star": ("a*b is literal, so is a?b", []),
    "alice/ecole": ("École Normale", ["ecole"]),
    "alice/upper-ecole": ("ÉCOLE NORMALE", []),
    "alice/strasse": ("Straße in Berlin", ["strasse"]),
    "alice/istanbul": ("İstanbul model", []),
    "alice/naive": ("naïve bayes", ["bayes"]),
    "alice/robot": ("emoji 🤖 model", []),
    "alice/slash": ('back\\slash and a "quote"', []),
    "bob/MiXeD": ("MiXeD CaSe", ["CamelTag"]),
    "bob/ab": ("", ["ab"]),
    "bob/plain": ("plain old model", ["demo", "nlp"]),
}
QUERIES = [
    "%",
    "_",
    "*",
    "?",
    "%%",
    "100%",
    "0%",
    "e_c",
    "snake_case",
    "snake%case",
    "a*b",
    "a?b",
    "a\\*b",
    "éco",
    "ÉCO",
    "ecole",
    "école normale",
    "straße",
    "STRASSE",
    "ß",
    "i̇st",
    "İst",
    "ist",
    "ïve",
    "🤖",
    "🤖 m",
    "\\",
    "back\\s",
    '"quote"',
    '"',
    "a",
    "ab",
    "AB",
    "e",
    "É",
    "mixed case",
    "ixed c",
    "cameltag",
    "CAMEL",
    "nomatch-xyz",
    " ",
    "model",
    "*model*",
    "m*del",
    "mo?el",
    "??",
    "???",
    "a-b",
    "demo",
    "nlp",
    "bob/",
    "o/m",
    "'",
    "a'b",
    "x' OR '1'='1",
    "plain old",
    "old*mod",
    "*",
    "**",
    "alice",
    "ALICE/PER",
]


def _push_all(hub: Container, make_model: MakeModel) -> None:
    for i, (name, (description, tags)) in enumerate(MODELS.items()):
        hub.registry.push(make_model({"w.bin": bytes([i]) * 8}), PushRequest(name, description=description, tags=tags))


def _found(hub: Container, query: str, *, indexed: bool) -> list[str]:
    with hub.db.unit() as u:
        u.search_index = indexed
        total, models = u.page_models(ModelFilter(search=query), "name", 0, 1000)
    assert total == len(models)
    return [m.full_name for m in models]


def test_indexed_search_finds_what_the_scan_finds(hub: Container, make_model: MakeModel) -> None:
    _push_all(hub, make_model)
    for query in QUERIES:
        assert _found(hub, query, indexed=True) == _found(hub, query, indexed=False), query
    # and the answers are the substring ones, not everything or nothing
    assert _found(hub, "100%", indexed=True) == ["alice/percent"]
    assert _found(hub, "snake_case", indexed=True) == ["alice/under"]
    assert _found(hub, "e_c", indexed=True) == ["alice/under"]  # `_` is literal: "snake_case" has "e_c"
    assert "alice/under" in _found(hub, "a*b", indexed=True)  # `*` is a wildcard: its tag "a-b"
    assert _found(hub, "a\\*b", indexed=True) == []  # `\` is literal, not an escape
    assert _found(hub, "mixed case", indexed=True) == ["bob/MiXeD"]
    assert _found(hub, "cameltag", indexed=True) == ["bob/MiXeD"]
    assert _found(hub, "🤖 m", indexed=True) == ["alice/robot"]
    assert _found(hub, "nomatch-xyz", indexed=True) == []
    assert len(_found(hub, "/", indexed=True)) == len(MODELS)  # every full name has one


def test_index_follows_description_and_tag_changes(hub: Container, make_model: MakeModel) -> None:
    hub.registry.push(make_model({"w": b"1"}), PushRequest("alice/m", description="first words"))
    assert _found(hub, "first wo", indexed=True) == ["alice/m"]
    hub.registry.push(make_model({"w": b"2"}), PushRequest("alice/m", description="second text", tags=["zebra"]))
    assert _found(hub, "first wo", indexed=True) == []
    assert _found(hub, "second te", indexed=True) == ["alice/m"]
    assert _found(hub, "zebr", indexed=True) == ["alice/m"]


def test_the_index_is_what_the_query_uses(hub: Container, make_model: MakeModel) -> None:
    _push_all(hub, make_model)
    with hub.db.unit() as u:
        conn = u.conn
        if conn.dialect.name == "sqlite":
            plan = conn.execute(
                text(f"EXPLAIN QUERY PLAN SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q"),
                {"q": fts_query(literal_runs("snake"))},
            ).all()
            assert any("VIRTUAL TABLE INDEX" in str(row) for row in plan), plan
            assert conn.scalar(text(f"SELECT count(*) FROM {FTS_TABLE}")) == len(MODELS)
        else:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = conn.execute(
                text("EXPLAIN SELECT id FROM models WHERE lower(description) LIKE :p ESCAPE '\\'"), {"p": "%snake%"}
            ).all()
            assert any("ix_models_description_trgm" in str(row) for row in plan), plan


def test_literal_runs_are_what_a_trigram_can_look_up() -> None:
    assert literal_runs("ab") == []
    assert literal_runs("abc*de?fghi") == ["abc", "fghi"]
    assert literal_runs("ÉCO") == ["éco"]
    assert fts_query(['a"b c']) == '"a""b c"'


def test_the_migration_fills_the_index_with_existing_models(database_url: str | None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'r.db'}")
    config = Config()
    config.set_main_option("script_location", str(resources.files("aiprov") / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
    then = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [("old", "Written Before"), ("other", "")]
    with engine.begin() as conn:
        conn.execute(
            insert(ModelRow),
            [
                {"id": i, "owner": "o", "name": n, "full_name": f"o/{n}", "description": d, "created_at": then}
                for i, (n, d) in enumerate(rows, 1)
            ],
        )
        conn.execute(insert(TagRow), [{"model_id": 2, "tag": "legacy-tag"}])
    assert migrate(engine) == "0004"
    from aiprov.adapters.db.registry import SqlRegistry

    db = SqlRegistry(engine)
    for query, expected in (("written bef", ["o/old"]), ("legacy-t", ["o/other"]), ("o/o", ["o/old", "o/other"])):
        with db.unit() as u:
            assert [m.full_name for m in u.list_models(ModelFilter(search=query))] == expected, query
    engine.dispose()


@pytest.mark.parametrize("query", ["abc", "a*b"])
def test_search_of_an_empty_registry_finds_nothing(hub: Container, query: str) -> None:
    assert _found(hub, query, indexed=True) == [] == _found(hub, query, indexed=False)
