"""CAR files on disk: written atomically as a stream, read back with every block's hash checked.

A CAR is never loaded whole: reading indexes the sections (CID -> offset, length) while hashing each block, and
unpacking then seeks to each block it needs, so memory stays at one block.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


class CarUnpacker:
    """Rebuild the UnixFS files of a checked CAR under a directory, block by block."""

    def __init__(self, index: CarIndex) -> None:
        self.index = index

    def _block(self, f: BinaryIO, cid: Cid) -> bytes:
        where = self.index.blocks.get(cid)
        if where is None:
            raise InvalidInput(f"the CAR lacks block {cid}", hint="export the whole DAG (`ipfs dag export`)")
        f.seek(where[0])
        return f.read(where[1])

    def unpack(self, root: Cid, dest: Path, file_name: str) -> Path:
        """Write the DAG under `root` into `dest`: a directory's files, or one file named `file_name`.

        Returns the path to push (`dest` for a directory, the file otherwise). Raises InvalidInput for what a
        model cannot hold (HAMT-sharded directories, symlinks, bad names) or a missing block.
        """
        with open(self.index.path, "rb") as f:
            if self._is_directory(f, root):
                self._directory(f, root, dest, "")
                return dest
            refuse_git_paths([file_name], "the CAR's file name")
            target = dest / check_relative_path(file_name)
            self._write_file(f, root, target)
            return target

    def _is_directory(self, f: BinaryIO, cid: Cid) -> bool:
        if cid.codec == RAW:
            return False
        kind = decode_node(self._block(f, cid)).kind
        if kind not in (T_DIRECTORY, T_HAMT, T_FILE, T_RAW):
            raise InvalidInput(f"{cid} is a UnixFS node of type {kind}: only files and directories can be models")
        return kind in (T_DIRECTORY, T_HAMT)

    def _entries(self, f: BinaryIO, cid: Cid, depth: int = 0) -> Iterator[tuple[str, Cid]]:
        """A directory's (name, CID) entries, a HAMT-sharded one's too.

        A shard's links are named by a 2-hex-digit slot followed by the entry's name, or the slot alone for a
        child shard.
        """
        node = decode_node(self._block(f, cid))
        if node.kind == T_DIRECTORY:
            yield from ((link.name, link.cid) for link in node.links)
            return
        if depth > 8:
            raise InvalidInput(f"HAMT shard {cid} is nested deeper than its hash allows")
        for link in node.links:
            if len(link.name) == 2:
                yield from self._entries(f, link.cid, depth + 1)
            else:
                yield link.name[2:], link.cid

    def _directory(self, f: BinaryIO, cid: Cid, dest: Path, prefix: str) -> None:
        for name, child in list(self._entries(f, cid)):
            if not name or "/" in name or name in (".", ".."):
                raise InvalidInput(f"directory {cid} has an entry named {name!r}")
            rel = prefix + name
            refuse_git_paths([rel], "the CAR")
            if self._is_directory(f, child):
                self._directory(f, child, dest, rel + "/")
            else:
                self._write_file(f, child, dest / check_relative_path(rel))

    def _write_file(self, f: BinaryIO, cid: Cid, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            expected = self._file_data(f, cid, out)
        if expected is not None and target.stat().st_size != expected:
            raise InvalidInput(f"file {cid} declares {expected} bytes but its blocks hold {target.stat().st_size}")

    def _file_data(self, f: BinaryIO, cid: Cid, out: BinaryIO, depth: int = 0) -> int | None:
        """Append the file's bytes to `out`; return the size its root declares (None for a raw leaf)."""
        if depth > 32:
            raise InvalidInput(f"file DAG under {cid} is nested too deeply")
        block = self._block(f, cid)
        if cid.codec == RAW:
            out.write(block)
            return None
        node = decode_node(block)
        if node.kind not in (T_FILE, T_RAW):
            raise InvalidInput(f"{cid} inside a file is a UnixFS node of type {node.kind}")
        out.write(node.data)
        for link in node.links:
            self._file_data(f, link.cid, out, depth + 1)
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
        yield root, len(index.blocks), CarUnpacker(index).unpack(root, staging / "model", file_name or str(root))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
