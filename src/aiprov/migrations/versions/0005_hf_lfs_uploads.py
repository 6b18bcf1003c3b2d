"""Grants of the Hugging Face LFS batch API: who may put which object into which model, until when.

An upload URL's secret id is stored only as its SHA-256 (`capability_hash`), so any server process on the
database accepts the URL and a copy of the database does not hold usable URLs.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "hf_lfs_uploads",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("capability_hash", sa.String(64), unique=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("model", sa.String(193), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
    )
    op.create_index("ix_hf_lfs_uploads_grant", "hf_lfs_uploads", ["account", "model", "sha256"])
    op.create_index("ix_hf_lfs_uploads_expires_at", "hf_lfs_uploads", ["expires_at"])


def downgrade() -> None:
    op.drop_table("hf_lfs_uploads")
