"""Author signatures: OpenSSF model-signing bundles made, recorded and logged."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiprov import signing
from aiprov.core.names import Ref
from aiprov.ports import RegistryStore
from aiprov.records import VersionRecord


@dataclass(frozen=True, slots=True)
class SignResult:
    version: VersionRecord
    bundle: bytes
    key_fingerprint: str
    recorded: bool
    """False when this key had signed the version already (the earlier signature stays)."""


class SignatureService:
    def __init__(self, db: RegistryStore, *, clock: Callable[[], datetime], actor: str) -> None:
        self.db = db
        self.clock = clock
        self.actor = actor

    def sign(self, ref: str, key: signing.PrivateKey, *, actor: str | None = None) -> SignResult:
        """Sign the version `ref` names with `key`, record the bundle and log a `sign` event by `actor`."""
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            record = u.version_record(model, version)
        bundle = signing.sign_manifest(record.manifest, record.signing_name, key, single_file=record.single_file)
        return self.record(ref, bundle, key.public_key(), actor=actor)

    def record(self, ref: str, bundle: bytes, public_key: signing.PublicKey, *, actor: str | None = None) -> SignResult:
        """Verify `bundle` against the version's manifest and `public_key`, then record it and log it.

        Raises VerificationError (nothing recorded) if it does not verify.
        """
        actor = self.actor if actor is None else actor
        fingerprint = signing.key_fingerprint(public_key)
        with self.db.unit(write=True) as u:
            model, version = u.resolve(Ref.parse(ref))
            record = u.version_record(model, version)
            signing.verify_bundle(bundle, record.manifest, public_key)
            pem = signing.public_key_pem(public_key)
            recorded = u.add_signature(version, bundle.decode(), pem.decode(), fingerprint, actor, self.clock())
            if recorded:
                u.add_event(
                    actor=actor,
                    action="sign",
                    subject=version.digest,
                    model=model.full_name,
                    details={
                        "version": version.number,
                        "key_fingerprint": fingerprint,
                        "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
                    },
                    now=self.clock(),
                )
        return SignResult(record, bundle, fingerprint, recorded)
