"""Registering, finding and fetching models: the seed's uploader and registry manager, done properly."""

from __future__ import annotations

import builtins
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

from aiprov.adapters.files import (
    HashingSink,
    LocalFile,
    Progress,
    ProgressFactory,
    atomic_file,
    hash_file,
    hash_model,
    model_files,
    parallel_map,
    staged_directory,
)
from aiprov.core.canonical import canonical_json
from aiprov.core.digest import Digest, is_digest_prefix
from aiprov.core.jsonvalues import check_json
from aiprov.core.manifest import Manifest, ManifestEntry, check_model_paths, check_relative_path, refuse_git_paths
from aiprov.core.names import ModelName, Ref, check_alias
from aiprov.core.text import MAX_DESCRIPTION, check_text
from aiprov.core.unixfs import BlockPlace, CidSink, DirEntry, FileCids, directory_cid
from aiprov.errors import BackendError, IntegrityError, InvalidInput, NotFound, UnsafeModelError
from aiprov.ports import BlobStore, BlobWriter, RegistryStore
from aiprov.records import (
    EventRecord,
    IpfsCids,
    Lineage,
    ModelFilter,
    ModelPage,
    ModelRecord,
    VersionRecord,
    check_model_sort,
)
from aiprov.scanning import FileReport, ScanLimits, ScanReport, reads_through, scan_file, scan_path
from aiprov.services.reputation import ScoreCache


@dataclass(frozen=True, slots=True)
class PushResult:
    version: VersionRecord
    deduplicated: bool
    new_blobs: int
    new_bytes: int
    scan: ScanReport

    def to_json(self) -> dict[str, Any]:
        return {
            **self.version.to_json(),
            "deduplicated": self.deduplicated,
            "new_blobs": self.new_blobs,
            "new_bytes": self.new_bytes,
            "scan": self.scan.to_json(),
        }


@dataclass(frozen=True, slots=True)
class RescanResult:
    """A refused push judged again: `cleared` (registered as `version`) or `confirmed` (still refused)."""

    evidence: str
    model: str
    outcome: Literal["cleared", "confirmed"]
    scan: ScanReport
    version: VersionRecord | None

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence,
            "model": self.model,
            "outcome": self.outcome,
            "version": None if self.version is None else self.version.to_json(),
            "scan": self.scan.to_json(),
        }


@dataclass(frozen=True, slots=True)
class PushRequest:
    """What the user says about a model when pushing it; None leaves model metadata as it was."""

    name: str
    description: str | None = None
    license: str | None = None
    tags: Sequence[str] = ()
    parents: Sequence[str] = ()
    datasets: Sequence[str] = ()
    code_revision: str | None = None
    params: Mapping[str, str] | None = None
    metadata: Mapping[str, Any] | None = None


ALL = 2**62
"""A page size that holds every model (`list` with a sort)."""
MAX_LIST = 64
"""The most tags, parents or datasets one push may name."""
MAX_PARAMS = 256
MAX_METADATA_BYTES = 256 * 1024
"""The largest metadata document, in bytes of canonical JSON."""


def check_push_request(request: PushRequest) -> None:
    """The rules for what a push says about a model, whichever way it came (CLI, Python, HTTP). Raises InvalidInput.

    Free text is bounded Unicode without control characters (`core/text.py`), metadata a JSON document under the
    core's rules (`core/jsonvalues.py`) of at most MAX_METADATA_BYTES.
    """
    if request.description is not None:
        check_text(request.description, what="the description", max_chars=MAX_DESCRIPTION, multiline=True)
    if request.license is not None:
        check_text(request.license, what="the license")
    if request.code_revision is not None:
        check_text(request.code_revision, what="the code revision")
    for what, items in (("tags", request.tags), ("parents", request.parents), ("datasets", request.datasets)):
        if len(items) > MAX_LIST:
            raise InvalidInput(f"{len(items)} {what}, over the limit of {MAX_LIST}")
    for tag in request.tags:
        check_alias(tag)
    params = request.params or {}
    if len(params) > MAX_PARAMS:
        raise InvalidInput(f"{len(params)} parameters, over the limit of {MAX_PARAMS}")
    for key, value in params.items():
        check_text(key, what="a parameter's name")
        check_text(value, what=f"parameter {key!r}")
    if request.metadata:
        check_json(dict(request.metadata), what="the metadata")
        if (size := len(canonical_json(dict(request.metadata)))) > MAX_METADATA_BYTES:
            raise InvalidInput(f"the metadata is {size} bytes of JSON, over the limit of {MAX_METADATA_BYTES}")


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """Parse `K=V` strings; raise InvalidInput for a pair without '=' or with an empty key."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"parameter {pair!r} is not KEY=VALUE")
        params[key.strip()] = value
    return params


def ipfs_cids(manifest: Manifest, roots: Mapping[str, FileCids], *, single_file: bool) -> IpfsCids:
    """A version's CIDs from its files' DAG roots: the file's for a single file, else the directory's."""
    files = {e.path: (str(roots[e.path].v0.cid), str(roots[e.path].v1.cid)) for e in manifest.entries}
    if single_file:
        v0, v1 = files[manifest.entries[0].path]
        return IpfsCids(v0, v1, files)
    dirs = [directory_cid([DirEntry(e.path, roots[e.path].root(v)) for e in manifest.entries], v) for v in (0, 1)]
    return IpfsCids(str(dirs[0].cid), str(dirs[1].cid), files)


DIRECTORY_DEPTH = -1
"""The depth of a directory block's place: rebuilt from the recorded file CIDs of the version whose manifest
digest (hex) the place names instead of a blob."""


def block_places(
    manifest: Manifest, roots: Mapping[str, FileCids], *, single_file: bool
) -> list[tuple[str, BlockPlace]]:
    """(blob sha256 hex, place) of every block of the version's DAGs, for the gateway's lookups by CID.

    Directory blocks (and HAMT shards) are named by the manifest digest with depth DIRECTORY_DEPTH.
    """
    places = [(e.sha256.hex, p) for e in manifest.entries if e.path in roots for p in roots[e.path].places]
    if single_file or len(roots) != len(manifest.entries):
        return places
    for version in (0, 1):
        entries = [DirEntry(e.path, roots[e.path].root(version)) for e in manifest.entries]
        directory_cid(
            entries,
            version,
            on_block=lambda cid, _: places.append((manifest.digest.hex, BlockPlace(cid, 0, 0, DIRECTORY_DEPTH))),
        )
    return places


MAX_FILE_SCANS_BYTES = 32_000
"""The most bytes of JSON a push event spends on its files' verdicts (a log entry holds at most 65,535)."""


def file_scans(manifest: Manifest, scan: ScanReport) -> builtins.list[builtins.list[str]] | None:
    """Each file's `[format, verdict]` as the push event records it (`file_scans`), in the manifest's order.

    None when that list would exceed MAX_FILE_SCANS_BYTES (thousands of files): the event then has the overall
    verdict only, as events logged before per-file verdicts were recorded do.
    """
    by_path = {f.path: [f.format, f.verdict] for f in scan.files}
    scans = [by_path[e.path] for e in manifest.entries]
    return scans if len(canonical_json(scans)) <= MAX_FILE_SCANS_BYTES else None


def model_changes(request: PushRequest) -> dict[str, object]:
    """The model metadata a push sets, as its log event records it (`upsert_model` applies the same)."""
    changes: dict[str, object] = {}
    if request.description is not None:
        changes["description"] = request.description
    if request.license is not None:
        changes["license"] = request.license
    if request.tags:
        changes["tags"] = list(dict.fromkeys(request.tags))
    return changes


@dataclass(frozen=True, slots=True)
class _Staged:
    """A file of a push, stored but not yet published, and its scan."""

    entry: ManifestEntry
    writer: BlobWriter
    tmp: Path
    report: FileReport
    cids: FileCids | None


class _StagingSink:
    """A blob writer opened at the first chunk, told by the chunk's head whether the scan will read it back.

    Files the scanner reads through (archives, pickles, text) are written through the page cache, so the scan
    reads them from memory; large weights, whose scan reads a header, are written around it (O_DIRECT).
    """

    def __init__(self, blobs: BlobStore, size: int) -> None:
        self._blobs = blobs
        self._size = size
        self._writer: BlobWriter | None = None

    def writer(self, head: bytes = b"") -> BlobWriter:
        if self._writer is None:
            self._writer = self._blobs.writer(read_back=reads_through(head[:64], self._size))
        return self._writer

    def write(self, data: memoryview) -> object:
        return self.writer(bytes(data[:64])).write(data)

    def digest(self) -> Digest:
        """The writer's own SHA-256 (`hash_file` then hashes once); every blob writer of ours keeps one."""
        writer = self.writer()
        if not isinstance(writer, HashingSink):
            raise TypeError(f"{type(writer).__name__} does not hash what it writes")
        return writer.digest()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def _keep(source: Path, target: Path, *, link: bool) -> None:
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system: copy
    shutil.copyfile(source, target)


class RegistryService:
    def __init__(
        self,
        db: RegistryStore,
        blobs: BlobStore,
        *,
        clock: Callable[[], datetime],
        actor: str,
        quarantine: Path,
        cids: bool = True,
        scan_limits: ScanLimits | None = None,
    ) -> None:
        self.db = db
        self.scan_limits = scan_limits or ScanLimits()
        self.blobs = blobs
        self.quarantine = quarantine
        self.clock = clock
        self.actor = actor
        self.cids = cids
        """Whether push computes the IPFS CIDs of what it stores (in the same read, on a helper thread)."""
        self.scores = ScoreCache()
        """Reputation, for listings sorted by it."""

    # push -------------------------------------------------------------------------------------------------

    def push(
        self, path: Path, request: PushRequest, progress: ProgressFactory | None = None, *, actor: str | None = None
    ) -> PushResult:
        """Store the model at `path` and register it as a new version of `request.name`.

        Each file is read once: hashed and copied into an unpublished blob, which is scanned; blobs become
        visible only once every file is judged (an unsafe model publishes none), and the version only when every
        blob is stored. Same bytes under the same name return the existing version. `actor`: who pushes (by
        default the hub's own actor).
        Raises InvalidInput, NotFound (an unknown parent), UnsafeModelError (evidence kept), BackendError.
        """
        name, lineage = self._prepare(request)
        files = model_files(path)
        check_model_paths(f.path for f in files)
        advance = progress(sum(f.size for f in files)) if progress else None
        # Each file is read once: hashed into a staged blob, which is scanned before anything is published. The
        # scanner thus judges the very bytes that would be stored (a file rewritten between a scan of the
        # source and its copy cannot slip through), and reads them back from the store's disk. Tee-ing the
        # scanner off the read was the other way; it cannot serve the formats that seek (a zip's central
        # directory is at its end, the polyglot check reads the tail), so it would need this as a fallback anyway.
        held: builtins.list[_Staged] = []  # every staged file, also those of a push that fails half-way

        def stage(file: LocalFile) -> _Staged:
            held.append(item := self._stage_file(file, advance))
            return item

        try:
            staged = parallel_map(stage, files)
            scan = ScanReport.of(tuple(s.report for s in staged))
            if scan.verdict == "unsafe":  # nothing published: the staged files become the evidence
                self._refuse(name, scan, [(s.entry.path, s.tmp) for s in staged], link=True, actor=actor)
            new_blobs = [s.entry for s in staged if s.writer.commit(expected=s.entry.sha256)[1]]
        finally:
            for s in held:
                s.writer.abort()  # after a commit, a no-op
        manifest = Manifest.build(s.entry for s in staged)
        stored = [(s.entry, s.cids) for s in staged]
        single_file = path.is_file()
        roots = {entry.path: cids for entry, cids in stored if cids is not None}
        cids = ipfs_cids(manifest, roots, single_file=single_file) if self.cids else None
        places = block_places(manifest, roots, single_file=single_file)
        record, deduplicated = self._register(
            name, request, manifest, lineage, scan, single_file=single_file, cids=cids, places=places, actor=actor
        )
        return PushResult(record, deduplicated, len(new_blobs), sum(e.size for e in new_blobs), scan)

    def commit(
        self, manifest: Manifest, request: PushRequest, *, single_file: bool = False, actor: str | None = None
    ) -> PushResult:
        """Register `manifest`, whose blobs are already in the store (uploaded through the API), like `push`.

        Every blob must be stored with the size the manifest gives. The stored files are scanned exactly as
        `push` scans a local model, from a staging directory of hard links to the blobs (copies on another file
        system), and an unsafe model is refused the same way: evidence kept, `flagged` logged, nothing registered.
        `single_file` records a one-file model as pushed from a file rather than a directory.
        Raises InvalidInput (missing blob, wrong size, bad metadata, a `.git*` path), NotFound (an unknown parent),
        UnsafeModelError, BackendError.
        """
        name, lineage = self._prepare(request)
        check_model_paths(e.path for e in manifest.entries)
        if single_file and len(manifest.entries) != 1:
            raise InvalidInput(f"a single-file model has one file, not {len(manifest.entries)}")
        refuse_git_paths((e.path for e in manifest.entries), "the manifest")
        self._check_stored(manifest)
        staging = self.quarantine / f".scan-{secrets.token_hex(6)}"
        try:
            root = self._stage(manifest, staging)
            # Every entry of the manifest, by its path: no name is skipped, whatever a directory walk would skip.
            scan = ScanReport.of(tuple(scan_file(root / e.path, e.path, self.scan_limits) for e in manifest.entries))
            if scan.verdict == "unsafe":
                self._refuse(name, scan, [(e.path, root / e.path) for e in manifest.entries], link=False, actor=actor)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        cids, places = self.stored_cids(manifest, single_file=single_file) if self.cids else (None, [])
        record, deduplicated = self._register(
            name, request, manifest, lineage, scan, single_file=single_file, cids=cids, places=places, actor=actor
        )
        return PushResult(record, deduplicated, 0, 0, scan)

    def stored_cids(
        self, manifest: Manifest, *, single_file: bool
    ) -> tuple[IpfsCids, builtins.list[tuple[str, BlockPlace]]]:
        """The CIDs of a version whose blobs are stored, and where its blocks are, from one read of each blob.

        Every blob is verified as it is read. Raises NotFound (a missing blob), IntegrityError (an altered one).
        """

        def cids_of(entry: ManifestEntry) -> FileCids:
            sink = CidSink()
            for chunk in self.blobs.read(entry.sha256):
                sink.write(chunk)
            return sink.result()

        roots = dict(zip((e.path for e in manifest.entries), parallel_map(cids_of, manifest.entries), strict=True))
        places = block_places(manifest, roots, single_file=single_file)
        return ipfs_cids(manifest, roots, single_file=single_file), places

    def _prepare(self, request: PushRequest) -> tuple[ModelName, Lineage]:
        """Check a push's name and metadata before anything is stored. Raises InvalidInput, NotFound."""
        name = ModelName.parse(request.name)
        check_push_request(request)
        parents = self._resolve_parents(request.parents) if request.parents else ()
        lineage = Lineage(
            parents=parents,
            datasets=tuple(self._check_dataset(d) for d in request.datasets),
            code_revision=request.code_revision,
            params=dict(request.params or {}),
            metadata=dict(request.metadata or {}),
        )
        return name, lineage

    def _check_stored(self, manifest: Manifest) -> None:
        missing: builtins.list[str] = []
        for entry in manifest.entries:
            if not self.blobs.exists(entry.sha256):
                missing.append(entry.path)
            elif (size := self.blobs.size(entry.sha256)) != entry.size:
                raise InvalidInput(f"{entry.path}: the stored blob {entry.sha256} has {size} bytes, not {entry.size}")
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise InvalidInput(
                f"{len(missing)} file(s) not uploaded: {', '.join(missing[:5])}{more}",
                hint="upload each blob (PUT /api/v1/blobs/sha256:<hex>) before committing",
            )

    def _stage(self, manifest: Manifest, staging: Path) -> Path:
        """Lay the stored blobs out as the model's files under `staging`; return what to scan (file or dir)."""
        try:
            for entry in manifest.entries:
                target = staging / check_relative_path(entry.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.blobs.materialize(entry.sha256, target)
        except OSError as e:  # the message goes to the client: it names no directory of the server's
            raise BackendError(f"cannot stage the model for scanning: {e.strerror}") from e
        return staging

    def _register(
        self,
        name: ModelName,
        request: PushRequest,
        manifest: Manifest,
        lineage: Lineage,
        scan: ScanReport,
        *,
        single_file: bool,
        cids: IpfsCids | None,
        places: Sequence[tuple[str, BlockPlace]] = (),
        actor: str | None = None,
    ) -> tuple[VersionRecord, bool]:
        """Record the version (or find the same bytes already registered) and log the `push` event."""
        actor = self.actor if actor is None else actor
        now = self.clock()
        with self.db.unit(write=True) as u:
            # `aiprov gc` removes unreferenced blobs inside this same kind of transaction: checked here, a blob
            # cannot vanish between this check and the version that refers to it.
            missing = [e.path for e in manifest.entries if not self.blobs.exists(e.sha256)]
            if missing:
                raise BackendError(
                    f"{len(missing)} blob(s) of {name} vanished before the version was recorded: {missing[0]}",
                    hint="a garbage collection with a very short grace period ran meanwhile; push again",
                )
            model = u.upsert_model(name, request.description, request.license, request.tags, now)
            existing = u.version_by_digest(model, str(manifest.digest))
            if existing is None:
                formats = {f.path: f.format for f in scan.files}
                version = u.add_version(model, manifest, actor, lineage, now, single_file, cids, formats)
                record = VersionRecord(
                    model.owner, model.name, version.number, manifest, actor, now, lineage, (), single_file, cids
                )
            else:
                if cids is not None and u.version_record(model, existing).cids is None:
                    u.set_cids(existing, cids)  # registered before CIDs were recorded: now they are known
                record = u.version_record(model, existing)
            u.add_block_places(places)
            details: dict[str, object] = {
                "version": record.number,
                "deduplicated": existing is not None,
                "files": len(manifest.entries),
                "total_size": manifest.total_size,
                "scan": scan.verdict,
            }
            if (scans := file_scans(manifest, scan)) is not None:
                details["file_scans"] = scans
            # What this push established, so `verify` can hold every served row to its log entry: the version's
            # lineage and metadata (set once, by its first push) and the model's description, licence and tags
            # (each push may set them).
            if existing is None:
                details["lineage"] = lineage.to_json()
            details.update(model_changes(request))
            if record.cids is not None and record.cids.v0 and record.cids.v1:
                # In the log, the IPFS roots are covered by its proofs as the manifest digest is (`verify` checks).
                details["cids"] = {"v0": record.cids.v0, "v1": record.cids.v1}
            u.add_event(
                actor=actor, action="push", subject=str(manifest.digest), model=str(name), details=details, now=now
            )
        return record, existing is not None

    def _refuse(
        self, name: ModelName, scan: ScanReport, files: Sequence[tuple[str, Path]], *, link: bool, actor: str | None
    ) -> NoReturn:
        """Keep the refused `files` (manifest path, where its bytes are) in quarantine as evidence, log, raise.

        `link`: the files are push's staged blobs, about to be discarded, so a hard link keeps them without a copy
        (a copy when the quarantine is on another file system). The evidence lives outside the blob store and no
        version points at it, so nothing can ever load it; it is named by the digest of what was kept.
        """
        staging = self.quarantine / f".incoming-{secrets.token_hex(6)}"
        try:
            for rel, source in files:
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                _keep(source, target, link=link)
            manifest = hash_model(staging)
            evidence = self.quarantine / manifest.digest.hex
            if evidence.exists():
                shutil.rmtree(staging)
            else:
                os.replace(staging, evidence)
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise BackendError(f"cannot keep the refused files as evidence: {e.strerror}") from e
        with self.db.unit(write=True) as u:
            u.add_event(
                actor=self.actor if actor is None else actor,
                action="flagged",
                subject=str(manifest.digest),
                model=str(name),
                details={"reason": "unsafe", "findings": scan.findings, "quarantine": evidence.name},
                now=self.clock(),
            )
        unsafe = [f for f in scan.files if f.verdict == "unsafe"]
        first = unsafe[0]
        what = first.findings[0].detail if first.findings else first.format
        raise UnsafeModelError(
            f"{name}: refused, {len(unsafe)} unsafe file(s); {first.path}: {what}",
            scan.findings,
            hint=f"nothing was registered; the files are kept as evidence in the hub's quarantine/{evidence.name}, "
            "`aiprov scan` shows all",
        )

    def rescan(self, target: str) -> RescanResult:
        """Judge a refused push again with the current scanner and limits, and log the answer.

        `target` is a refused manifest's digest (a `flagged` event's subject, or a unique prefix of it) or
        OWNER/NAME (its latest refusal still in quarantine). Still unsafe: a `confirmed` event, the evidence
        stays. Otherwise the files are pushed as a new version of the model (with no metadata: the refusal
        recorded none), a `cleared` event names it, and the evidence is removed.
        Raises InvalidInput (a malformed target), NotFound (no such refusal in quarantine), BackendError.
        """
        evidence, flagged = self._refusal(target)
        model = ModelName.parse(str(flagged.model))
        scan = scan_path(evidence, self.scan_limits)
        version: VersionRecord | None = None
        if scan.verdict != "unsafe":
            version = self.push(evidence, PushRequest(str(model))).version
        outcome: Literal["cleared", "confirmed"] = "confirmed" if version is None else "cleared"
        details: dict[str, Any] = {"flagged": flagged.leaf_index, "scan": scan.verdict}
        if version is None:
            details["findings"] = scan.findings
        else:
            details["version"] = version.number
        with self.db.unit(write=True) as u:
            u.add_event(
                actor=self.actor,
                action=outcome,
                subject=flagged.subject,
                model=str(model),
                details=details,
                now=self.clock(),
            )
        if version is not None:
            shutil.rmtree(evidence, ignore_errors=True)
        return RescanResult(flagged.subject, str(model), outcome, scan, version)

    def _refusal(self, target: str) -> tuple[Path, EventRecord]:
        """The quarantine folder of the refusal `target` names, and its `flagged` event."""
        text = target.strip()
        with self.db.unit() as u:
            if text.lower().startswith("sha256:"):
                prefix = Ref.parse(text).digest_prefix
                assert prefix is not None
                held = [p.name for p in self._evidence() if p.name.startswith(prefix[7:])]
                if len(held) > 1:
                    raise InvalidInput(f"{text} names {len(held)} refusals", hint="give more hex digits")
                events = u.events(subject=f"sha256:{held[0]}", actions=["flagged"], limit=1) if held else []
            else:
                name = str(ModelName.parse(text))
                events = [
                    e for e in u.events(model=name, actions=["flagged"]) if (self.quarantine / e.subject[7:]).is_dir()
                ]
        if not events:
            raise NotFound(f"no refused push of {text} is in quarantine", hint="`aiprov usage OWNER/NAME` lists them")
        return self.quarantine / events[0].subject[7:], events[0]

    def _evidence(self) -> builtins.list[Path]:
        if not self.quarantine.is_dir():
            return []
        return [p for p in self.quarantine.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def _stage_file(self, file: LocalFile, progress: Progress | None) -> _Staged:
        """Read `file` once into an unpublished blob (hashed, with its CIDs) and scan the staged bytes."""
        sink = _StagingSink(self.blobs, file.size)
        cids = CidSink() if self.cids else None
        try:
            entry = hash_file(file, sink=sink, progress=progress, sides=cids.builders if cids is not None else ())
            writer = sink.writer()
            tmp = writer.staged()
            report = scan_file(tmp, file.path, self.scan_limits)
        except BaseException:
            sink.abort()
            raise
        return _Staged(entry, writer, tmp, report, cids.result() if cids is not None else None)

    def _resolve_parents(self, refs: Sequence[str]) -> tuple[str, ...]:
        """Parents are recorded as manifest digests; a name or prefix must resolve to a registered version."""
        out: list[str] = []
        with self.db.unit() as u:
            for text in refs:
                ref = Ref.parse(text)
                if ref.digest_prefix is not None and len(ref.digest_prefix) == 71:
                    out.append(ref.digest_prefix)  # a full digest may name a model registered elsewhere
                else:
                    out.append(u.resolve(ref)[1].digest)
        return tuple(dict.fromkeys(out))

    @staticmethod
    def _check_dataset(text: str) -> str:
        """A dataset is a full digest or a named benchmark (`iris`, `sklearn:digits`, …)."""
        text = text.strip()
        if text.lower().startswith("sha256:"):
            return str(Digest.parse(text))
        if not text or len(text) > 128 or any(c.isspace() for c in text):
            raise InvalidInput(f"dataset {text!r} is neither a sha256 digest nor a dataset name")
        return text

    # queries ----------------------------------------------------------------------------------------------

    def list(self, f: ModelFilter, sort: str = "name") -> builtins.list[ModelRecord]:
        """Every model matching `f`, in the order `sort` names (see `page`). Raises InvalidInput."""
        if sort == "name":
            with self.db.unit() as u:
                return u.list_models(f)
        return self.page(f, sort=sort, limit=ALL).models

    def page(self, f: ModelFilter, *, sort: str = "name", offset: int = 0, limit: int = 50) -> ModelPage:
        """One page of the models matching `f` and how many match in all.

        `sort`: one of MODEL_SORTS, or `metric:NAME` for a metric of evaluations (records.MODEL_SORTS says what
        each ranks by). Reputation is computed from the log's events in the same transaction as the page.
        Raises InvalidInput for an unknown sort or a negative offset or limit.
        """
        from aiprov.services.evaluation import METRICS

        check_model_sort(sort, METRICS)
        if offset < 0 or limit < 0:
            raise InvalidInput(f"a page needs a non-negative offset and limit, not {offset} and {limit}")
        with self.db.unit() as u:
            scores = self.scores.scores(u) if sort == "reputation" else None
            total, models = u.page_models(f, sort, offset, limit, scores=scores)
        return ModelPage(total, offset, models)

    def show(self, ref: str) -> tuple[ModelRecord, VersionRecord]:
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            return u.model_record(model), u.version_record(model, version)

    def with_digest_prefix(self, name: str, prefix: str) -> VersionRecord:
        """The one version of model `name` whose manifest digest starts with `prefix` (`sha256:` and 4+ hex).

        Unlike a bare digest reference, only this model's versions are searched (the same bytes may be a version
        of several models). Raises NotFound (no such model or version), InvalidInput (a malformed or ambiguous
        prefix).
        """
        if not is_digest_prefix(prefix):
            raise InvalidInput(f"{prefix!r} is not a digest prefix", hint="sha256: and 4 to 64 hex digits")
        with self.db.unit() as u:
            model = u.require_model(ModelName.parse(name))
            found = u.versions_by_digest_prefix(model, prefix)
            if not found:
                raise NotFound(f"{name} has no version with a digest starting with {prefix}")
            if len(found) > 1:
                raise InvalidInput(f"digest prefix {prefix} is ambiguous in {name}", hint="give more hex digits")
            return u.version_record(model, found[0])

    def children(self, digest: str) -> builtins.list[tuple[str, int]]:
        """(model, number) of the versions registered with `digest` among their parents (at most 100)."""
        with self.db.unit() as u:
            return u.children(digest)

    def versions(self, name: str, newest: int | None = None) -> builtins.list[VersionRecord]:
        """The versions of model `name`, oldest first (with `newest`: only the latest that many)."""
        with self.db.unit() as u:
            return u.versions(u.require_model(ModelName.parse(name)), newest)

    def usage(self, ref: str, limit: int = 1000) -> builtins.list[EventRecord]:
        """Events about a model (`owner/name`) or one version (`@N`, `@alias`, digest), newest first."""
        parsed = Ref.parse(ref)
        with self.db.unit() as u:
            if parsed.model is not None and parsed.number is None and parsed.alias is None:
                events = u.events(model=str(parsed.model), limit=limit)  # a refused model has events, no row
                if not events:
                    u.require_model(parsed.model)
                return events
            _, version = u.resolve(parsed)
            return u.events(subject=version.digest, limit=limit)

    # changes ----------------------------------------------------------------------------------------------

    def alias(self, ref: str, alias: str, *, actor: str | None = None) -> tuple[VersionRecord, int | None]:
        """Point `alias` of the model at the version `ref` names; return it and the number it moved from."""
        check_alias(alias)
        now = self.clock()
        with self.db.unit(write=True) as u:
            model, version = u.resolve(Ref.parse(ref))
            previous = u.set_alias(model, alias, version)
            u.add_event(
                actor=self.actor if actor is None else actor,
                action="alias",
                subject=version.digest,
                model=model.full_name,
                details={"alias": alias, "version": version.number, "previous": previous},
                now=now,
            )
            return u.version_record(model, version), previous

    def pull(
        self, ref: str, dest: Path, *, force: bool = False, progress: ProgressFactory | None = None
    ) -> VersionRecord:
        """Write the files of `ref` under `dest`, all verified against the manifest before any appears.

        The files are written and verified in a staging directory, then moved into place (`staged_directory`):
        on any error `dest` is as it was (absent, or with its old files) and no temporary directory is left.
        Into an existing directory, a file with the right bytes is left alone, one with other bytes is an error
        unless `force` (then replaced), and files the version does not have are kept. Nothing is written for a
        version that holds a `.git*` path. Raises NotFound, IntegrityError (naming the file), InvalidInput.
        """
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            record = u.version_record(model, version)
        entries = record.manifest.entries
        refuse_git_paths((e.path for e in entries), record.ref)  # registered before the rule: never written
        todo = [e for e in entries if not self._already_there(dest, e, force)]
        advance = progress(sum(e.size for e in todo)) if progress else None
        with staged_directory(dest, [e.path for e in todo]) as staging:
            parallel_map(lambda e: self._write_verified(e, staging, advance), todo)
        self.record_download(record)
        return record

    def blob_in_use(self, digest: Digest) -> bool:
        """Whether a registered version or dataset holds the blob: only those are served by digest."""
        with self.db.unit() as u:
            return u.blob_in_use(digest.hex)

    def record_download(self, record: VersionRecord, path: str | None = None) -> None:
        """Log a `download` event of the version (`path`: the one file fetched, for the API's per-file reads)."""
        details: dict[str, Any] = {"version": record.number, "files": 1 if path else len(record.manifest.entries)}
        if path is not None:
            details["path"] = path
        with self.db.unit(write=True) as u:
            u.add_event(
                actor=self.actor,
                action="download",
                subject=str(record.manifest.digest),
                model=record.full_name,
                details=details,
                now=self.clock(),
            )

    @staticmethod
    def _already_there(dest: Path, entry: ManifestEntry, force: bool) -> bool:
        target = dest / check_relative_path(entry.path)
        if not target.exists():
            return False
        if (
            target.is_file()
            and not target.is_symlink()
            and target.stat().st_size == entry.size
            and hash_file(LocalFile(entry.path, target, entry.size)).sha256 == entry.sha256
        ):
            return True
        if not force:
            raise InvalidInput(f"{target} exists with other content", hint="use --force to overwrite it")
        return False

    def _write_verified(self, entry: ManifestEntry, dest: Path, progress: Progress | None) -> None:
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_file(target) as f:
                for chunk in self.blobs.read(entry.sha256):
                    f.write(chunk)
                    if progress:
                        progress(len(chunk))
        except IntegrityError as e:
            raise IntegrityError(f"{entry.path}: {e.message}") from e
