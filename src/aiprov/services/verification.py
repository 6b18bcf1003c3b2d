"""`aiprov verify`: everything a version claims, checked without trusting the hub.

Bytes are re-hashed, the manifest digest recomputed, every signature checked, the version's registration
event proven included in the latest signed checkpoint, and that checkpoint proven consistent with the last one
this client trusted; with a chain, against the checkpoints anchored there (`aiprov.services.chain_checks`). Each
check reports on its own, so a failure names exactly what broke.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiprov import signing
from aiprov.adapters.files import hash_files, model_files, parallel_map
from aiprov.adapters.hf_cache import snapshot_files
from aiprov.core import merkle
from aiprov.core.checkpoint import Checkpoint
from aiprov.core.events import Event
from aiprov.core.manifest import Manifest, ManifestEntry
from aiprov.core.names import Ref
from aiprov.core.note import Verifier
from aiprov.core.text import count
from aiprov.errors import AiprovError, InvalidInput, VerificationError
from aiprov.ports import BlobStore, ChainReader, ModelHandle, RegistryStore, RegistryUnit, VersionHandle
from aiprov.records import EventRecord, ModelRecord, SignatureRecord, VersionRecord
from aiprov.services import row_checks
from aiprov.services.transparency import LogService, open_checkpoint


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome.

    `name` is a stable id scripts can match (`bytes`, `log.inclusion`, `alias:prod`, `signature:1`; docs/cli.md
    lists them); what varies, such as a key fingerprint, is in its own field.
    """

    name: str
    ok: bool
    detail: str
    key_fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.name, "ok": self.ok, "detail": self.detail}
        if self.key_fingerprint is not None:
            out["key_fingerprint"] = self.key_fingerprint
        return out


@dataclass
class VerifyReport:
    version: VersionRecord
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, run: Callable[[], str], *, key_fingerprint: str | None = None) -> bool:
        """Run one check: it returns a detail on success and raises an AiprovError naming what broke."""
        try:
            self.checks.append(Check(name, True, run(), key_fingerprint))
        except AiprovError as e:
            self.checks.append(Check(name, False, e.diagnostics(), key_fingerprint))
            return False
        return True

    def refuse(self, what: str) -> None:
        """Raise VerificationError naming every failed check, if any (what `pull` does before writing a byte)."""
        if failed := self.failed:
            raise VerificationError(
                f"{self.version.ref}: {what}: " + "; ".join(f"{c.name}: {c.detail}" for c in failed),
                hint="the registry's rows disagree with its log; `aiprov verify` shows every check",
            )

    def to_json(self) -> dict[str, Any]:
        v = self.version
        return {
            "name": v.full_name,
            "version": v.number,
            "digest": str(v.manifest.digest),
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
        }


def compare_manifests(expected: Manifest, actual: Manifest, where: str) -> None:
    """Raise VerificationError naming every missing, extra and changed file."""
    from aiprov.errors import VerificationError

    want = {e.path: e for e in expected.entries}
    have = {e.path: e for e in actual.entries}
    problems = [f"{p} is missing" for p in sorted(want.keys() - have.keys())]
    problems += [f"{p} is not in the registered model" for p in sorted(have.keys() - want.keys())]
    problems += [
        f"{p} differs (sha256 {have[p].sha256.hex[:12]}…, registered {want[p].sha256.hex[:12]}…)"
        for p in sorted(want.keys() & have.keys())
        if want[p] != have[p]
    ]
    if problems:
        raise VerificationError(f"{where}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a version's verification rests on, as the registry holds it.

    The version (its manifest, author, lineage, metadata, aliases), its model (description, licence, tags), the
    digest it was registered under, the signatures recorded for it, its registration event with its log index,
    and the log indices of the model's `push` and `alias` events (`history`): the entries that established every
    other row served. `verify` reads those entries from the log itself, never trusting the rows.

    The hub serves it (`GET .../versions/{n}/evidence`) so a client can check all of it itself.
    """

    record: VersionRecord
    model: ModelRecord
    recorded_digest: str
    signatures: list[SignatureRecord]
    leaf_index: int
    event: Event
    history: list[int]
    formats: dict[str, str | None] = field(default_factory=dict)
    """Each file's format as the registry holds it (what `ls --format` filters on), by path."""

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.recorded_digest,
            "signatures": [
                {**s.to_json(), "bundle": s.bundle.decode(), "public_key": s.public_key.decode()}
                for s in self.signatures
            ],
            "registration": {"leaf_index": self.leaf_index, "event": self.event.to_json()},
            "history": list(self.history),
            "formats": dict(self.formats),
        }


class ProvenanceChecks:
    """The checks that need no access to the stored bytes.

    The manifest digest, signatures, and the version's registration in the log (entry, signed checkpoint,
    inclusion, consistency with the last trusted checkpoint).

    `log` is anything with `entry`, `latest`, `inclusion` and `consistency` (the local `LogService`, or a remote
    log read over HTTP); `verifier` is the log key this client trusts, never one the log hands out.
    """

    def __init__(self, log: Any, verifier: Verifier, trusted_file: Path) -> None:
        self.log = log
        self.verifier = verifier
        self.trusted_file = trusted_file

    def run(
        self,
        report: VerifyReport,
        evidence: Evidence,
        *,
        stored_bytes: Callable[[VerifyReport], object],
        path: Path | None = None,
        hf_snapshot: bool = False,
        bundle: bytes | None = None,
        public_key: signing.PublicKey | None = None,
        chain: ChainReader | None = None,
    ) -> VerifyReport:
        """Every check of `evidence`, in order, into `report`; returns it.

        The manifest digest; the bytes (the local copy at `path`, hashed and compared, or else what `stored_bytes`
        adds about the hub's copy); every signature (a given bundle speaks for the bytes being verified: the local
        copy when there is one); the log; with `chain`, the anchors. With `hf_snapshot`, `path` is a snapshot of
        a Hugging Face cache, whose files are symlinks into its `blobs/` (`adapters.hf_cache`).
        """
        manifest = evidence.record.manifest
        self.manifest_digest(report, evidence)
        checked = manifest
        if path is None:
            stored_bytes(report)
        else:
            local = hash_files(snapshot_files(path) if hf_snapshot else model_files(path))
            checked = local
            report.add("local", lambda: _check_local(manifest, local, path))
        known = self.signatures_and_log(report, evidence, checked=checked, bundle=bundle, public_key=public_key)
        self.served_rows(report, evidence, known)
        if chain is not None:
            self.on_chain(report, evidence, chain, known)
        return report

    def manifest_digest(self, report: VerifyReport, evidence: Evidence) -> None:
        report.add("manifest", lambda: self._check_digest(evidence.record, evidence.recorded_digest))

    def rows(self, report: VerifyReport, evidence: Evidence) -> VerifyReport:
        """The checks of what the registry serves about a version (not its bytes, nor the log's checkpoints).

        The manifest digest, the registration entry, and every served row against the log entry that established
        it: what `pull` runs before writing a byte and `show` marks. Returns `report`.
        """
        self.manifest_digest(report, evidence)
        holder: dict[str, Any] = {}
        index = evidence.leaf_index
        report.add("log.entry", lambda: self._check_entry(evidence.record, index, evidence.event, holder))
        self.served_rows(report, evidence, holder)
        return report

    def served_rows(self, report: VerifyReport, evidence: Evidence, holder: dict[str, Any]) -> None:
        """Author, lineage, metadata, tags and aliases, each against the log entries that established it.

        The entries are read from the log (with a checkpoint in `holder`, each is also proven in it); the
        registration entry is the one `log.entry` read, else (the row was altered) the log's own entry.
        """
        events: list[Event] = []
        if not report.add("log.history", lambda: self._read_history(evidence, holder, events)):
            return
        record, model = evidence.record, evidence.model
        registration = next((e for e in events if e.action == "push" and e.subject == evidence.recorded_digest), None)
        if registration is None:
            report.add("actor", lambda: row_checks.missing_registration(record))
            return
        pushes = [e for e in events if e.action == "push"]
        report.add("actor", lambda: row_checks.check_actor(record, registration))
        report.add("lineage", lambda: row_checks.check_lineage(record, registration))
        report.add("metadata", lambda: row_checks.check_metadata(record, model, registration, pushes))
        report.add("tags", lambda: row_checks.check_tags(model, pushes))
        report.add("formats", lambda: row_checks.check_formats(record, evidence.formats, registration))
        digest = evidence.recorded_digest
        logged = row_checks.logged_aliases(events)
        names = sorted(set(record.aliases) | {a for a, e in logged.items() if e.subject == digest})
        for alias in names:
            report.add(
                f"alias:{alias}",
                lambda alias=alias: row_checks.check_alias(record, digest, alias, logged.get(alias)),  # type: ignore[misc]
            )

    def signatures_and_log(
        self,
        report: VerifyReport,
        evidence: Evidence,
        *,
        checked: Manifest,
        bundle: bytes | None = None,
        public_key: signing.PublicKey | None = None,
    ) -> dict[str, Any]:
        """Every recorded signature, the given one against `checked` (the bytes being verified), then the log.

        Returns what the log checks read and accepted (`leaf_hash` of the push entry, the signed `checkpoint`), for
        `on_chain` to build on rather than read again.
        """
        manifest = evidence.record.manifest
        for number, sig in enumerate(evidence.signatures, 1):
            report.add(
                f"signature:{number}",
                lambda sig=sig: self._check_bundle(  # type: ignore[misc]
                    sig.bundle, manifest, signing.public_key_from_pem(sig.public_key, source="recorded public key")
                ),
                key_fingerprint=sig.key_fingerprint,
            )
        if bundle is not None and public_key is not None:
            report.add(
                "signature:given",
                lambda: self._check_bundle(bundle, checked, public_key),
                key_fingerprint=signing.key_fingerprint(public_key),
            )
        holder: dict[str, Any] = {}
        index = evidence.leaf_index
        if report.add("log.entry", lambda: self._check_entry(evidence.record, index, evidence.event, holder)):
            report.add("log.checkpoint", lambda: self._check_checkpoint(holder))
            if "checkpoint" in holder:
                report.add("log.inclusion", lambda: self._check_inclusion(index, holder))
                report.add("log.consistency", lambda: self._check_consistency(holder))
        return holder

    def on_chain(
        self, report: VerifyReport, evidence: Evidence, chain: ChainReader, known: dict[str, Any] | None = None
    ) -> None:
        """The checks against the checkpoints anchored on `chain` (see `aiprov.services.chain_checks`).

        `known` is what `signatures_and_log` returned: the log is read again only for what it did not accept.
        """
        from aiprov.services.chain_checks import ChainChecks

        ChainChecks(self.log, self.verifier).add(report, chain, evidence.leaf_index, known)

    # the checks ---------------------------------------------------------------------------------------------

    @staticmethod
    def _check_digest(record: VersionRecord, recorded: str) -> str:
        computed = str(record.manifest.digest)
        if computed != recorded:
            raise VerificationError(f"the recorded manifest hashes to {computed}, not the version's {recorded}")
        return computed

    @staticmethod
    def _check_bundle(bundle: bytes, manifest: Manifest, key: signing.PublicKey) -> str:
        signing.verify_bundle(bundle, manifest, key)
        return f"valid, key {signing.key_fingerprint(key)[:16]}…"

    def _check_entry(self, record: VersionRecord, index: int, row_event: Event, holder: dict[str, Any]) -> str:
        data, _, event = self.log.entry(index)
        if event != row_event:
            raise VerificationError(f"log entry {index} does not match the registry's event row: the row was altered")
        if (event.action, event.subject, event.model) != ("push", str(record.manifest.digest), record.full_name):
            raise VerificationError(f"log entry {index} does not register {record.full_name} {record.manifest.digest}")
        logged_cids = event.details.get("cids")
        if logged_cids is not None:
            recorded = {"v0": record.cids.v0, "v1": record.cids.v1} if record.cids is not None else None
            if logged_cids != recorded:
                raise VerificationError(
                    f"log entry {index} gives the IPFS CIDs {logged_cids}, the registry {recorded}: a CID was altered"
                )
        holder["leaf_hash"] = merkle.leaf_hash(data)
        also = ", with its IPFS CIDs" if logged_cids is not None else ""
        return f"entry {index}: {event.action} of {event.subject[:19]}… by {event.actor}{also}"

    def _read_history(self, evidence: Evidence, holder: dict[str, Any], into: list[Event]) -> str:
        """The model's push and alias entries, read from the log (and proven in its checkpoint, when known)."""
        checkpoint: Checkpoint | None = holder.get("checkpoint")
        indices = sorted(set(evidence.history) | {evidence.leaf_index})
        for index in indices:
            _, leaf, event = self.log.entry(index)
            if checkpoint is not None:
                proof = self.log.inclusion(index, checkpoint.size)
                merkle.verify_inclusion(leaf, index, checkpoint.size, proof.hashes, checkpoint.root_hash)
            # Entries about other models, or other actions, establish nothing here: a hub that points at them
            # only leaves the rows they would have supported unsupported.
            if event.model == evidence.record.full_name and event.action in ("push", "alias"):
                into.append(event)
        proven = f", each proven in the tree of size {checkpoint.size}" if checkpoint is not None else ""
        return f"{len(into)} push and alias entries of {evidence.record.full_name}{proven}"

    def _check_checkpoint(self, holder: dict[str, Any]) -> str:
        signed = self.log.latest()
        checkpoint = open_checkpoint(signed.note, self.verifier)
        holder["checkpoint"], holder["note"] = checkpoint, signed.note
        return f"{checkpoint.origin}, size {checkpoint.size}, signed by {self.verifier.name}+{self.verifier.key_id:08x}"

    def _check_inclusion(self, index: int, holder: dict[str, Any]) -> str:
        checkpoint: Checkpoint = holder["checkpoint"]
        proof = self.log.inclusion(index, checkpoint.size)
        merkle.verify_inclusion(holder["leaf_hash"], index, checkpoint.size, proof.hashes, checkpoint.root_hash)
        return f"entry {index} is in the tree of size {checkpoint.size} ({count(len(proof.hashes), 'hash', 'hashes')})"

    def _check_consistency(self, holder: dict[str, Any]) -> str:
        latest: Checkpoint = holder["checkpoint"]
        try:
            trusted_note = self.trusted_file.read_text()
        except FileNotFoundError:
            self._trust(holder["note"])
            return f"first use: now trusting size {latest.size}"
        try:
            trusted = open_checkpoint(trusted_note, self.verifier)
        except AiprovError as e:
            raise VerificationError(f"the trusted checkpoint in {self.trusted_file} is invalid: {e.message}") from e
        if latest.size < trusted.size:
            raise VerificationError(
                f"the log shrank from the trusted size {trusted.size} to {latest.size}: history was rewritten"
            )
        if latest.size == trusted.size:
            if latest.root_hash != trusted.root_hash:
                raise VerificationError(
                    f"the log's root at size {latest.size} differs from the trusted one: history was rewritten"
                )
        else:
            proof = self.log.consistency(trusted.size, latest.size)
            try:
                merkle.verify_consistency(trusted.size, latest.size, proof.hashes, trusted.root_hash, latest.root_hash)
            except VerificationError as e:
                raise VerificationError(
                    f"the log at size {latest.size} is not an extension of the trusted size {trusted.size}: "
                    f"history was rewritten ({e.message})"
                ) from e
            self._trust(holder["note"])
        return f"consistent with the trusted checkpoint of size {trusted.size}"

    def _trust(self, note: str) -> None:
        self.trusted_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.trusted_file.with_name(f".{self.trusted_file.name}.{os.getpid()}")
        tmp.write_text(note)
        os.replace(tmp, self.trusted_file)


def evidence_in(u: RegistryUnit, model: ModelHandle, version: VersionHandle) -> Evidence:
    """The `Evidence` of `version`, read in the unit `u` (for a caller that reads more in the same transaction)."""
    record = u.version_record(model, version)
    signatures = u.signatures(version)
    leaf_index, event = u.registration_event(model, version)
    history = u.event_leaves(model.full_name, ("push", "alias"))
    formats = u.file_formats(version)
    return Evidence(record, u.model_record(model), version.digest, signatures, leaf_index, event, history, formats)


class VerificationService:
    def __init__(
        self,
        db: RegistryStore,
        blobs: BlobStore,
        log: LogService,
        *,
        trusted_verifier: Verifier,
        trusted_checkpoint_file: Path,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.checks = ProvenanceChecks(log, trusted_verifier, trusted_checkpoint_file)

    def evidence(self, ref: str) -> Evidence:
        """What the registry holds about the version `ref`. Raises NotFound, InvalidInput."""
        with self.db.unit() as u:
            return evidence_in(u, *u.resolve(Ref.parse(ref)))

    def rows(self, ref: str) -> VerifyReport:
        """The checks of every row served about `ref` against the log (see `ProvenanceChecks.rows`)."""
        evidence = self.evidence(ref)
        return self.checks.rows(VerifyReport(evidence.record), evidence)

    def verify(
        self,
        ref: str,
        *,
        path: Path | None = None,
        hf_snapshot: bool = False,
        bundle: bytes | None = None,
        public_key: signing.PublicKey | None = None,
        chain: ChainReader | None = None,
    ) -> VerifyReport:
        """Every check of the version `ref`; with `chain`, also against the checkpoints anchored there.

        `path` is a local copy to check instead of the stored bytes (`hf_snapshot`: a Hugging Face cache snapshot).
        """
        if (bundle is None) != (public_key is None):
            raise InvalidInput("--bundle and --public-key go together")
        evidence = self.evidence(ref)
        manifest = evidence.record.manifest
        return self.checks.run(
            VerifyReport(evidence.record),
            evidence,
            stored_bytes=lambda report: report.add("bytes", lambda: self._check_blobs(manifest)),
            path=path,
            hf_snapshot=hf_snapshot,
            bundle=bundle,
            public_key=public_key,
            chain=chain,
        )

    def _check_blobs(self, manifest: Manifest) -> str:
        def rehash(entry: ManifestEntry) -> None:
            try:
                for _ in self.blobs.read(entry.sha256):
                    pass
            except AiprovError as e:
                raise type(e)(f"{entry.path}: {e.message}") from e

        parallel_map(rehash, manifest.entries)
        return f"{len(manifest.entries)} file(s), {manifest.total_size} bytes re-hashed"


def _check_local(manifest: Manifest, local: Manifest, path: Path) -> str:
    """The check of a local copy: every file present and equal, nothing extra."""
    compare_manifests(manifest, local, str(path))
    return f"{len(manifest.entries)} file(s) match"


def altered_events(log: Any, events: Sequence[EventRecord]) -> dict[int, str]:
    """The events (by id) whose row disagrees with its log entry, each with what differs.

    `log` is anything with `entry` (the local `LogService` or the remote log). An event without a log index (a
    server too old to say it) is reported too: nothing backs it.
    """
    altered: dict[int, str] = {}
    for e in events:
        if e.leaf_index is None:
            altered[e.id] = "no log index: unchecked"
            continue
        _, _, logged = log.entry(e.leaf_index)
        served = Event(e.time, e.actor, e.action, e.subject, e.model, e.details)
        differ = [
            f
            for f in ("time", "actor", "action", "subject", "model", "details")
            if getattr(served, f) != getattr(logged, f)
        ]
        if differ:
            altered[e.id] = f"{', '.join(differ)} differ from log entry {e.leaf_index}"
    return altered
