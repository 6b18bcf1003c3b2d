"""The registry as the Hugging Face Hub names it: a repo is a model, a revision is one of its versions.

A revision is `main` (the latest version), a version number, an alias, or a 40-hex commit id (`core.hf.commit_id`:
the first 40 hex digits of the version's manifest digest). A 40-hex revision is always read as a commit id, and
`main` always as the latest version, even if an alias has that name. Failures are `HfNotFound` errors carrying
the Hub's error code (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`), which is what its clients act on.

`commit` applies an upload (`HfCommit`: the files a commit adds, inline or as LFS objects uploaded before, and
the files it deletes) to the latest version and registers the result as a new version, scanned like a push.
`verify_snapshots` goes the other way: it checks what a Hugging Face cache holds against the versions it came
from.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiprov.adapters.hf_cache import Snapshot
from aiprov.core.digest import Digest
from aiprov.core.hf import TreeItem, commit_id, is_commit_id, tree
from aiprov.core.manifest import Manifest, ManifestEntry
from aiprov.core.names import ModelName, parse_version_number
from aiprov.errors import Conflict, HfNotFound, InvalidInput, NotFound
from aiprov.ports import BlobStore, ChainReader
from aiprov.records import ModelRecord, VersionRecord
from aiprov.services.hf_lfs import LfsUploads
from aiprov.services.registry import PushRequest, PushResult, RegistryService
from aiprov.services.verification import VerifyReport

if TYPE_CHECKING:
    from aiprov.interface import HubRegistry, HubVerification

REPO_NOT_FOUND = "RepoNotFound"
REVISION_NOT_FOUND = "RevisionNotFound"
ENTRY_NOT_FOUND = "EntryNotFound"
LATEST = "main"

REVISION_HINT = "a revision is main, a version number, an alias or a 40-hex commit id"


class HfRepos:
    """Repos, revisions, files and trees of the Hub protocol, read from the registry."""

    def __init__(self, registry: RegistryService) -> None:
        self.registry = registry

    def resolve(self, owner: str, name: str, revision: str) -> tuple[ModelRecord, VersionRecord]:
        """The model and the version `revision` names. Raises HfNotFound (RepoNotFound, RevisionNotFound)."""
        full = f"{owner}/{name}"
        try:
            ModelName.parse(full)
            model, latest = self.registry.show(full)
        except (NotFound, InvalidInput) as e:
            raise HfNotFound(f"no model named {full}", hf_code=REPO_NOT_FOUND) from e
        if revision == LATEST:
            return model, latest
        try:
            if is_commit_id(revision):
                return model, self.registry.with_digest_prefix(full, f"sha256:{revision}")
            parse_version_number(revision)  # a malformed number is no revision, as an unknown alias is none
            return model, self.registry.show(f"{full}@{revision}")[1]
        except (NotFound, InvalidInput) as e:
            raise HfNotFound(
                f"{full} has no revision {revision!r}", hf_code=REVISION_NOT_FOUND, hint=REVISION_HINT
            ) from e

    def entry(self, record: VersionRecord, path: str) -> ManifestEntry:
        """The file `path` of the version. Raises HfNotFound (EntryNotFound, with the version's commit id)."""
        found = next((e for e in record.manifest.entries if e.path == path), None)
        if found is None:
            raise self._no_entry(record, path)
        return found

    def tree(self, record: VersionRecord, path: str, *, recursive: bool) -> list[TreeItem]:
        """The files and directories under the directory `path` ("" for the root), sorted by path.

        Raises HfNotFound (EntryNotFound) if the version has no such directory.
        """
        items = tree(record.manifest.entries, path.strip("/"), recursive=recursive)
        if items is None:
            raise self._no_entry(record, path)
        return items

    @staticmethod
    def _no_entry(record: VersionRecord, path: str) -> HfNotFound:
        return HfNotFound(
            f"{record.ref} has no file or directory {path!r}",
            hf_code=ENTRY_NOT_FOUND,
            commit=commit_id(record.manifest.digest),
        )


@dataclass(frozen=True, slots=True)
class SnapshotCheck:
    """The verification of one Hugging Face cache snapshot: a report, or why none could be made (`error`)."""

    snapshot: Snapshot
    report: VerifyReport | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok

    def to_json(self) -> dict[str, Any]:
        s = self.snapshot
        out: dict[str, Any] = {"snapshot": str(s.folder), "model": s.model, "commit": s.commit}
        if self.report is not None:
            return {**out, **self.report.to_json()}
        return {**out, "ok": False, "error": self.error}


def verify_snapshots(
    registry: HubRegistry,
    verification: HubVerification,
    snapshots: list[Snapshot],
    chain: ChainReader | None = None,
) -> list[SnapshotCheck]:
    """Verify each snapshot against the version its commit id names (`VerificationService.verify`).

    Every file's sha256, nothing missing or extra, and the version's manifest, signatures and log entry.

    The commit id is recomputed here from each version's manifest, never taken from the hub. A snapshot of a
    model the hub does not have, or whose commit names none of its versions, or whose files are not where a
    Hugging Face cache keeps them, fails with an `error`. Raises what reaching the hub raises (BackendError).
    """
    checks: list[SnapshotCheck] = []
    for snapshot in snapshots:
        try:
            versions = registry.versions(snapshot.model)
            version = next((v for v in versions if commit_id(v.manifest.digest) == snapshot.commit), None)
            if version is None:
                raise NotFound(f"no version of {snapshot.model} has the commit id {snapshot.commit}")
            report = verification.verify(version.ref, path=snapshot.folder, hf_snapshot=True, chain=chain)
        except (NotFound, InvalidInput) as e:
            checks.append(SnapshotCheck(snapshot, error=e.diagnostics()))
            continue
        checks.append(SnapshotCheck(snapshot, report))
    return checks


@dataclass(frozen=True, slots=True)
class HfCommit:
    """A commit of the Hub's upload protocol, parsed: its message, parent, and the files it adds and deletes.

    `added` are the files sent inline; `lfs` the files sent as LFS objects uploaded before the commit (their
    sha256, and their size when the client gave one: a copied LFS file has none).
    """

    summary: str
    description: str
    parent: str | None
    added: dict[str, bytes]
    deleted_files: frozenset[str]
    deleted_folders: frozenset[str]
    lfs: dict[str, tuple[Digest, int | None]] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: bytes) -> HfCommit:
        """Parse the NDJSON body `HfApi.create_commit` sends. Raises InvalidInput naming what is wrong.

        An `lfsFile` names an object by `oid` (a sha256, `algo` sha256) and `size`; its bytes were uploaded before.
        """
        summary, description, parent = "", "", None
        added: dict[str, bytes] = {}
        lfs: dict[str, tuple[Digest, int | None]] = {}
        deleted_files: set[str] = set()
        deleted_folders: set[str] = set()
        for number, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    summary, description = str(value.get("summary") or ""), str(value.get("description") or "")
                    parent = value.get("parentCommit")
                elif key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise InvalidInput(f"line {number}: file content must be base64")
                    added[str(value["path"])] = base64.b64decode(value["content"], validate=True)
                elif key == "deletedFile":
                    deleted_files.add(str(value["path"]))
                elif key == "deletedFolder":
                    deleted_folders.add(str(value["path"]).rstrip("/"))
                elif key == "lfsFile":
                    lfs[str(value["path"])] = _lfs_object(number, value)
                else:
                    raise InvalidInput(f"line {number}: unknown commit operation {key!r}")
            except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
                if isinstance(e, InvalidInput):
                    raise
                raise InvalidInput(f"line {number} of the commit is not a commit operation: {e}") from e
        if parent is not None and not isinstance(parent, str):
            raise InvalidInput("parentCommit must be a commit id")
        return cls(summary, description, parent, added, frozenset(deleted_files), frozenset(deleted_folders), lfs)

    def manifest(self, previous: Manifest | None, blobs: BlobStore) -> Manifest:
        """The files of `previous` with this commit applied; its added files are stored in `blobs` first.

        An LFS file's blob is stored already (`LfsUploads` checked who uploaded it); one without a size takes the
        stored blob's. Raises HfNotFound (EntryNotFound: a deleted file or folder that is not there), InvalidInput
        (a commit that leaves no file, a bad path, an LFS object not stored), BackendError (the store).
        """
        entries = {e.path: e for e in previous.entries} if previous is not None else {}
        # The Hub's words for a deletion of nothing: its client matches them to explain the error.
        missing = sorted(self.deleted_files - entries.keys())
        missing += sorted(d for d in self.deleted_folders if not any(p.startswith(f"{d}/") for p in entries))
        if missing:
            raise HfNotFound(f"A file with this name doesn't exist: {missing[0]}", hf_code=ENTRY_NOT_FOUND)
        for path in list(entries):
            if path in self.deleted_files or any(path.startswith(f"{d}/") for d in self.deleted_folders):
                del entries[path]
        for path, data in self.added.items():
            writer = blobs.writer()
            try:
                writer.write(data)
                digest, _ = writer.commit(Digest.of(data))
            except BaseException:
                writer.abort()
                raise
            entries[path] = ManifestEntry(path, len(data), digest)
        for path, (digest, size) in self.lfs.items():
            if size is None:
                if not blobs.exists(digest):
                    raise InvalidInput(f"{path!r} names the LFS object {digest.hex}, which is not stored")
                size = blobs.size(digest)
            entries[path] = ManifestEntry(path, size, digest)
        if not entries:
            raise InvalidInput("this commit leaves the model without files", hint="a version holds at least one file")
        return Manifest.build(entries.values())


def commit(
    repos: HfRepos,
    blobs: BlobStore,
    lfs: LfsUploads,
    owner: str,
    name: str,
    revision: str,
    change: HfCommit,
    actor: str,
) -> PushResult:
    """Apply `change` to the latest version of `owner/name` (none: a new model) and register a new version.

    Through `RegistryService.commit`: scanned, registered and logged as `aiprov push` does; an LFS file is scanned
    from the bytes the blob store holds. `actor` is the committer; an LFS object must have been uploaded by them
    to this model (`LfsUploads.check_commit`) unless the latest version holds it already.
    Raises InvalidInput (a revision other than `main`, an LFS object not uploaded), Conflict
    (`parentCommit` is not the latest version; the files are an older version's), UnsafeModelError (nothing
    registered), and what `RegistryService.commit` raises.
    """
    if revision != LATEST:
        raise InvalidInput(f"commits go to main, not {revision!r}", hint="each commit becomes the latest version")
    full = f"{owner}/{name}"
    ModelName.parse(full)
    try:
        previous: VersionRecord | None = repos.registry.show(full)[1]
    except NotFound:
        previous = None
    if change.parent is not None:
        latest = commit_id(previous.manifest.digest) if previous is not None else None
        if change.parent != latest:
            raise Conflict(f"parentCommit {change.parent[:40]!r} is not the latest commit of {full} ({latest})")
    held = {e.sha256 for e in previous.manifest.entries} if previous is not None else set()
    lfs.check_commit(actor, full, ((p, d) for p, (d, _) in sorted(change.lfs.items()) if d not in held))
    manifest = change.manifest(previous.manifest if previous is not None else None, blobs)
    if previous is not None and manifest.digest != previous.manifest.digest:
        try:
            older = repos.registry.with_digest_prefix(full, str(manifest.digest))
        except NotFound:
            older = None
        if older is not None:  # registering it again would answer that old version, leaving main where it is
            raise Conflict(
                f"these files are version {older.number} of {full}, which a model holds once",
                hint=f"point an alias at it (`aiprov alias {full}@{older.number} NAME`), or change a file",
            )
    metadata = {"commit": {"summary": change.summary, "description": change.description}} if change.summary else {}
    return repos.registry.commit(manifest, PushRequest(name=full, metadata=metadata), actor=actor)


def _lfs_object(number: int, value: dict[str, Any]) -> tuple[Digest, int | None]:
    """The (sha256, size) of an `lfsFile` operation. Raises InvalidInput."""
    if value.get("algo", "sha256") != "sha256":
        raise InvalidInput(f"line {number}: an LFS object is named by its sha256, not {value.get('algo')!r}")
    oid, size = value["oid"], value.get("size")
    if not isinstance(oid, str) or len(oid) != 64:
        raise InvalidInput(f"line {number}: the LFS oid must be a sha256 (64 hex digits)")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidInput(f"line {number}: the LFS size must be a number of bytes")
    return Digest(oid), size
