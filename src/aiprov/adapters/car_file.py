"""CAR files on disk: written atomically as a stream, read back with every block's hash checked.

A CAR is never loaded whole: reading indexes the sections (CID -> offset, length) while hashing each block, and
unpacking then seeks to each block it needs, so memory stays at one block.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from aiprov.adapters.files import atomic_file
from aiprov.core import car
from aiprov.core.manifest import check_relative_path, refuse_git_paths
from aiprov.core.unixfs import RAW, T_DIRECTORY, T_FILE, T_HAMT, T_RAW, Cid, decode_node
from aiprov.errors import IntegrityError, InvalidInput

MAX_BLOCK = 4 * 1024 * 1024
"""Larger blocks are refused: IPFS nodes do not exchange blocks over 2 MiB (Bitswap), so a CAR with one is bogus."""


def write_atomic(target: Path, parts: Iterable[bytes | memoryview]) -> int:
    """Write `parts` to `target` via a temporary name in the same directory; return the bytes written.

    The target appears only complete (fsynced, then renamed); on any error nothing is left behind.
    Raises InvalidInput when the target cannot be written; whatever `parts` raises propagates.
    """
    written = 0
    with atomic_file(target) as f:
        for part in parts:
            f.write(part)
            written += len(part)
    return written


@dataclass(frozen=True, slots=True)
class CarIndex:
    """Where each block of a CAR file is, after every block was checked against its CID."""

    path: Path
    roots: list[Cid]
    blocks: dict[Cid, tuple[int, int]]


def _read_varint(f: BinaryIO) -> int | None:
    value = shift = 0
    while True:
        b = f.read(1)
        if not b:
            if shift:
                raise InvalidInput("truncated CAR: a section length is cut short")
            return None
        value |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise InvalidInput("malformed CAR: overlong varint")


def index_car(path: Path) -> CarIndex:
    """Read a CARv1 file, check that every block hashes to its CID, and index the blocks.

    Raises InvalidInput (not a CARv1, truncated, unsupported CID) or IntegrityError (a block that does not match
    its CID: the CAR is corrupted or forged), naming the block.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}") from e
    with f:
        length = _read_varint(f)
        if length is None or length > 1 << 20:
            raise InvalidInput(f"{path} is not a CAR file", hint="expected a CARv1 (`ipfs dag export`, `ipfs-car`)")
        roots = car.parse_header(f.read(length))
        blocks: dict[Cid, tuple[int, int]] = {}
        while (size := _read_varint(f)) is not None:
            start = f.tell()
            section = f.read(min(size, 64))
            if len(section) < min(size, 64):
                raise InvalidInput(f"truncated CAR {path}: the last section is cut short")
            cid, offset = Cid.read(section, 0)
            block_len = size - offset
            if block_len > MAX_BLOCK:
                raise InvalidInput(f"block {cid} in {path} has {block_len} bytes, more than any IPFS node sends")
            f.seek(start + offset)
            data = f.read(block_len)
            if len(data) != block_len:
                raise InvalidInput(f"truncated CAR {path}: block {cid} is cut short")
            if hashlib.sha256(data).digest() != cid.digest:
                raise IntegrityError(f"block {cid} in {path} does not hash to its CID: the CAR is corrupted")
            blocks[cid] = (start + offset, block_len)
    return CarIndex(path, roots, blocks)


class BlockSource(Protocol):
    """Where an unpacker gets the checked blocks of a DAG: a CAR file on disk, or trustless gateways."""

    def block(self, cid: Cid) -> bytes:
        """The block `cid` names, already checked against it. Raises InvalidInput (or BackendError) if absent."""
        ...


class CarBlocks:
    """The blocks of a checked CAR file (`index_car`), read by seeking to each one; a context manager."""

    def __init__(self, index: CarIndex) -> None:
        self.index = index
        self._file: BinaryIO | None = None

    def __enter__(self) -> CarBlocks:
        self._file = open(self.index.path, "rb")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def block(self, cid: Cid) -> bytes:
        where = self.index.blocks.get(cid)
        if where is None:
            raise InvalidInput(f"the CAR lacks block {cid}", hint="export the whole DAG (`ipfs dag export`)")
        assert self._file is not None, "read blocks inside `with CarBlocks(...)`"
        self._file.seek(where[0])
        return self._file.read(where[1])


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A file an unpacker wrote: its size and SHA-256 (hex), computed from the bytes as they were written."""

    size: int
    sha256: str


class CarUnpacker:
    """Rebuild the UnixFS files and directories of a DAG from its checked blocks, block by block.

    Memory holds one block at a time (and a directory's listing), whatever the size of the files.
    """

    def __init__(self, source: BlockSource) -> None:
        self.source = source

    def unpack(self, root: Cid, dest: Path, file_name: str) -> Path:
        """Write the DAG under `root` into `dest`: a directory's files, or one file named `file_name`.

        Returns the path to push (`dest` for a directory, the file otherwise). Raises InvalidInput for what a
        model cannot hold (HAMT-sharded directories, symlinks, bad names) or a missing block.
        """
        listing = self.files(root)
        if listing is None:
            refuse_git_paths([file_name], "the CAR's file name")
            target = dest / check_relative_path(file_name)
            self.write_file(root, target)
            return target
        for rel, cid in listing:
            self.write_file(cid, dest / rel)
        return dest

    def files(self, root: Cid) -> list[tuple[str, Cid]] | None:
        """The (relative path, file CID) of every file under the directory `root`, or None if `root` is a file.

        Only directory nodes (and each file's root node) are read. Raises InvalidInput for an entry a model
        cannot hold (a bad or `.git` name, a symlink or other non-file node).
        """
        if not self._is_directory(root):
            return None
        out: list[tuple[str, Cid]] = []
        self._directory(root, "", out)
        return out

    def _is_directory(self, cid: Cid) -> bool:
        if cid.codec == RAW:
            return False
        kind = decode_node(self.source.block(cid)).kind
        if kind not in (T_DIRECTORY, T_HAMT, T_FILE, T_RAW):
            raise InvalidInput(f"{cid} is a UnixFS node of type {kind}: only files and directories can be models")
        return kind in (T_DIRECTORY, T_HAMT)

    def _entries(self, cid: Cid, depth: int = 0) -> Iterator[tuple[str, Cid]]:
        """A directory's (name, CID) entries, a HAMT-sharded one's too.

        A shard's links are named by a 2-hex-digit slot followed by the entry's name, or the slot alone for a
        child shard.
        """
        node = decode_node(self.source.block(cid))
        if node.kind == T_DIRECTORY:
            yield from ((link.name, link.cid) for link in node.links)
            return
        if depth > 8:
            raise InvalidInput(f"HAMT shard {cid} is nested deeper than its hash allows")
        for link in node.links:
            if len(link.name) == 2:
                yield from self._entries(link.cid, depth + 1)
            else:
                yield link.name[2:], link.cid

    def _directory(self, cid: Cid, prefix: str, out: list[tuple[str, Cid]]) -> None:
        for name, child in list(self._entries(cid)):
            if not name or "/" in name or name in (".", ".."):
                raise InvalidInput(f"directory {cid} has an entry named {name!r}")
            rel = prefix + name
            refuse_git_paths([rel], "the CAR")
            if self._is_directory(child):
                self._directory(child, rel + "/", out)
            else:
                out.append((check_relative_path(rel), child))

    def write_file(self, cid: Cid, target: Path, *, sync: bool = False) -> WrittenFile:
        """Write the file DAG `cid` to the new file `target` (its parents made); return its size and SHA-256.

        With `sync`, the file is fsynced before this returns.

        Raises InvalidInput for a missing block, a node that is not part of a file, or a size that disagrees
        with the one the file's root declares.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0

        def write(data: bytes) -> None:
            nonlocal size
            h.update(data)
            out.write(data)
            size += len(data)

        with open(target, "xb") as out:
            expected = self._file_data(cid, write)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        if expected is not None and size != expected:
            raise InvalidInput(f"file {cid} declares {expected} bytes but its blocks hold {size}")
        return WrittenFile(size, h.hexdigest())

    def _file_data(self, cid: Cid, write: Callable[[bytes], None], depth: int = 0) -> int | None:
        """Pass the file's bytes to `write` in order; return the size its root declares (None for a raw leaf)."""
        if depth > 32:
            raise InvalidInput(f"file DAG under {cid} is nested too deeply")
        block = self.source.block(cid)
        if cid.codec == RAW:
            write(block)
            return None
        node = decode_node(block)
        if node.kind not in (T_FILE, T_RAW):
            raise InvalidInput(f"{cid} inside a file is a UnixFS node of type {node.kind}")
        if node.data:
            write(node.data)
        for link in node.links:
            self._file_data(link.cid, write, depth + 1)
        return node.filesize


@contextmanager
def unpacked_car(path: Path, file_name: str | None, parent: Path | None = None) -> Iterator[tuple[Cid, int, Path]]:
    """The model a one-root CAR holds, rebuilt in a temporary directory (under `parent`) removed afterwards.

    Yields (the root CID, the number of blocks, the path to push: the directory, or the one file named
    `file_name`, default the root CID). Every block is checked against its CID before anything is unpacked.
    Raises InvalidInput and IntegrityError as `index_car` and `CarUnpacker.unpack` do.
    """
    index = index_car(path)
    if len(index.roots) != 1:
        raise InvalidInput(f"{path} has {len(index.roots)} roots; a model is one DAG")
    root = index.roots[0]
    try:
        staging = Path(tempfile.mkdtemp(prefix=".aiprov-car-", dir=parent))
    except OSError as e:
        raise InvalidInput(f"cannot unpack {path}: {e.strerror}") from e
    try:
        with CarBlocks(index) as blocks:
            model = CarUnpacker(blocks).unpack(root, staging / "model", file_name or str(root))
        yield root, len(index.blocks), model
    finally:
        shutil.rmtree(staging, ignore_errors=True)
