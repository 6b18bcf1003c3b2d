"""The schema: Alembic scripts, the ORM and the revision list agree."""

from __future__ import annotations

from importlib import resources

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from aiprov.adapters.db.engine import KNOWN_REVISIONS, SCHEMA_HEAD, current_revision, make_engine, migrate
from aiprov.adapters.db.schema import Base
from aiprov.adapters.db.search import include_name


def test_known_revisions_match_the_migration_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(resources.files("aiprov") / "migrations"))
    script = ScriptDirectory.from_config(config)
    assert script.get_current_head() == SCHEMA_HEAD
    assert [r.revision for r in reversed(list(script.walk_revisions()))] == list(KNOWN_REVISIONS)


def test_migrated_database_matches_the_orm(database_url: str | None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'r.db'}")
    assert migrate(engine) is None
    assert current_revision(engine) == SCHEMA_HEAD
    assert migrate(engine) == SCHEMA_HEAD  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": include_name}), Base.metadata)
    engine.dispose()
    assert diff == []
