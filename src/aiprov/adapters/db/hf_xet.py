"""Xet write tokens and the xorbs sent with them (`SqlRegistryUnit`'s part for them): rows in, records out.

Rows any server process on the database reads, so a token issued by one process is accepted by another; the
token itself is stored only as its SHA-256.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from aiprov.adapters.db.schema import HfXetTokenRow, HfXetXorbRow
from aiprov.adapters.db.times import utc
from aiprov.adapters.db.unit import UnitBase
from aiprov.core.digest import Digest
from aiprov.records import XetToken, XetXorb


class HfXetRows(UnitBase):
    """Xet tokens (added by the token route, read by the CAS routes) and xorbs (added and read by the CAS routes)."""

    def add_xet_token(self, token: XetToken, now: datetime) -> None:
        """Record `token`, issued at `now`."""
        self.s.add(
            HfXetTokenRow(
                token_hash=token.token_hash,
                account=token.account,
                model=token.model,
                created_at=now,
                expires_at=token.expires_at,
            )
        )
        self.s.flush()

    def xet_token(self, token_hash: str) -> XetToken | None:
        """The token whose secret hashes to `token_hash`, or None (whatever its expiry)."""
        row = self.s.scalars(select(HfXetTokenRow).where(HfXetTokenRow.token_hash == token_hash)).one_or_none()
        return None if row is None else XetToken(row.token_hash, row.account, row.model, utc(row.expires_at))

    def add_xet_xorb(self, xorb: XetXorb, now: datetime) -> None:
        """Record that `xorb.account` sent the xorb `xorb.xorb` for `xorb.model`, held in the blob `xorb.sha256`."""
        self.s.add(
            HfXetXorbRow(
                account=xorb.account,
                model=xorb.model,
                xorb=xorb.xorb,
                sha256=xorb.sha256.hex,
                size=xorb.size,
                created_at=now,
                expires_at=xorb.expires_at,
            )
        )
        self.s.flush()

    def xet_xorbs_of(self, account: str, model: str, xorb: str) -> list[XetXorb]:
        """Every record of `account` sending the xorb `xorb` for `model`, whatever its expiry."""
        rows = self.s.scalars(
            select(HfXetXorbRow).where(
                HfXetXorbRow.account == account, HfXetXorbRow.model == model, HfXetXorbRow.xorb == xorb
            )
        )
        return [XetXorb(r.account, r.model, r.xorb, Digest(r.sha256), r.size, utc(r.expires_at)) for r in rows]

    def prune_xet(self, now: datetime) -> int:
        """Delete the tokens and xorb records that expired by `now`; how many."""
        gone = 0
        for table in (HfXetTokenRow, HfXetXorbRow):
            result = self.s.execute(
                delete(table).where(table.expires_at <= now).execution_options(synchronize_session=False)
            )
            gone += int(getattr(result, "rowcount", 0) or 0)
        return gone
