"""Grants of the Hugging Face LFS batch API (`SqlRegistryUnit`'s part for them): rows in, records out.

A grant is a row any server process on the database reads, so an upload URL made by one process is accepted by
another; the URL's secret id is stored only as its SHA-256.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from aiprov.adapters.db.schema import HfLfsUploadRow
from aiprov.adapters.db.times import utc
from aiprov.adapters.db.unit import UnitBase
from aiprov.core.digest import Digest
from aiprov.records import LfsGrant


class HfLfsRows(UnitBase):
    """LFS grants: added by the batch route, moved along by the upload PUT, read by the commit."""

    def add_lfs_grant(self, grant: LfsGrant, now: datetime) -> None:
        """Record `grant`, made at `now`."""
        self.s.add(
            HfLfsUploadRow(
                capability_hash=grant.capability_hash,
                account=grant.account,
                model=grant.model,
                sha256=grant.sha256.hex,
                size=grant.size,
                state=grant.state,
                created_at=now,
                expires_at=grant.expires_at,
            )
        )
        self.s.flush()

    def lfs_grant(self, capability_hash: str) -> LfsGrant | None:
        """The grant whose upload URL's secret id hashes to `capability_hash`, or None."""
        row = self.s.scalars(
            select(HfLfsUploadRow).where(HfLfsUploadRow.capability_hash == capability_hash)
        ).one_or_none()
        return None if row is None else _grant(row)

    def move_lfs_grant(self, capability_hash: str, from_state: str, to_state: str) -> bool:
        """Move the grant from `from_state` to `to_state` if it is in `from_state`; whether it was.

        One conditional UPDATE: of two processes moving the same grant, one wins.
        """
        result = self.s.execute(
            update(HfLfsUploadRow)
            .where(HfLfsUploadRow.capability_hash == capability_hash, HfLfsUploadRow.state == from_state)
            .values(state=to_state)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def lfs_grants_of(self, account: str, model: str, sha256: Digest) -> list[LfsGrant]:
        """Every grant `account` holds for the object `sha256` in `model`, whatever its state or expiry."""
        rows = self.s.scalars(
            select(HfLfsUploadRow).where(
                HfLfsUploadRow.account == account, HfLfsUploadRow.model == model, HfLfsUploadRow.sha256 == sha256.hex
            )
        )
        return [_grant(r) for r in rows]

    def prune_lfs_grants(self, now: datetime) -> int:
        """Delete the grants that expired by `now` (a grant is good until, not at, its `expires_at`); how many."""
        result = self.s.execute(
            delete(HfLfsUploadRow).where(HfLfsUploadRow.expires_at <= now).execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def _grant(row: HfLfsUploadRow) -> LfsGrant:
    return LfsGrant(
        row.capability_hash, row.account, row.model, Digest(row.sha256), row.size, row.state, utc(row.expires_at)
    )
