"""Getting a model back from IPFS: any trustless gateways, no trust in any of them, and no need for the hub.

`fetch` rebuilds the UnixFS file or directory under a CID from blocks each checked against its CID as it
arrives (`adapters.gateways`), and writes it atomically: every file is staged, and only once all are written and
checked do they appear under the destination (`staged_directory`); on any error nothing is written.
`pull_from_ipfs` adds the proof: the files must be exactly the version's manifest, as the hub serves it (and as
its log proves it: the caller checks that first), or as a signed model-signing bundle attests it, which needs
no hub at all.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiprov.adapters.car_file import CarUnpacker
from aiprov.adapters.files import staged_directory
from aiprov.adapters.gateways import DEFAULT_TIMEOUT_S, DataFiles, GatewayBlocks, Skipped, Target, spool_path
from aiprov.core.attestation import AttestedModel, check_matches
from aiprov.core.digest import Digest
from aiprov.core.manifest import Manifest, ManifestEntry, check_relative_path, refuse_git_paths
from aiprov.core.unixfs import T_FILE, T_RAW, Cid, decode_node
from aiprov.errors import InvalidInput, VerificationError
from aiprov.records import VersionRecord
from aiprov.services.registry import RegistryService

SPOOL_SLACK = 1 / 64
"""What a DAG may hold beyond its files' bytes (UnixFS framing, inner nodes, directories): under 1 % in fact."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What was fetched: the root, the files written (with their SHA-256), and the gateways skipped."""

    root: str
    dest: Path
    manifest: Manifest
    written: tuple[str, ...]
    blocks: int
    skipped: tuple[Skipped, ...]
    ref: str | None = None
    proof: str | None = None
    """What the files were checked against: `hub manifest`, `bundle`, or None (the CIDs alone)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"root": self.root}
        if self.ref is not None:
            out["ref"] = self.ref
        out.update(
            {
                "dest": str(self.dest),
                "digest": str(self.manifest.digest),
                "files": [e.to_json() for e in self.manifest.entries],
                "written": list(self.written),
                "blocks": self.blocks,
                "checked_against": self.proof,
                "skipped": [s.to_json() for s in self.skipped],
            }
        )
        return out


@dataclass(frozen=True, slots=True)
class Expected:
    """What the fetched files must be: a version's manifest (from the hub) or a bundle's attested files."""

    manifest: Manifest | None = None
    attested: AttestedModel | None = None

    @property
    def single_name(self) -> str | None:
        """The file name of a one-file model (its DAG root is the file itself, which carries no name)."""
        if self.manifest is not None and len(self.manifest.entries) == 1:
            return self.manifest.entries[0].path
        if self.attested is not None and self.attested.single_file:
            return self.attested.files[0][0]
        return None

    def check(self, fetched: Manifest, where: str) -> None:
        """Raise VerificationError naming each file that is missing, extra or changed."""
        from aiprov.services.verification import compare_manifests

        if self.manifest is not None:
            compare_manifests(self.manifest, fetched, where)
        if self.attested is not None:
            check_matches(self.attested, fetched)


def fetch(
    root: Cid,
    dest: Path,
    gateways: Sequence[str],
    *,
    expected: Expected | None = None,
    file_name: str | None = None,
    force: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_skip: Callable[[Skipped], None] | None = None,
) -> FetchResult:
    """Write the file or directory under `root`, fetched from `gateways` (tried in order), into `dest`.

    A file root is written as `dest/<file_name>` (default: the expected model's file name, else the CID). Into
    an existing `dest`, a file already there with the expected bytes is left alone; one with other bytes (or any,
    without an expected manifest) is an error unless `force`. With `expected`, the files must be exactly it
    before any appears. Every file is fsynced before it appears. Raises InvalidInput, BackendError (no gateway
    could serve a block), IntegrityError (every gateway sent altered blocks), VerificationError (the DAG's
    files are not the expected ones).
    """
    expected = expected or Expected()
    if expected.manifest is not None:
        return _fetch_planned(root, dest, gateways, expected, expected.manifest, force, timeout_s, on_skip)
    with (
        DataFiles([], spool_path(_existing_ancestor(dest))) as sink,
        GatewayBlocks(root, list(gateways), sink, timeout_s, None, on_skip) as blocks,
    ):
        blocks.prefetch()
        listing = _listing(blocks, root, file_name or expected.single_name)
        todo = [(path, cid) for path, cid in listing if not _already_there(dest, path, None, force)]
        entries = []
        with staged_directory(dest, [path for path, _ in todo]) as staging:
            for path, cid in todo:
                target = staging / path
                whole = len(listing) == 1 and _in_place(blocks, cid, sink.spool_index, 0) == sink.spooled
                sha = sink.spool_sha256() if whole else None
                if whole and sha is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    sink.take_spool(target)  # the spool is the file: no second copy
                    entries.append(ManifestEntry(path, sink.spooled, Digest(sha)))
                    continue
                written = CarUnpacker(blocks).write_file(cid, target, sync=True)
                entries.append(ManifestEntry(path, written.size, Digest(written.sha256)))
            fetched = Manifest.build(entries)
            expected.check(fetched, f"the files under {root}")
        return _result(root, dest, fetched, todo, blocks, expected)


def _fetch_planned(
    root: Cid,
    dest: Path,
    gateways: Sequence[str],
    expected: Expected,
    manifest: Manifest,
    force: bool,
    timeout_s: float,
    on_skip: Callable[[Skipped], None] | None,
) -> FetchResult:
    """`fetch` with a manifest: each leaf's bytes go straight to their predicted place in their file.

    The plan is the manifest's files in order (the order aiprov's gateway sends them, and a depth-first walk of
    the DAG for ordinary names); each file is then checked block by block against its DAG, and one whose bytes
    did not all land in place is rebuilt from wherever they did.
    """
    entries = manifest.entries
    todo = {e.path for e in entries if not _already_there(dest, e.path, e, force)}
    if not todo:  # every file is there, checked against the manifest: nothing to fetch
        return FetchResult(str(root), dest, manifest, (), 0, (), proof=_proof(expected))
    total = manifest.total_size
    limit = total + int(total * SPOOL_SLACK) + (1 << 20) + 1024 * len(entries)
    with staged_directory(dest, sorted(todo)) as staging:
        scratch = staging / f".aiprov-scratch-{secrets.token_hex(4)}"
        targets = [
            Target(staging / e.path, e.size) if e.path in todo else Target(scratch / str(i), e.size, scratch=True)
            for i, e in enumerate(entries)
        ]
        with (
            DataFiles(targets, scratch / "spool") as sink,
            GatewayBlocks(root, list(gateways), sink, timeout_s, limit, on_skip) as blocks,
        ):
            blocks.prefetch()
            listing = dict(_listing(blocks, root, expected.single_name))
            _check_paths(manifest, set(listing), root)
            fetched = [e for e in entries if e.path not in todo]  # each was hashed against the manifest
            rebuilt: list[tuple[Path, Path]] = []
            for index, entry in enumerate(entries):
                if entry.path not in todo:
                    continue
                cid = listing[entry.path]
                sha = sink.sha256(index) if _in_place(blocks, cid, index, 0) == entry.size else None
                if sha is not None:
                    sink.sync(index)
                    fetched.append(ManifestEntry(entry.path, entry.size, Digest(sha)))
                    continue
                again = scratch / f"rebuilt-{index}"
                written = CarUnpacker(blocks).write_file(cid, again, sync=True)
                rebuilt.append((again, targets[index].path))
                fetched.append(ManifestEntry(entry.path, written.size, Digest(written.sha256)))
            got = Manifest.build(fetched)
            expected.check(got, f"the files under {root}")
            for again, target in rebuilt:  # every rebuild read its bytes before any target is replaced
                os.replace(again, target)
        shutil.rmtree(scratch, ignore_errors=True)
        return _result(root, dest, got, [(p, root) for p in sorted(todo)], blocks, expected)


def _listing(blocks: GatewayBlocks, root: Cid, single_name: str | None) -> list[tuple[str, Cid]]:
    """The (path, CID) of each file under `root`; a file root is one file named `single_name` (default: CID)."""
    listing = CarUnpacker(blocks).files(root)
    if listing is not None:
        return listing
    name = single_name or str(root)
    refuse_git_paths([name], "the file name")
    return [(check_relative_path(name), root)]


def _check_paths(manifest: Manifest, paths: set[str], root: Cid) -> None:
    """Raise VerificationError unless the DAG under `root` holds exactly the manifest's paths."""
    want = {e.path for e in manifest.entries}
    problems = [f"{p} is missing" for p in sorted(want - paths)]
    problems += [f"{p} is not in the registered model" for p in sorted(paths - want)]
    if problems:
        raise VerificationError(f"the files under {root}: " + "; ".join(problems))


def _in_place(blocks: GatewayBlocks, cid: Cid, index: int, offset: int, depth: int = 0) -> int | None:
    """How many bytes the file DAG `cid` holds, if its leaves' bytes all lie in order in `index` from `offset`.

    None when any does not (or a node is not a plain file node): the file must then be rebuilt.
    """
    leaf = blocks.leaf(cid)
    if leaf is not None:
        return leaf.length if leaf.length == 0 or (leaf.index, leaf.offset) == (index, offset) else None
    if depth > 32:
        return None
    try:
        node = decode_node(blocks.block(cid))
    except InvalidInput:
        return None
    if node.kind not in (T_FILE, T_RAW) or node.data:
        return None
    total = 0
    for link in node.links:
        n = _in_place(blocks, link.cid, index, offset + total, depth + 1)
        if n is None:
            return None
        total += n
    return total if node.filesize in (None, total) else None


def _proof(expected: Expected) -> str | None:
    proofs = [name for name, given in (("hub manifest", expected.manifest), ("bundle", expected.attested)) if given]
    return " and ".join(proofs) or None


def _result(
    root: Cid, dest: Path, got: Manifest, todo: Sequence[tuple[str, Cid]], blocks: GatewayBlocks, expected: Expected
) -> FetchResult:
    count = len(blocks.nodes) + len(blocks.leaves)
    written = tuple(p for p, _ in todo)
    return FetchResult(str(root), dest, got, written, count, tuple(blocks.skipped), proof=_proof(expected))


def pull_from_ipfs(
    record: VersionRecord,
    dest: Path,
    gateways: Sequence[str],
    *,
    cid_version: int = 0,
    force: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_skip: Callable[[Skipped], None] | None = None,
    attested: AttestedModel | None = None,
) -> FetchResult:
    """Fetch a registered version from IPFS by its recorded CID; its files must be exactly its manifest.

    With `attested` (a verified bundle's claim) they must also be exactly the signed files.

    Raises InvalidInput when the version has no CID of that version, and what `fetch` raises.
    """
    root = record.cids.of(cid_version) if record.cids is not None else None
    if root is None:
        raise InvalidInput(
            f"{record.ref} has no recorded CIDv{cid_version}", hint=f"`aiprov ipfs cid {record.ref}` records it"
        )
    refuse_git_paths((e.path for e in record.manifest.entries), record.ref)
    result = fetch(
        Cid.parse(root),
        dest,
        gateways,
        expected=Expected(manifest=record.manifest, attested=attested),
        force=force,
        timeout_s=timeout_s,
        on_skip=on_skip,
    )
    return FetchResult(
        result.root, dest, result.manifest, result.written, result.blocks, result.skipped, record.ref, result.proof
    )


def _existing_ancestor(dest: Path) -> Path:
    """`dest` or its nearest existing parent: where the spool goes (the destination's file system)."""
    for candidate in (dest.absolute(), *dest.absolute().parents):
        if candidate.is_dir():
            return candidate
    raise InvalidInput(f"cannot write {dest}")


def _already_there(dest: Path, path: str, entry: ManifestEntry | None, force: bool) -> bool:
    """Whether `dest/path` already holds the expected file (left alone then), as `pull` decides it.

    Without an expected entry, any file there is another one: refused unless `force` (then replaced).
    Raises InvalidInput.
    """
    if entry is not None:
        return RegistryService._already_there(dest, entry, force)
    target = dest / path
    if target.exists() and not force:
        raise InvalidInput(f"{target} exists", hint="use --force to overwrite it")
    return False
