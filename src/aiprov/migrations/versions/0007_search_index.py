"""Search index over models (trigram), each file's detected format, and an index of events by action.

- SQLite: the FTS5 table `model_search` (tokenize='trigram'), one row per model (rowid = models.id) holding its
  full name, description and tags (one per line), kept in step by triggers on `models` and `model_tags`.
- PostgreSQL: the pg_trgm extension and GIN `gin_trgm_ops` indexes on lower(models.full_name),
  lower(models.description) and lower(model_tags.tag). The extension is created in `public` when the database
  has none (so that dropping another schema never drops it) and the indexes name its operator class where it is.
- `version_files.format`: the format the scanner detected in the file's bytes (NULL for rows older than this:
  detecting it needs the blob, which a migration cannot read); the push event's details record the same.
- `ix_events_action`: events by (action, leaf index), for counting downloads and reading reputation's events.

Existing rows are backfilled into the search index here. See `aiprov.adapters.db.search`.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FTS = "model_search"
TAGS_OF = "coalesce((SELECT group_concat(tag, char(10)) FROM model_tags WHERE model_id = {id}), '')"
SQLITE_TRIGGERS = {
    f"{FTS}_model_insert": f"""AFTER INSERT ON models BEGIN
        INSERT INTO {FTS}(rowid, full_name, description, tags)
        VALUES (new.id, new.full_name, new.description, {TAGS_OF.format(id="new.id")}); END""",
    f"{FTS}_model_update": f"""AFTER UPDATE OF id, full_name, description ON models BEGIN
        DELETE FROM {FTS} WHERE rowid = old.id;
        INSERT INTO {FTS}(rowid, full_name, description, tags)
        VALUES (new.id, new.full_name, new.description, {TAGS_OF.format(id="new.id")}); END""",
    f"{FTS}_model_delete": f"AFTER DELETE ON models BEGIN DELETE FROM {FTS} WHERE rowid = old.id; END",
    f"{FTS}_tag_insert": f"""AFTER INSERT ON model_tags BEGIN
        UPDATE {FTS} SET tags = {TAGS_OF.format(id="new.model_id")} WHERE rowid = new.model_id; END""",
    f"{FTS}_tag_update": f"""AFTER UPDATE ON model_tags BEGIN
        UPDATE {FTS} SET tags = {TAGS_OF.format(id="old.model_id")} WHERE rowid = old.model_id;
        UPDATE {FTS} SET tags = {TAGS_OF.format(id="new.model_id")} WHERE rowid = new.model_id; END""",
    f"{FTS}_tag_delete": f"""AFTER DELETE ON model_tags BEGIN
        UPDATE {FTS} SET tags = {TAGS_OF.format(id="old.model_id")} WHERE rowid = old.model_id; END""",
}
PG_INDEXES = {
    "ix_models_full_name_trgm": ("models", "full_name"),
    "ix_models_description_trgm": ("models", "description"),
    "ix_model_tags_tag_trgm": ("model_tags", "tag"),
}
EXTENSION_LOCK = 0x61697072  # pg_advisory_xact_lock key: two schemas migrated at once create the extension once


def upgrade() -> None:
    op.add_column("version_files", sa.Column("format", sa.String(32), nullable=True))
    op.create_index("ix_version_files_format", "version_files", ["format"])
    op.create_index("ix_events_action", "events", ["action", "leaf_index"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(f"CREATE VIRTUAL TABLE {FTS} USING fts5(full_name, description, tags, tokenize='trigram')")
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
        op.execute(
            f"INSERT INTO {FTS}(rowid, full_name, description, tags) "
            f"SELECT id, full_name, description, {TAGS_OF.format(id='models.id')} FROM models"
        )
    elif bind.dialect.name == "postgresql":
        op.execute(f"SELECT pg_advisory_xact_lock({EXTENSION_LOCK})")
        has_public = bind.scalar(sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'"))
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm" + (" SCHEMA public" if has_public else ""))
        schema = bind.scalar(
            sa.text(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'pg_trgm'"
            )
        )
        for name, (table, column) in PG_INDEXES.items():
            op.execute(f'CREATE INDEX {name} ON {table} USING gin (lower({column}) "{schema}".gin_trgm_ops)')


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    elif bind.dialect.name == "postgresql":
        for name in PG_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_events_action", table_name="events")
    op.drop_index("ix_version_files_format", table_name="version_files")
    op.drop_column("version_files", "format")
