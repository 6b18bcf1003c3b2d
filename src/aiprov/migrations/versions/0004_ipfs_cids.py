"""IPFS CIDs (Kubo's CIDv0 and CIDv1 raw-leaves) of every version and version file, and where each block is.

Existing rows get NULL: computing a CID reads the blob, which a migration cannot reach. The CIDs of such a
version are computed on first use (`aiprov ipfs cid REF`, export, pin) and stored then, with its blocks.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("versions", "version_files")


def upgrade() -> None:
    for table in TABLES:
        for column in ("cid_v0", "cid_v1"):
            op.add_column(table, sa.Column(column, sa.String(64), nullable=True))
            op.create_index(f"ix_{table}_{column}", table, [column])
    op.create_table(
        "ipfs_blocks",
        sa.Column("cid", sa.String(64), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("length", sa.BigInteger, nullable=False),
        sa.Column("depth", sa.SmallInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ipfs_blocks")
    for table in TABLES:
        for column in ("cid_v0", "cid_v1"):
            op.drop_index(f"ix_{table}_{column}", table_name=table)
            op.drop_column(table, column)
