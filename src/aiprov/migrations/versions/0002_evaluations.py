"""User datasets, evaluations and their metrics.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("full_name", sa.String(193), nullable=False, unique=True),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("leaf_index", sa.BigInteger, nullable=False, unique=True),
        sa.UniqueConstraint("owner", "name", name="uq_datasets_owner_name"),
    )
    op.create_index("ix_datasets_digest", "datasets", ["digest"])
    op.create_table(
        "evaluations",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("version_id", BigId, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("model_digest", sa.String(71), nullable=False),
        sa.Column("dataset", sa.String(193), nullable=False),
        sa.Column("dataset_digest", sa.String(71), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("split", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("packages", sa.JSON, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("evaluator", sa.String(128), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("attestation", sa.Text),
        sa.Column("key_fingerprint", sa.String(64)),
        sa.Column("leaf_index", sa.BigInteger, nullable=False, unique=True),
    )
    op.create_index("ix_evaluations_version_id", "evaluations", ["version_id"])
    op.create_index("ix_evaluations_model_digest", "evaluations", ["model_digest"])
    op.create_table(
        "evaluation_metrics",
        sa.Column("evaluation_id", BigId, sa.ForeignKey("evaluations.id"), primary_key=True),
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_evaluation_metrics_name_value", "evaluation_metrics", ["name", "value"])


def downgrade() -> None:
    for table in ("evaluation_metrics", "evaluations", "datasets"):
        op.drop_table(table)
