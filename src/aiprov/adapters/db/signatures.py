"""Recorded signature bundles in the database: one per version and key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from aiprov.adapters.db.schema import SignatureRow
from aiprov.adapters.db.times import utc
from aiprov.adapters.db.unit import UnitBase
from aiprov.ports import VersionHandle
from aiprov.records import SignatureRecord


class SignatureRows(UnitBase):
    """The signature part of `SqlRegistryUnit` (one transaction's session, `s`)."""

    def add_signature(
        self, version: VersionHandle, bundle: str, public_key: str, fingerprint: str, signer: str, now: datetime
    ) -> bool:
        """Record a bundle for `version`; False (nothing written) if this key's signature is already recorded."""
        existing = self.s.scalars(
            select(SignatureRow).where(
                SignatureRow.version_id == version.id, SignatureRow.key_fingerprint == fingerprint
            )
        ).one_or_none()
        if existing is not None:
            return False
        self.s.add(
            SignatureRow(
                version_id=version.id,
                bundle=bundle,
                public_key=public_key,
                key_fingerprint=fingerprint,
                signer=signer,
                created_at=now,
            )
        )
        self.s.flush()
        return True

    def signatures(self, version: VersionHandle) -> list[SignatureRecord]:
        rows = self.s.scalars(
            select(SignatureRow).where(SignatureRow.version_id == version.id).order_by(SignatureRow.id)
        )
        return [
            SignatureRecord(r.bundle.encode(), r.public_key.encode(), r.key_fingerprint, r.signer, utc(r.created_at))
            for r in rows
        ]
