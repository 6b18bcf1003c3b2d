"""Getting a model back from IPFS: any trustless gateways, no trust in any of them, and no need for the hub.

`fetch` rebuilds the UnixFS file or directory under a CID from blocks each checked against its CID as it
arrives (`adapters.gateways`), and writes it atomically: every file is staged, and only once all are written and
checked do they appear under the destination (`staged_directory`); on any error nothing is written.
`pull_from_ipfs` adds the proof: the files must be exactly the version's manifest, as the hub serves it (and as
its log proves it: the caller checks that first), or as a signed model-signing bundle attests it, which needs
no hub at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiprov.adapters.car_file import CarUnpacker
from aiprov.adapters.files import staged_directory
from aiprov.adapters.gateways import DEFAULT_TIMEOUT_S, GatewayBlocks, Skipped, spool_path
from aiprov.core.attestation import AttestedModel, check_matches
from aiprov.core.digest import Digest
from aiprov.core.manifest import Manifest, ManifestEntry, check_relative_path, refuse_git_paths
from aiprov.core.unixfs import Cid
from aiprov.errors import InvalidInput
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
    before any appears. Raises InvalidInput, BackendError (no gateway could serve a block), IntegrityError (every
    gateway sent altered blocks), VerificationError (the DAG's files are not the expected ones).
    """
    expected = expected or Expected()
    anchor = _existing_ancestor(dest)
    limit = None
    if expected.manifest is not None:
        total = expected.manifest.total_size
        limit = total + int(total * SPOOL_SLACK) + (1 << 20) + 1024 * len(expected.manifest.entries)
    blocks = GatewayBlocks(root, list(gateways), spool_path(anchor), timeout_s, limit, on_skip)
    with blocks:
        blocks.prefetch()
        unpacker = CarUnpacker(blocks)
        listing = unpacker.files(root)
        if listing is None:
            name = file_name or expected.single_name or str(root)
            refuse_git_paths([name], "the file name")
            listing = [(check_relative_path(name), root)]
        known = {e.path: e for e in expected.manifest.entries} if expected.manifest is not None else {}
        todo = [(path, cid) for path, cid in listing if not _already_there(dest, path, known.get(path), force)]
        kept = {path for path, _ in listing} - {path for path, _ in todo}
        entries = [known[path] for path in kept]  # each was hashed against the manifest and found right
        with staged_directory(dest, [path for path, _ in todo]) as staging:
            for path, cid in todo:
                written = unpacker.write_file(cid, staging / path)
                entries.append(ManifestEntry(path, written.size, Digest(written.sha256)))
            fetched = Manifest.build(entries)
            expected.check(fetched, f"the files under {root}")
        count = len(blocks.index)
        skipped = tuple(blocks.skipped)
    proofs = [name for name, given in (("hub manifest", expected.manifest), ("bundle", expected.attested)) if given]
    proof = " and ".join(proofs) or None
    return FetchResult(str(root), dest, fetched, tuple(p for p, _ in todo), count, skipped, proof=proof)


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
