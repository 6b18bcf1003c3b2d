"""IPFS blocks and CIDs in the database: where each block of a stored blob lies, and each version's CIDs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Executable, Table, or_, select

from aiprov.adapters.db.schema import IpfsBlockRow, ModelRow, VersionFileRow, VersionRow
from aiprov.adapters.db.unit import UnitBase, row_of
from aiprov.core.unixfs import BlockPlace, Cid
from aiprov.ports import VersionHandle
from aiprov.records import IpfsCids


class BlockRows(UnitBase):
    """The IPFS part of `SqlRegistryUnit` (one transaction's session, `s`)."""

    def add_block_places(self, places: Iterable[tuple[str, BlockPlace]]) -> None:
        """Record where blocks come from ((blob sha256 hex, place)); a CID already recorded is left as it is."""
        rows: dict[str, dict[str, object]] = {}
        for sha, p in places:
            cid = str(p.cid)  # once: encoding a CID costs ~14 us, and a 1 GiB file has 8,192 blocks
            rows[cid] = {"cid": cid, "sha256": sha, "offset": p.offset, "length": p.length, "depth": p.depth}
        if not rows:
            return
        values = list(rows.values())
        # Core, not the ORM's bulk insert: a tenth of the time for thousands of rows. "Skip a CID already recorded"
        # is each dialect's own `insert` construct; the statement is built once for every batch.
        table = cast(Table, IpfsBlockRow.__table__)
        statement: Executable
        if self.s.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=["cid"])
        else:
            from sqlalchemy.dialects import sqlite

            statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=["cid"])
        for start in range(0, len(values), 5000):
            self.s.execute(statement, values[start : start + 5000])

    def block_place(self, cid: str) -> tuple[str, BlockPlace] | None:
        """The blob and place of the block `cid`, if recorded."""
        row = self.s.get(IpfsBlockRow, cid)
        if row is None:
            return None
        return row.sha256, BlockPlace(Cid.parse(row.cid), row.offset, row.length, row.depth)

    def set_cids(self, version: VersionHandle, cids: IpfsCids) -> None:
        """Record CIDs computed after the version was registered (rows older than schema 0004)."""
        found = row_of(version, VersionRow)
        found.cid_v0, found.cid_v1 = cids.v0, cids.v1
        for row in self.s.scalars(select(VersionFileRow).where(VersionFileRow.version_id == version.id)):
            row.cid_v0, row.cid_v1 = cids.files[row.path]
        self.s.flush()

    def _file_cids(self, version_ids: Sequence[int]) -> dict[int, dict[str, tuple[str | None, str | None]]]:
        out: dict[int, dict[str, tuple[str | None, str | None]]] = {}
        if version_ids:
            query = select(VersionFileRow.version_id, VersionFileRow.path, VersionFileRow.cid_v0, VersionFileRow.cid_v1)
            for vid, path, v0, v1 in self.s.execute(query.where(VersionFileRow.version_id.in_(version_ids))):
                out.setdefault(vid, {})[path] = (v0, v1)
        return out

    def by_cid(self, cid: str) -> list[tuple[ModelRow, VersionRow, str | None]]:
        """Versions whose CID (path None) or one of whose files' CIDs (its path) is `cid`, oldest first."""
        found: list[tuple[ModelRow, VersionRow, str | None]] = []
        versions = (
            select(ModelRow, VersionRow)
            .join(VersionRow, VersionRow.model_id == ModelRow.id)
            .where(or_(VersionRow.cid_v0 == cid, VersionRow.cid_v1 == cid))
            .order_by(VersionRow.id)
            .limit(1)
        )
        found.extend((m, v, None) for m, v in self.s.execute(versions).all())
        files = (
            select(ModelRow, VersionRow, VersionFileRow.path)
            .join(VersionRow, VersionRow.model_id == ModelRow.id)
            .join(VersionFileRow, VersionFileRow.version_id == VersionRow.id)
            .where(or_(VersionFileRow.cid_v0 == cid, VersionFileRow.cid_v1 == cid))
            .order_by(VersionRow.id)
            .limit(1)
        )
        found.extend((m, v, p) for m, v, p in self.s.execute(files).all())
        return found
