"""IPFS: the CIDs of models, CAR export and import, pinning, and the blocks a trustless gateway serves.

The CIDs are Kubo's (`aiprov.core.unixfs`). A version's DAG is never stored: its blocks are rebuilt from the
blobs when asked for (a directory node from the recorded file CIDs alone, a file's nodes by reading its blob), so
the hub keeps one copy of the bytes and every block it sends is checked on the way out.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiprov.adapters.car_file import unpacked_car, write_atomic
from aiprov.adapters.files import LocalFile, model_files, parallel_map, stream_file
from aiprov.core import car
from aiprov.core.digest import Digest
from aiprov.core.manifest import ManifestEntry
from aiprov.core.names import Ref
from aiprov.core.unixfs import (
    DAG_PB,
    Block,
    BlockPlace,
    Cid,
    DirEntry,
    FileBuilder,
    FileRoot,
    decode_node,
    directory_cid,
    file_tsize,
)
from aiprov.errors import BackendError, IntegrityError, InvalidInput, NotFound
from aiprov.records import IpfsCids, VersionRecord
from aiprov.services.registry import DIRECTORY_DEPTH, PushRequest, PushResult, RegistryService


def check_version(version: int) -> int:
    if version not in (0, 1):
        raise InvalidInput(f"--cid-version must be 0 or 1, not {version}")
    return version


@dataclass(frozen=True, slots=True)
class CidReport:
    """The CID of a model (its file's, or its directory's) and of each file, under one CID version."""

    cid: str | None
    version: int
    files: list[tuple[str, str]]
    ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cid": self.cid, "cid_version": self.version}
        if self.ref is not None:
            out["ref"] = self.ref
        out["files"] = [{"path": p, "cid": c} for p, c in self.files]
        return out


@dataclass(frozen=True, slots=True)
class ExportResult:
    ref: str
    root: str
    blocks: int
    size: int
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "root": self.root, "blocks": self.blocks, "bytes": self.size, "path": str(self.path)}


@dataclass(frozen=True, slots=True)
class ImportResult:
    push: PushResult
    car_root: str
    blocks: int

    @property
    def same_cid(self) -> bool:
        """Whether the CAR's root is the CID aiprov computes (false for other chunkers, e.g. ipfs-car's 1 MiB)."""
        cids = self.push.version.cids
        return cids is not None and self.car_root in (cids.v0, cids.v1)

    def to_json(self) -> dict[str, Any]:
        return {**self.push.to_json(), "car_root": self.car_root, "car_blocks": self.blocks, "same_cid": self.same_cid}


@dataclass(frozen=True, slots=True)
class PinResult:
    ref: str
    cid: str
    via: str
    endpoint: str
    status: str
    request_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "cid": self.cid,
            "via": self.via,
            "endpoint": self.endpoint,
            "status": self.status,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class Located:
    """What a CID names here, in a CID version's DAG.

    A version's root (`path` None) or a file's root, or else (`record` None) an inner block of some stored file,
    rebuilt from `place` (the blob's sha256 hex, and where in it).
    """

    record: VersionRecord | None
    path: str | None
    version: int
    cid: Cid
    place: tuple[str, BlockPlace] | None = None


def local_cids(path: Path, version: int) -> CidReport:
    """The CIDs `ipfs add [-r]` gives the file or directory at `path`; nothing is stored, no home is needed.

    The files are those a push would store (same ignore rules). Raises InvalidInput.
    """
    check_version(version)
    files = model_files(path)

    def root_of(f: LocalFile) -> FileRoot:
        builder = FileBuilder(version)
        for chunk in stream_file(f.location, bytearray(min(4 * 1024 * 1024, f.size + 1))):
            builder.write(chunk)
        return builder.finish()

    roots = parallel_map(root_of, files)
    listed = [(f.path, str(r.cid)) for f, r in zip(files, roots, strict=True)]
    if path.is_file():
        return CidReport(listed[0][1], version, listed)
    entries = [DirEntry(f.path, r) for f, r in zip(files, roots, strict=True)]
    return CidReport(str(directory_cid(entries, version).cid), version, listed)


class IpfsService:
    def __init__(
        self,
        registry: RegistryService,
        *,
        api_url: str | None = None,
        pinning_url: str | None = None,
        pinning_token: str | None = None,
        pinner_options: dict[str, Any] | None = None,
    ) -> None:
        self.registry = registry
        self.api_url = api_url
        self.pinning_url = pinning_url
        self.pinning_token = pinning_token
        self.pinner_options = pinner_options or {}

    @property
    def actor(self) -> str:
        return self.registry.actor

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.registry.clock

    # CIDs -----------------------------------------------------------------------------------------------

    def record(self, ref: str) -> VersionRecord:
        """The version `ref` names, with its CIDs (computed from the blobs and recorded if not known yet)."""
        with self.registry.db.unit() as u:
            model, row = u.resolve(Ref.parse(ref))
            record = u.version_record(model, row)
        if record.cids is not None:
            return record
        cids, places = self.registry.stored_cids(record.manifest, single_file=record.single_file)
        with self.registry.db.unit(write=True) as u:
            model, row = u.resolve(Ref.parse(record.ref))
            u.set_cids(row, cids)
            u.add_block_places(places)
            return u.version_record(model, row)

    def of_ref(self, ref: str, version: int) -> CidReport:
        check_version(version)
        record = self.record(ref)
        cids = _cids(record)
        files = [(path, pair[version]) for path, pair in cids.files.items()]
        return CidReport(cids.of(version), version, sorted(files), record.ref)

    # blocks -----------------------------------------------------------------------------------------------

    def _file_blocks(self, entry: ManifestEntry, version: int) -> Iterator[Block]:
        """Every block of a stored file's DAG, children before parents, from one verified read of its blob."""
        out: list[Block] = []
        builder = FileBuilder(version, on_block=lambda cid, parts: out.append((cid, parts)))
        for chunk in self.registry.blobs.read(entry.sha256):
            builder.write(chunk)
            yield from out
            out.clear()
        builder.finish()
        yield from out

    def dag_blocks(self, record: VersionRecord, version: int, path: str | None = None) -> Iterator[Block]:
        """Every block of the version's DAG (or of one file's, `path`), the root last. Raises IntegrityError."""
        cids = _cids(record)
        entries = [e for e in record.manifest.entries if path is None or e.path == path]
        for entry in entries:
            last: Cid | None = None
            for cid, parts in self._file_blocks(entry, version):
                last = cid
                yield cid, parts
            if str(last) != cids.files[entry.path][version]:
                raise IntegrityError(f"{record.ref}: {entry.path} no longer has its recorded CID")
        if path is None and not record.single_file:
            directory = self._directory(record, version)
            yield from directory

    def _directory(self, record: VersionRecord, version: int) -> list[Block]:
        """The directory blocks of a version, from the recorded file CIDs and sizes: nothing is read."""
        cids = _cids(record)
        if cids.of(version) is None:
            raise InvalidInput(f"{record.ref} has no recorded directory CID", hint="`aiprov ipfs cid` records it")
        entries = [
            DirEntry(e.path, FileRoot(Cid.parse(cids.files[e.path][version]), file_tsize(e.size, version), e.size))
            for e in record.manifest.entries
        ]
        blocks: list[Block] = []
        root = directory_cid(entries, version, on_block=lambda cid, parts: blocks.append((cid, parts)))
        if str(root.cid) != cids.of(version):
            raise IntegrityError(f"{record.ref}: the recorded directory CID does not match its files")
        return blocks

    def car_parts(self, root: Cid, blocks: Iterator[Block]) -> Iterator[bytes | memoryview]:
        """A CARv1 of `blocks` under `root`, as a stream of byte strings; each block once."""
        yield car.header([root])
        seen: set[Cid] = set()
        for cid, parts in blocks:
            if cid in seen:
                continue
            seen.add(cid)
            yield car.section_head(cid, sum(len(p) for p in parts))
            yield from parts

    # export and import ----------------------------------------------------------------------------------

    def export(self, ref: str, out: Path, version: int) -> ExportResult:
        """Write the version's DAG as a CARv1 at `out` (atomically), the root being its directory or file node.

        Streams: memory holds one chunk and the pending nodes. Raises NotFound, IntegrityError, InvalidInput.
        """
        check_version(version)
        record = self.record(ref)
        root_text = _cids(record).of(version)
        if root_text is None:
            self._directory(record, version)  # raises the sharding explanation
        root = Cid.parse(str(root_text))
        count = 0

        def counted() -> Iterator[Block]:
            nonlocal count
            for block in self.dag_blocks(record, version):
                count += 1
                yield block

        size = write_atomic(out, self.car_parts(root, counted()))
        return ExportResult(record.ref, str(root), count, size, out)

    def import_car(self, path: Path, request: PushRequest, file_name: str | None = None) -> ImportResult:
        """Register the UnixFS file or directory of a CAR like a push (scan included).

        Every block is checked against its CID before anything is unpacked; a corrupted CAR registers nothing.
        A CAR of one file needs `file_name` (default: the root CID). Raises InvalidInput, IntegrityError,
        UnsafeModelError and what push raises.
        """
        with unpacked_car(path, file_name, self.registry.quarantine.parent) as (root, blocks, model):
            result = self.registry.push(model, request)
        return ImportResult(result, str(root), blocks)

    # pinning --------------------------------------------------------------------------------------------

    def pin(self, ref: str, version: int, *, actor: str | None = None) -> PinResult:
        """Pin the version on the configured Kubo node (CAR import) or pinning service; log an `ipfs.pin` event.

        Raises InvalidInput when neither is configured, BackendError when the endpoint is down or refuses.
        """
        from aiprov.adapters.pinning import KuboPinner, PinningService

        check_version(version)
        record = self.record(ref)
        cid = _cids(record).of(version)
        if cid is None:
            self._directory(record, version)
        root = str(cid)
        if self.api_url:
            scratch = self.registry.quarantine.parent / f".pin-{secrets.token_hex(6)}.car"
            try:
                self.export(record.ref, scratch, version)
                outcome = KuboPinner(self.api_url, **self.pinner_options).pin_car(scratch, root)
            finally:
                scratch.unlink(missing_ok=True)
        elif self.pinning_url:
            if not self.pinning_token:
                raise InvalidInput("AIPROV_IPFS_PINNING_URL is set without AIPROV_IPFS_PINNING_TOKEN")
            service = PinningService(self.pinning_url, self.pinning_token, **self.pinner_options)
            outcome = service.pin(root, record.ref)
        else:
            raise InvalidInput(
                "no IPFS endpoint to pin to",
                hint="set AIPROV_IPFS_API (a Kubo RPC URL) or AIPROV_IPFS_PINNING_URL and AIPROV_IPFS_PINNING_TOKEN",
            )
        with self.registry.db.unit(write=True) as u:
            u.add_event(
                actor=self.actor if actor is None else actor,
                action="ipfs.pin",
                subject=str(record.manifest.digest),
                model=record.full_name,
                details={
                    "version": record.number,
                    "cid": root,
                    "via": outcome.via,
                    "endpoint": outcome.endpoint,
                    "status": outcome.status,
                    "request_id": outcome.request_id,
                },
                now=self.clock(),
            )
        return PinResult(record.ref, root, outcome.via, outcome.endpoint, outcome.status, outcome.request_id)

    # gateway --------------------------------------------------------------------------------------------

    def locate(self, cid: Cid) -> Located:
        """What `cid` names here (a CIDv1 dag-pb of a CIDv0 block also matches). Raises NotFound."""
        texts = [str(cid)]
        if cid.codec == DAG_PB:
            texts.append(str(Cid(1 - cid.version, DAG_PB, cid.digest)))
        with self.registry.db.unit() as u:
            for text in texts:
                for model, row, path in u.by_cid(text):
                    record = u.version_record(model, row)
                    pair = (record.cids.v0, record.cids.v1) if path is None and record.cids else None
                    if path is not None and record.cids is not None:
                        pair = record.cids.files[path]
                    if pair is not None and text in pair:
                        return Located(record, path, pair.index(text), cid)
            for text in texts:
                place = u.block_place(text)
                if place is None:
                    continue
                version = Cid.parse(text).version
                if place[1].depth == DIRECTORY_DEPTH:  # a subdirectory: rebuilt from its version's file CIDs
                    model, row = u.resolve(Ref.parse(f"sha256:{place[0]}"))
                    return Located(u.version_record(model, row), None, version, cid, place)
                return Located(None, None, version, cid, place)
        raise NotFound(f"no model held here has the CID {cid}")

    def _place_blocks(self, sha256: str, place: BlockPlace, version: int) -> Iterator[Block]:
        """The blocks under an inner node (or a leaf), root last, rebuilt from its byte range of the blob."""
        out: list[Block] = []
        builder = FileBuilder(version, on_block=lambda cid, parts: out.append((cid, parts)))
        for chunk in self.registry.blobs.read_range(Digest(sha256), place.offset, place.length):
            builder.write(chunk)
            yield from out
            out.clear()
        root = builder.finish(depth=place.depth)
        yield from out
        if root.cid.digest != place.cid.digest:
            raise IntegrityError(f"blob sha256:{sha256} no longer holds block {place.cid}: the store was altered")

    def block(self, cid: Cid, found: Located | None = None) -> bytes:
        """The bytes of the block `cid` names, checked against it. Raises NotFound, IntegrityError."""
        found = found or self.locate(cid)
        if found.place is not None and found.place[1].depth != DIRECTORY_DEPTH:
            wanted = self._last(self._place_blocks(found.place[0], found.place[1], found.version))
        elif found.path is None and found.record is not None and not found.record.single_file:
            wanted = [b for b in self._directory(found.record, found.version) if b[0].digest == cid.digest]
        else:
            assert found.record is not None
            path = found.path or found.record.manifest.entries[0].path
            entry = next(e for e in found.record.manifest.entries if e.path == path)
            wanted = self._last(self._file_blocks(entry, found.version))
        if not wanted or wanted[-1][0].digest != cid.digest:
            raise NotFound(f"no block {cid} here")
        data = b"".join(bytes(p) for p in wanted[-1][1])
        cid.check(data)
        return data

    def _subdirectory_blocks(self, found: Located) -> Iterator[Block]:
        """Every block under a subdirectory (or HAMT shard) of a version: its files' DAGs, then its own blocks."""
        assert found.record is not None
        record = found.record
        cids = _cids(record)
        directory = self._directory(record, found.version)
        under = _descendants(directory, found.cid)
        for entry in record.manifest.entries:
            if Cid.parse(cids.files[entry.path][found.version]).digest in under:
                yield from self._file_blocks(entry, found.version)
        yield from (b for b in directory if b[0].digest in under)

    @staticmethod
    def _last(blocks: Iterator[Block]) -> list[Block]:
        """The last of a stream of blocks (a DAG's root), consuming the rest."""
        last: list[Block] = []
        for block in blocks:
            last = [block]
        return last

    def car(self, cid: Cid, found: Located, scope: str = "all") -> Iterator[bytes | memoryview]:
        """A CARv1 of the DAG under `cid` (located first, so a 404 comes before any byte), streamed.

        `scope` as the gateway's `dag-scope`: `all` the whole DAG; `block` the root block alone; `entity` a
        file's whole DAG, or a directory's own block (enough to list it).
        """
        directory = found.record is not None and found.path is None and not found.record.single_file
        if scope == "block" or (scope == "entity" and directory):
            return self.car_parts(cid, iter([(cid, (self.block(cid, found),))]))
        if found.place is not None and found.place[1].depth == DIRECTORY_DEPTH:
            return self.car_parts(cid, self._subdirectory_blocks(found))
        if found.place is not None:
            return self.car_parts(cid, self._place_blocks(found.place[0], found.place[1], found.version))
        assert found.record is not None
        return self.car_parts(cid, self.dag_blocks(found.record, found.version, found.path))


def _descendants(directory: list[Block], root: Cid) -> set[bytes]:
    """Digests of `root` and of every link reachable from it through the directory blocks given."""
    nodes = {cid.digest: b"".join(bytes(p) for p in parts) for cid, parts in directory}
    seen: set[bytes] = set()
    todo = [root.digest]
    while todo:
        digest = todo.pop()
        if digest in seen:
            continue
        seen.add(digest)
        if digest in nodes:
            todo.extend(link.cid.digest for link in decode_node(nodes[digest]).links)
    return seen


def _cids(record: VersionRecord) -> IpfsCids:
    if record.cids is None:
        raise BackendError(f"{record.ref} has no recorded CIDs")
    return record.cids
