"""Xet uploads: write tokens (stored as their SHA-256) and the xorbs each caller sent for a model.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "hf_xet_tokens",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("model", sa.String(193), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
    )
    op.create_index("ix_hf_xet_tokens_expires_at", "hf_xet_tokens", ["expires_at"])
    op.create_table(
        "hf_xet_xorbs",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("model", sa.String(193), nullable=False),
        sa.Column("xorb", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
    )
    op.create_index("ix_hf_xet_xorbs_owner", "hf_xet_xorbs", ["account", "model", "xorb"])
    op.create_index("ix_hf_xet_xorbs_expires_at", "hf_xet_xorbs", ["expires_at"])


def downgrade() -> None:
    op.drop_table("hf_xet_xorbs")
    op.drop_table("hf_xet_tokens")
