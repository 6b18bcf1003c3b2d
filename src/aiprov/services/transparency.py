"""The transparency log as a service: signed checkpoints, entries, proofs and tiles.

Entries are appended by the registry inside each state change's transaction (adapters/db/log.py); this service
signs checkpoints over what was appended and hands out what a verifier needs, all in O(log n) reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiprov.core import merkle, tiles
from aiprov.core.checkpoint import Checkpoint
from aiprov.core.events import Event
from aiprov.core.note import Signer, Verifier, open_note, sign_note
from aiprov.errors import InvalidInput, NotFound, VerificationError
from aiprov.ports import LogStore, LogUnit


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str


@dataclass(frozen=True, slots=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]
    root: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
            "root": self.root.hex(),
        }

    def verify(self) -> None:
        merkle.verify_inclusion(self.leaf_hash, self.index, self.tree_size, self.hashes, self.root)


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    size1: int
    size2: int
    hashes: list[bytes]
    root1: bytes
    root2: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "size1": self.size1,
            "size2": self.size2,
            "hashes": [h.hex() for h in self.hashes],
            "root1": self.root1.hex(),
            "root2": self.root2.hex(),
        }

    def verify(self) -> None:
        merkle.verify_consistency(self.size1, self.size2, self.hashes, self.root1, self.root2)


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verify a signed checkpoint note with `verifier` and parse it; the origin must be the key's name.

    Raises VerificationError for a bad or missing signature, a foreign origin or a malformed body.
    """
    opened = open_note(note, [verifier])
    try:
        checkpoint = Checkpoint.parse(opened.text)
    except InvalidInput as e:
        raise VerificationError(f"signed checkpoint has a malformed body: {e.message}") from e
    if checkpoint.origin != verifier.name:
        raise VerificationError(f"checkpoint origin {checkpoint.origin!r} is not the log {verifier.name!r}")
    return checkpoint


class LogService:
    def __init__(self, db: LogStore, signer: Signer, *, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.signer = signer
        self.clock = clock

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier

    def publish(self) -> SignedCheckpoint:
        """Sign a checkpoint of the current tree if it grew since the last one; return the newest checkpoint."""
        with self.db.unit(write=True) as u:
            return self.publish_in(u)

    def publish_in(self, u: LogUnit) -> SignedCheckpoint:
        """`publish` inside the caller's write transaction."""
        latest = u.latest_checkpoint()
        edge = u.log_edge()
        if latest is not None and latest[0] >= edge.size:
            return SignedCheckpoint(open_checkpoint(latest[1], self.verifier), latest[1])
        checkpoint = Checkpoint(self.origin, edge.size, edge.root())
        note = sign_note(checkpoint.to_body(), [self.signer])
        u.add_checkpoint(checkpoint.size, checkpoint.root_hash, note, self.clock())
        return SignedCheckpoint(checkpoint, note)

    def latest(self) -> SignedCheckpoint:
        """The newest signed checkpoint (signing one first if the tree grew, so it never lags)."""
        return self.publish()

    def size(self) -> int:
        with self.db.unit() as u:
            return u.log_size()

    def entry(self, index: int) -> tuple[bytes, bytes, Event]:
        """(data, leaf hash, decoded event) of entry `index`."""
        with self.db.unit() as u:
            data, leaf = u.log_entry(index)
        return data, leaf, Event.from_entry(data)

    def root(self, size: int) -> bytes:
        with self.db.unit() as u:
            return self._root(u, size)

    def _root(self, u: LogUnit, size: int) -> bytes:
        found = u.log_nodes(merkle.root_nodes(size))
        return merkle.root(size, lambda level, i: found[(level, i)])

    def _check_size(self, u: LogUnit, size: int) -> None:
        current = u.log_size()
        if size > current:
            raise NotFound(f"the log has {current} entries, not {size}")

    def inclusion(self, index: int, size: int | None = None) -> InclusionProof:
        """Proof that entry `index` is in the tree of `size` entries (default: the latest checkpoint's)."""
        size = self.latest().checkpoint.size if size is None else size
        with self.db.unit() as u:
            self._check_size(u, size)
            if not 0 <= index < size:
                raise InvalidInput(f"entry {index} is not in a tree of size {size}")
            wanted = merkle.inclusion_proof_nodes(index, size) + merkle.root_nodes(size) + [(0, index)]
            found = u.log_nodes(wanted)
        lookup = lambda level, i: found[(level, i)]  # noqa: E731
        return InclusionProof(
            index, size, found[(0, index)], merkle.inclusion_proof(index, size, lookup), merkle.root(size, lookup)
        )

    def consistency(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        """Proof that the tree of `size1` entries is a prefix of the tree of `size2` (default: latest checkpoint)."""
        size2 = self.latest().checkpoint.size if size2 is None else size2
        if not 0 < size1 <= size2:
            raise InvalidInput(f"a consistency proof needs 0 < from <= to, not {size1} and {size2}")
        with self.db.unit() as u:
            self._check_size(u, size2)
            wanted = merkle.consistency_proof_nodes(size1, size2) + merkle.root_nodes(size1) + merkle.root_nodes(size2)
            found = u.log_nodes(wanted)
        lookup = lambda level, i: found[(level, i)]  # noqa: E731
        return ConsistencyProof(
            size1,
            size2,
            merkle.consistency_proof(size1, size2, lookup),
            merkle.root(size1, lookup),
            merkle.root(size2, lookup),
        )

    def tile(self, path: str) -> bytes:
        """The bytes of the C2SP tlog-tiles resource `path` (`tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`).

        Every such resource is immutable once it exists (a partial tile's width is in its path). Raises
        InvalidInput for a non-canonical path, NotFound for a tile the tree does not have (yet).
        """
        wanted = tiles.parse_path(path)
        with self.db.unit() as u:
            if isinstance(wanted, tiles.Tile):
                return u.log_tile(wanted.level, wanted.index, wanted.width)
            return tiles.encode_entry_bundle(u.log_bundle(wanted.index, wanted.width))

    def export_tiles(self, directory: Path) -> tuple[SignedCheckpoint, int]:
        """Write the C2SP tlog-tiles layout of the latest checkpoint under `directory`; return it and the file count.

        Files are written to a temporary name and renamed, the checkpoint last, so a static server reading the
        directory never sees a checkpoint whose tiles are missing. Existing tiles are immutable and kept.
        """
        signed = self.latest()
        size = signed.checkpoint.size
        written = 0
        with self.db.unit() as u:
            for tile in tiles.tiles_for_size(size):
                if not (directory / tile.path).exists():
                    data = u.log_tile(tile.level, tile.index, tile.width)
                    written += _write_once(directory / tile.path, data, replace=False)
            for bundle in tiles.entry_bundles_for_size(size):
                if not (directory / bundle.path).exists():
                    data = tiles.encode_entry_bundle(u.log_bundle(bundle.index, bundle.width))
                    written += _write_once(directory / bundle.path, data, replace=False)
        written += _write_once(directory / "checkpoint", signed.note.encode(), replace=True)
        return signed, written


def _write_once(path: Path, data: bytes, *, replace: bool) -> int:
    """Write a file atomically; tiles (full or partial: the width is in the path) never change once written."""
    if path.exists() and not replace:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return 1
