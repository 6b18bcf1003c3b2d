"""Plain records that services return and interfaces print: the JSON shapes scripts depend on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiprov.core.manifest import Manifest


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


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
