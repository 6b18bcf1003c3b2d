"""Plain records that services return and interfaces print: the JSON shapes scripts depend on.

One record per concept, with both directions of its JSON form: `to_json` is what the API serves and `--json`
prints, `from_json` is how the remote client reads it back (raising BackendError for a malformed document), so a
record from a server is the same type as one from a home.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiprov.core.digest import Digest
from aiprov.core.manifest import Manifest, ManifestEntry
from aiprov.errors import BackendError, InvalidInput, VerificationError


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as `iso` writes it (`...Z`). Raises BackendError for anything else."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError) as e:
        raise BackendError(f"the server sent a malformed time {text!r}") from e
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn a missing key or a wrong type while reading a document into BackendError naming `what`."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, InvalidInput) as e:
        raise BackendError(f"the server sent a malformed {what}: {e}") from e


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from."""

    parents: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    code_revision: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "parents": list(self.parents),
            "datasets": list(self.datasets),
            "code_revision": self.code_revision,
            "params": dict(self.params),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> Lineage:
        value = value or {}
        return cls(
            parents=tuple(value.get("parents") or ()),
            datasets=tuple(value.get("datasets") or ()),
            code_revision=value.get("code_revision"),
            params=dict(value.get("params") or {}),
            metadata=dict(value.get("metadata") or {}),
        )


@dataclass(frozen=True, slots=True)
class IpfsCids:
    """A version's IPFS CIDs as Kubo computes them: `ipfs add` (CIDv0) and `ipfs add --cid-version=1`.

    `v0`/`v1` is the single file's CID, or the directory's; `files` maps each manifest path to its (CIDv0, CIDv1).
    """

    v0: str | None
    v1: str | None
    files: dict[str, tuple[str, str]]

    def of(self, version: int) -> str | None:
        return self.v1 if version == 1 else self.v0

    @classmethod
    def from_json(cls, version: dict[str, Any]) -> IpfsCids | None:
        """The CIDs in a version's JSON (None when the hub has none for some file of it)."""
        files = {str(f["path"]): (f.get("cid_v0"), f.get("cid_v1")) for f in version["files"]}
        if not all(v0 and v1 for v0, v1 in files.values()):
            return None
        known = {path: (str(v0), str(v1)) for path, (v0, v1) in files.items()}
        return cls(version.get("cid_v0"), version.get("cid_v1"), known)


@dataclass(frozen=True, slots=True)
class VersionRecord:
    owner: str
    name: str
    number: int
    manifest: Manifest
    author: str
    created_at: datetime
    lineage: Lineage
    aliases: tuple[str, ...] = ()
    single_file: bool = False
    cids: IpfsCids | None = None
    """None until computed (versions registered before CIDs were recorded)."""

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def signing_name(self) -> str:
        """The model name a model-signing statement carries: the file's for one file, else the model's."""
        return self.manifest.entries[0].path if self.single_file else self.name

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}@{self.number}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.full_name,
            "version": self.number,
            "digest": str(self.manifest.digest),
            "files": [self._file_json(e.path, e.size, e.sha256.hex) for e in self.manifest.entries],
            "total_size": self.manifest.total_size,
            "cid_v0": self.cids.v0 if self.cids else None,
            "cid_v1": self.cids.v1 if self.cids else None,
            "author": self.author,
            "created_at": iso(self.created_at),
            "aliases": list(self.aliases),
            "single_file": self.single_file,
            "lineage": self.lineage.to_json(),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> VersionRecord:
        """A version as `aiprov show --json` prints it.

        Raises VerificationError if the manifest does not hash to the digest the document gives, BackendError for
        a malformed document.
        """
        with reading("version"):
            owner, _, name = str(value["name"]).partition("/")
            manifest = Manifest.build(
                ManifestEntry(str(f["path"]), int(f["size"]), Digest(str(f["sha256"]))) for f in value["files"]
            )
            record = cls(
                owner=owner,
                name=name,
                number=int(value["version"]),
                manifest=manifest,
                author=str(value["author"]),
                created_at=parse_time(value["created_at"]),
                lineage=Lineage.from_json(value.get("lineage")),
                aliases=tuple(value.get("aliases") or ()),
                single_file=bool(value.get("single_file")),
                cids=IpfsCids.from_json(value),
            )
        if str(manifest.digest) != value["digest"]:
            claimed = value["digest"]
            raise VerificationError(
                f"the server's manifest of {record.ref} hashes to {manifest.digest}, not the {claimed} it claims"
            )
        return record

    def _file_json(self, path: str, size: int, sha256: str) -> dict[str, Any]:
        cids = self.cids.files.get(path) if self.cids else None
        return {
            "path": path,
            "size": size,
            "sha256": sha256,
            "cid_v0": cids[0] if cids else None,
            "cid_v1": cids[1] if cids else None,
        }


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """What a listing shows of a version, read without its manifest."""

    number: int
    digest: str
    author: str
    total_size: int
    file_count: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ModelRecord:
    owner: str
    name: str
    description: str
    license: str | None
    tags: tuple[str, ...]
    created_at: datetime
    latest: VersionSummary | None
    version_count: int

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "name": self.full_name,
            "owner": self.owner,
            "description": self.description,
            "license": self.license,
            "tags": list(self.tags),
            "created_at": iso(self.created_at),
            "versions": self.version_count,
            "latest_version": latest.number if latest else None,
            "digest": latest.digest if latest else None,
            "author": latest.author if latest else None,
            "total_size": latest.total_size if latest else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ModelRecord:
        """A model as `aiprov ls --json` prints it. Raises BackendError for a malformed document."""
        with reading("model"):
            owner, _, name = str(value["name"]).partition("/")
            latest = None
            if value.get("latest_version") is not None:
                latest = VersionSummary(
                    number=int(value["latest_version"]),
                    digest=str(value["digest"]),
                    author=str(value["author"]),
                    total_size=int(value["total_size"]),
                    file_count=int(value.get("file_count") or 0),
                    created_at=parse_time(value["created_at"]),
                )
            return cls(
                owner=owner,
                name=name,
                description=str(value.get("description") or ""),
                license=value.get("license"),
                tags=tuple(value.get("tags") or ()),
                created_at=parse_time(value["created_at"]),
                latest=latest,
                version_count=int(value.get("versions") or 0),
            )


@dataclass(frozen=True, slots=True)
class ModelPage:
    """A page of a model listing: the models from `offset` on, and how many matched in all."""

    total: int
    offset: int
    models: list[ModelRecord]


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    time: datetime
    actor: str
    action: str
    subject: str
    model: str | None
    details: dict[str, Any]
    leaf_index: int | None = None
    """Where the event sits in the transparency log (for an inclusion proof)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": iso(self.time),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "model": self.model,
            "details": self.details,
            "leaf_index": self.leaf_index,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> EventRecord:
        with reading("event"):
            return cls(
                id=int(value["id"]),
                time=parse_time(value["time"]),
                actor=str(value["actor"]),
                action=str(value["action"]),
                subject=str(value["subject"]),
                model=value.get("model"),
                details=dict(value.get("details") or {}),
                leaf_index=None if value.get("leaf_index") is None else int(value["leaf_index"]),
            )


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """A registered dataset: one CSV or Parquet file, its target column and task."""

    owner: str
    name: str
    digest: str
    format: str
    target: str
    task: str
    rows: int
    features: tuple[str, ...]
    size: int
    author: str
    created_at: datetime

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.full_name,
            "digest": self.digest,
            "format": self.format,
            "target": self.target,
            "task": self.task,
            "rows": self.rows,
            "features": list(self.features),
            "size": self.size,
            "author": self.author,
            "created_at": iso(self.created_at),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DatasetRecord:
        with reading("dataset"):
            owner, _, name = str(value["name"]).partition("/")
            return cls(
                owner=owner,
                name=name,
                digest=str(value["digest"]),
                format=str(value["format"]),
                target=str(value["target"]),
                task=str(value["task"]),
                rows=int(value["rows"]),
                features=tuple(str(f) for f in value["features"]),
                size=int(value["size"]),
                author=str(value["author"]),
                created_at=parse_time(value["created_at"]),
            )


@dataclass(frozen=True, slots=True)
class EvaluationRecord:
    """A recorded evaluation: which version, on which data and split, with which packages, scored what."""

    id: int
    model: str
    version: int
    digest: str
    dataset: str
    dataset_digest: str
    task: str
    split: dict[str, Any]
    metrics: dict[str, float]
    packages: dict[str, str]
    duration_s: float
    evaluator: str
    created_at: datetime
    leaf_index: int
    key_fingerprint: str | None = None
    attestation: str | None = None
    """The signed in-toto statement (a DSSE envelope, as JSON text), when the evaluation was signed."""

    def summary(self) -> dict[str, Any]:
        """What `show` lists per evaluation."""
        return {
            "id": self.id,
            "dataset": self.dataset,
            "dataset_digest": self.dataset_digest,
            "split": self.split,
            "metrics": self.metrics,
            "evaluator": self.evaluator,
            "created_at": iso(self.created_at),
            "leaf_index": self.leaf_index,
            "signed": self.attestation is not None,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "model": self.model,
            "version": self.version,
            "digest": self.digest,
            "task": self.task,
            "packages": self.packages,
            "duration_s": self.duration_s,
            "key_fingerprint": self.key_fingerprint,
            "attestation": None if self.attestation is None else json.loads(self.attestation),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> EvaluationRecord:
        """An evaluation as `to_json` writes it (the attestation kept as the JSON it was served as)."""
        with reading("evaluation"):
            attestation = value.get("attestation")
            return cls(
                id=int(value["id"]),
                model=str(value["model"]),
                version=int(value["version"]),
                digest=str(value["digest"]),
                dataset=str(value["dataset"]),
                dataset_digest=str(value["dataset_digest"]),
                task=str(value["task"]),
                split=dict(value.get("split") or {}),
                metrics={str(k): float(v) for k, v in (value.get("metrics") or {}).items()},
                packages={str(k): str(v) for k, v in (value.get("packages") or {}).items()},
                duration_s=float(value.get("duration_s") or 0.0),
                evaluator=str(value["evaluator"]),
                created_at=parse_time(value["created_at"]),
                leaf_index=int(value["leaf_index"]),
                key_fingerprint=value.get("key_fingerprint"),
                attestation=None if attestation is None else json.dumps(attestation),
            )


@dataclass(frozen=True, slots=True)
class Reproduction:
    """A re-run of a recorded evaluation: its metrics now, and every difference from the record."""

    original: EvaluationRecord
    metrics: dict[str, float]
    dataset_digest: str
    packages: dict[str, str]
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.original.id,
            "model": self.original.model,
            "version": self.original.version,
            "digest": self.original.digest,
            "dataset": self.original.dataset,
            "dataset_digest": self.dataset_digest,
            "identical": self.identical,
            "recorded": self.original.metrics,
            "metrics": self.metrics,
            "differences": self.differences,
            "packages": self.packages,
            "recorded_packages": self.original.packages,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any], original: EvaluationRecord) -> Reproduction:
        """A re-run as `to_json` writes it, of the evaluation `original` (read separately: the report names it)."""
        with reading("reproduction"):
            if int(value["id"]) != original.id:
                raise ValueError(f"it is of evaluation {value['id']}, not {original.id}")
            return cls(
                original=original,
                metrics={str(k): float(v) for k, v in value["metrics"].items()},
                dataset_digest=str(value.get("dataset_digest") or original.dataset_digest),
                packages={str(k): str(v) for k, v in (value.get("packages") or {}).items()},
                differences=[dict(d) for d in value.get("differences") or ()],
            )


@dataclass(frozen=True, slots=True)
class SignatureRecord:
    """A model-signing bundle recorded for a version, and the public key (PEM) that verifies it."""

    bundle: bytes
    public_key: bytes
    key_fingerprint: str
    signer: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"key_fingerprint": self.key_fingerprint, "signer": self.signer, "created_at": iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class AnchoredCheckpoint:
    """A log checkpoint `(origin, tree size, root)` as a `CheckpointAnchored` event of the chain holds it."""

    origin: str
    tree_size: int
    root: bytes
    block: int
    tx: str


@dataclass(frozen=True, slots=True)
class ChainRegistration:
    """A version digest registered on the chain's AiprovRegistry: who claimed it, where, with what metadata."""

    digest: bytes
    owner: str
    block: int
    metadata_digest: bytes
    uri: str

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "block": self.block,
            "metadata_digest": self.metadata_digest.hex(),
            "uri": self.uri,
        }


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A publisher's statement of what a version scores on a dataset and split; its id is its log index.

    Claimed `metrics` are compared by audits within `tolerance` (absolute, in the metric's units). `packages` is the
    publisher's environment when it claimed; `attestation` the signed in-toto statement, when signed.
    """

    id: int
    model: str
    version: int
    digest: str
    dataset: str
    dataset_digest: str
    task: str
    split: dict[str, Any]
    metrics: dict[str, float]
    tolerance: float
    packages: dict[str, str]
    publisher: str
    created_at: datetime
    key_fingerprint: str | None = None
    attestation: str | None = None
    public_key: str | None = None
    """The PEM public key that verifies `attestation`, kept with it so the log alone can check the signature."""

    def details(self) -> dict[str, Any]:
        """The `claim` event's details (everything but who, when and which digest)."""
        out: dict[str, Any] = {
            "version": self.version,
            "dataset": self.dataset,
            "dataset_digest": self.dataset_digest,
            "task": self.task,
            "split": self.split,
            "metrics": self.metrics,
            "tolerance": self.tolerance,
            "packages": self.packages,
        }
        if self.attestation is not None:
            out["attestation"] = self.attestation
            out["key_fingerprint"] = self.key_fingerprint
            out["public_key"] = self.public_key
        return out

    def summary(self) -> dict[str, Any]:
        """What `show` lists per claim."""
        return {
            "id": self.id,
            "dataset": self.dataset,
            "metrics": self.metrics,
            "tolerance": self.tolerance,
            "publisher": self.publisher,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "digest": self.digest,
            "publisher": self.publisher,
            "created_at": iso(self.created_at),
            **self.details(),
            "key_fingerprint": self.key_fingerprint,
            "public_key": self.public_key,
            "attestation": None if self.attestation is None else json.loads(self.attestation),
        }

    @classmethod
    def from_event(cls, leaf_index: int, event: Any) -> ClaimRecord:
        """The claim a `claim` event (an `aiprov.core.events.Event`) at `leaf_index` records."""
        d = event.details
        with reading("claim"):
            return cls(
                id=leaf_index,
                model=str(event.model),
                version=int(d["version"]),
                digest=str(event.subject),
                dataset=str(d["dataset"]),
                dataset_digest=str(d["dataset_digest"]),
                task=str(d["task"]),
                split=dict(d["split"]),
                metrics={str(k): float(v) for k, v in d["metrics"].items()},
                tolerance=float(d["tolerance"]),
                packages={str(k): str(v) for k, v in (d.get("packages") or {}).items()},
                publisher=str(event.actor),
                created_at=event.time,
                key_fingerprint=d.get("key_fingerprint"),
                attestation=d.get("attestation"),
                public_key=d.get("public_key"),
            )

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ClaimRecord:
        with reading("claim"):
            attestation = value.get("attestation")
            return cls(
                id=int(value["id"]),
                model=str(value["model"]),
                version=int(value["version"]),
                digest=str(value["digest"]),
                dataset=str(value["dataset"]),
                dataset_digest=str(value["dataset_digest"]),
                task=str(value["task"]),
                split=dict(value["split"]),
                metrics={str(k): float(v) for k, v in value["metrics"].items()},
                tolerance=float(value["tolerance"]),
                packages={str(k): str(v) for k, v in (value.get("packages") or {}).items()},
                publisher=str(value["publisher"]),
                created_at=parse_time(value["created_at"]),
                key_fingerprint=value.get("key_fingerprint"),
                attestation=None if attestation is None else json.dumps(attestation),
                public_key=None if value.get("public_key") is None else str(value["public_key"]),
            )


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An independent re-run of a claim or an evaluation from its digests, and its verdict; id = log index.

    `target` is `claim` (`target_id` the claim's log index) or `evaluation` (`target_id` the evaluation's id,
    `target_leaf` its log index). `differences` has one row per claimed metric; `environment_mismatch` one per
    package whose version differs from the claim's (or evaluation's) environment.
    """

    id: int
    target: str
    target_id: int
    target_leaf: int
    model: str
    version: int
    digest: str
    dataset: str
    dataset_digest: str
    split: dict[str, Any]
    claimed: dict[str, float]
    tolerance: float
    metrics: dict[str, float]
    verdict: str
    differences: list[dict[str, Any]]
    packages: dict[str, str]
    environment_mismatch: list[dict[str, Any]]
    publisher: str
    auditor: str
    duration_s: float
    created_at: datetime
    key_fingerprint: str | None = None
    attestation: str | None = None
    public_key: str | None = None
    """The PEM public key that verifies `attestation`, kept with it so the log alone can check the signature."""

    def details(self) -> dict[str, Any]:
        """The `audit` event's details."""
        out: dict[str, Any] = {
            "target": self.target,
            "claim_id" if self.target == "claim" else "evaluation_id": self.target_id,
            "version": self.version,
            "dataset": self.dataset,
            "dataset_digest": self.dataset_digest,
            "split": self.split,
            "claimed": self.claimed,
            "tolerance": self.tolerance,
            "metrics": self.metrics,
            "verdict": self.verdict,
            "differences": self.differences,
            "packages": self.packages,
            "environment_mismatch": self.environment_mismatch,
            "publisher": self.publisher,
            "duration_s": self.duration_s,
        }
        if self.target == "evaluation":
            out["evaluation_leaf"] = self.target_leaf
        if self.attestation is not None:
            out["attestation"] = self.attestation
            out["key_fingerprint"] = self.key_fingerprint
            out["public_key"] = self.public_key
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "digest": self.digest,
            "auditor": self.auditor,
            "created_at": iso(self.created_at),
            **self.details(),
            "target_id": self.target_id,
            "target_leaf": self.target_leaf,
            "key_fingerprint": self.key_fingerprint,
            "public_key": self.public_key,
            "attestation": None if self.attestation is None else json.loads(self.attestation),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> AuditRecord:
        with reading("audit"):
            attestation = value.get("attestation")
            return cls(
                id=int(value["id"]),
                target=str(value["target"]),
                target_id=int(value["target_id"]),
                target_leaf=int(value["target_leaf"]),
                model=str(value["model"]),
                version=int(value["version"]),
                digest=str(value["digest"]),
                dataset=str(value["dataset"]),
                dataset_digest=str(value["dataset_digest"]),
                split=dict(value["split"]),
                claimed={str(k): float(v) for k, v in value["claimed"].items()},
                tolerance=float(value["tolerance"]),
                metrics={str(k): float(v) for k, v in value["metrics"].items()},
                verdict=str(value["verdict"]),
                differences=[dict(d) for d in value["differences"]],
                packages={str(k): str(v) for k, v in value["packages"].items()},
                environment_mismatch=[dict(d) for d in value["environment_mismatch"]],
                publisher=str(value["publisher"]),
                auditor=str(value["auditor"]),
                duration_s=float(value["duration_s"]),
                created_at=parse_time(value["created_at"]),
                key_fingerprint=value.get("key_fingerprint"),
                attestation=None if attestation is None else json.dumps(attestation),
                public_key=None if value.get("public_key") is None else str(value["public_key"]),
            )


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """A rating (`stars` 1..5) or a flag (`reason`) of a version by an account; id = log index."""

    id: int
    kind: str
    """`rate` or `flag`."""
    model: str
    version: int
    digest: str
    account: str
    created_at: datetime
    stars: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "model": self.model,
            "version": self.version,
            "digest": self.digest,
            "account": self.account,
            "created_at": iso(self.created_at),
            "stars": self.stars,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> FeedbackRecord:
        with reading("rating or flag"):
            return cls(
                id=int(value["id"]),
                kind=str(value["kind"]),
                model=str(value["model"]),
                version=int(value["version"]),
                digest=str(value["digest"]),
                account=str(value["account"]),
                created_at=parse_time(value["created_at"]),
                stars=None if value.get("stars") is None else int(value["stars"]),
                reason=None if value.get("reason") is None else str(value["reason"]),
            )


@dataclass(frozen=True, slots=True)
class ReputationRecord:
    """An account's reputation (`aiprov.core.reputation`), as of log size `log_size`."""

    account: str
    score: int
    breakdown: dict[str, Any]
    log_size: int

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "score": self.score, **self.breakdown, "log_size": self.log_size}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ReputationRecord:
        with reading("reputation"):
            rest = {k: v for k, v in value.items() if k not in ("account", "score", "log_size")}
            return cls(str(value["account"]), int(value["score"]), rest, int(value["log_size"]))


@dataclass(frozen=True, slots=True)
class ModelFilter:
    """Which models `ls` lists: every given criterion must hold."""

    author: str | None = None
    name_glob: str | None = None
    tag: str | None = None
    search: str | None = None
    min_metrics: tuple[tuple[str, float], ...] = ()
    """(metric, value): only models whose latest version has an evaluation with that metric >= value."""
    owner: str | None = None
    license: str | None = None
    scan: str | None = None
    """Only models whose latest version's push was scanned with this verdict (`safe` or `unsupported`)."""
    format: str | None = None
    """Only models whose latest version has a file the scanner detected as this format (`safetensors`, `onnx`,
    `pickle`, `zip`, ...; files registered before formats were recorded have none)."""


MODEL_SORTS = ("name", "updated", "versions", "downloads", "reputation")
"""The orders a page of models can be in: by full name, by their newest version (newest first: versions are
numbered in the order they are registered), most versions first, most downloads first (download events in
the log), by the reputation of their latest version's author (highest first; authors the log never mentions
count 0). Besides these, `metric:NAME` (METRIC_SORT): by the best value of the metric among the evaluations of
the latest version, best first (highest, or lowest for an error such as `mae`); models without one follow."""
METRIC_SORT = "metric:"
LOWER_IS_BETTER = ("mae", "rmse")
"""Metrics where a smaller value is better: `metric:` sorts them lowest first."""


def check_model_sort(sort: str, metrics: tuple[str, ...]) -> str | None:
    """The metric a `metric:NAME` sort names (None for the other sorts). Raises InvalidInput for an unknown sort."""
    if sort in MODEL_SORTS:
        return None
    if sort.startswith(METRIC_SORT) and sort[len(METRIC_SORT) :] in metrics:
        return sort[len(METRIC_SORT) :]
    hint = f"one of {', '.join(MODEL_SORTS)}, or metric:NAME ({', '.join(metrics)})"
    raise InvalidInput(f"cannot sort models by {sort!r}", hint=hint)


FORMAT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-?")


def check_format(fmt: str) -> str:
    """A format filter's value as given (lower-case letters, digits, `._-?`, at most 32). Raises InvalidInput."""
    if not fmt or len(fmt) > 32 or not set(fmt) <= FORMAT_CHARS:
        raise InvalidInput(f"{fmt!r} is not a file format", hint="e.g. safetensors, onnx, pickle, zip, npy")
    return fmt


# accounts ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as anyone may see it: its public id, never its secret."""

    token_id: str
    user: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "user": self.user,
            "scopes": list(self.scopes),
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user of the hub, with its tokens (`()` where only the user was asked for)."""

    name: str
    admin: bool
    created_at: datetime
    tokens: tuple[TokenRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "admin": self.admin,
            "created_at": iso(self.created_at),
            "tokens": [t.to_json() for t in self.tokens],
        }


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a token's hash unlocks: its user, whether that user is an admin, and the token's own state."""

    user: str
    admin: bool
    token_id: str
    scopes: tuple[str, ...]
    revoked: bool


LFS_STATES = ("pending", "uploading", "uploaded", "stored")
"""The life of an LFS grant: its upload URL not used yet, held by a PUT, its bytes received, or no upload needed
(the object was stored already when the batch was asked)."""


@dataclass(frozen=True, slots=True)
class LfsGrant:
    """A grant of the Hub's LFS batch API: `account` may put the object `sha256` of `size` bytes into `model`.

    `capability_hash` is the SHA-256 (hex) of its upload URL's secret id, None when no upload was needed. The
    grant and its URL are good until `expires_at`: the PUT, and the commit that names the object, come before.
    """

    capability_hash: str | None
    account: str
    model: str
    sha256: Digest
    size: int
    state: str
    expires_at: datetime

    @property
    def received(self) -> bool:
        """Whether the object is in the store for this grant: uploaded through it, or stored already."""
        return self.state in ("uploaded", "stored")


@dataclass(frozen=True, slots=True)
class XetToken:
    """A Xet write token: `account` may send xorbs and shards for `model` with it until `expires_at`.

    `token_hash` is the SHA-256 (hex) of the random token the client sends as `Authorization: Bearer`.
    """

    token_hash: str
    account: str
    model: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class XetXorb:
    """A xorb `account` sent for `model` through a Xet token: its Xet hash, the blob holding its bytes, until when."""

    account: str
    model: str
    xorb: str
    sha256: Digest
    size: int
    expires_at: datetime


JOB_STATES = ("queued", "running", "succeeded", "failed")
"""A job's states, in order; `succeeded` and `failed` are final."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """An evaluation or reproduction run by the hub's workers: what was asked, its state, its result or problem.

    `result` is, once succeeded, `{"evaluation": …}` (an `EvaluationRecord` document; `reused` says whether an
    identical finished evaluation answered it) or `{"reproduction": …}`; `error` is the problem body of a failed
    job (RFC 9457 fields plus aiprov's `code`).
    """

    id: int
    kind: str
    state: str
    request: dict[str, Any]
    actor: str
    attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")

    def evaluation(self) -> EvaluationRecord:
        """The evaluation a succeeded `evaluate` job recorded or reused. Raises BackendError if it holds none."""
        with reading("job result"):
            return EvaluationRecord.from_json(dict((self.result or {})["evaluation"]))

    def reproduction(self, original: EvaluationRecord) -> Reproduction:
        """The re-run a succeeded `reproduce` job made of `original`. Raises BackendError if it holds none."""
        with reading("job result"):
            return Reproduction.from_json(dict((self.result or {})["reproduction"]), original)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "request": self.request,
            "actor": self.actor,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "started_at": None if self.started_at is None else iso(self.started_at),
            "finished_at": None if self.finished_at is None else iso(self.finished_at),
            "result": self.result,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> JobRecord:
        with reading("job"):
            state = str(value["state"])
            if state not in JOB_STATES:
                raise ValueError(f"unknown state {state!r}")
            started, finished = value.get("started_at"), value.get("finished_at")
            result, error = value.get("result"), value.get("error")
            return cls(
                id=int(value["id"]),
                kind=str(value["kind"]),
                state=state,
                request=dict(value.get("request") or {}),
                actor=str(value["actor"]),
                attempts=int(value.get("attempts") or 0),
                created_at=parse_time(value["created_at"]),
                started_at=None if started is None else parse_time(started),
                finished_at=None if finished is None else parse_time(finished),
                result=None if result is None else dict(result),
                error=None if error is None else dict(error),
            )
