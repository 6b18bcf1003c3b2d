"""Engines, schema checks and migrations.

Commands check the schema revision with one query and import Alembic only to migrate, so every command stays
fast; `aiprov init` creates or upgrades the schema.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from aiprov.errors import BackendError, SchemaError
from aiprov.extras import missing

# Every Alembic revision this version of aiprov knows, oldest first; the last is the head.
# tests/test_migrations.py checks this against the migration scripts.
KNOWN_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")
SCHEMA_HEAD = KNOWN_REVISIONS[-1]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # 16 KiB pages: the transparency log stores 256-entry bundles and 8 KiB hash tiles, which 4 KiB pages split into
    # overflow chains (measured: 1M log appends 2.0 s -> 1.7 s). Only takes effect when the file is created.
    cur.execute("PRAGMA page_size=16384")
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent on a crash
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:///… or postgresql+psycopg://…). Raises BackendError if unusable.

    Raises MissingExtra when the URL needs psycopg and it is not installed.
    """
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            engine = create_engine(url, pool_pre_ping=True)
    except ImportError as e:
        raise missing("a PostgreSQL database URL", e, "psycopg") from e
    except SQLAlchemyError as e:
        raise BackendError(f"cannot use database {_safe(url)}: {e}") from e
    return engine


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def current_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database, or None for an empty database."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    except (OperationalError, ProgrammingError) as e:
        message = str(e.orig if hasattr(e, "orig") else e).lower()
        if "no such table" in message or ("does not exist" in message and "alembic_version" in message):
            return None
        raise BackendError(f"cannot reach the database {_safe(str(engine.url))}: {e.orig}") from e


def check_schema(engine: Engine) -> None:
    """Raise SchemaError unless the database is at the schema this aiprov uses."""
    revision = current_revision(engine)
    if revision == SCHEMA_HEAD:
        return
    where = _safe(str(engine.url))
    if revision is None:
        raise SchemaError(f"the database {where} has no aiprov schema", hint="run `aiprov init`")
    if revision in KNOWN_REVISIONS:
        raise SchemaError(f"the database {where} has an older schema ({revision})", hint="run `aiprov init`")
    raise SchemaError(
        f"the database {where} has schema {revision}, newer than this aiprov knows ({SCHEMA_HEAD})",
        hint="upgrade aiprov; nothing was written",
    )


def migrate(engine: Engine) -> str | None:
    """Create or upgrade the schema to SCHEMA_HEAD; return the revision it started from.

    Raises SchemaError for a database from a newer aiprov (nothing is changed).
    """
    revision = current_revision(engine)
    if revision is not None and revision not in KNOWN_REVISIONS:
        check_schema(engine)
    if revision == SCHEMA_HEAD:
        return revision
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("aiprov") / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return revision
