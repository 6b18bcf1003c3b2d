"""The registry (models, tags, versions, files, parents, aliases, signatures), events and the transparency log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("full_name", sa.String(193), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("license", sa.String(128)),
        sa.Column("created_at", Time, nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_models_owner_name"),
    )
    op.create_table(
        "model_tags",
        sa.Column("model_id", BigId, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_model_tags_tag", "model_tags", ["tag"])
    op.create_table(
        "versions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("model_id", BigId, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("total_size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("single_file", sa.Boolean, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("code_revision", sa.String(256)),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
        sa.UniqueConstraint("model_id", "digest", name="uq_versions_model_digest"),
    )
    op.create_index("ix_versions_model_id", "versions", ["model_id"])
    op.create_index("ix_versions_digest", "versions", ["digest"])
    op.create_index("ix_versions_author", "versions", ["author"])
    op.create_table(
        "version_files",
        sa.Column("version_id", BigId, sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_version_files_sha256", "version_files", ["sha256"])
    op.create_table(
        "version_parents",
        sa.Column("version_id", BigId, sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("parent_digest", sa.String(71), primary_key=True),
    )
    op.create_index("ix_version_parents_parent_digest", "version_parents", ["parent_digest"])
    op.create_table(
        "aliases",
        sa.Column("model_id", BigId, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version_id", BigId, sa.ForeignKey("versions.id"), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("time", Time, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(71), nullable=False),
        sa.Column("model", sa.String(193)),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("leaf_index", sa.BigInteger, nullable=False, unique=True),
    )
    op.create_index("ix_events_actor", "events", ["actor"])
    op.create_index("ix_events_subject", "events", ["subject"])
    op.create_index("ix_events_model_id", "events", ["model", "id"])
    op.create_table(
        "signatures",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("version_id", BigId, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("bundle", sa.Text, nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("signer", sa.String(128), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.UniqueConstraint("version_id", "key_fingerprint", name="uq_signatures_version_key"),
    )
    op.create_index("ix_signatures_version_id", "signatures", ["version_id"])
    op.create_table(
        "log_tiles",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "log_bundles",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("edge", sa.LargeBinary, nullable=False),
        sa.Column("verifier_key", sa.Text),
    )
    op.bulk_insert(
        sa.table("log_state", sa.column("id"), sa.column("size"), sa.column("edge")),
        [{"id": 1, "size": 0, "edge": b""}],
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("time", Time, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "log_checkpoints",
        "log_state",
        "log_tiles",
        "log_bundles",
        "signatures",
        "events",
        "aliases",
        "version_parents",
        "version_files",
        "versions",
        "model_tags",
        "models",
    ):
        op.drop_table(table)
