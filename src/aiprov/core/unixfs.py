"""IPFS content identifiers of files and directories, computed exactly as Kubo's `ipfs add` computes them.

Hand-written rather than taken from PyPI: the Python multiformats/dag-pb packages are stale and slow, and what
Kubo does is small and fully specified — the dag-pb codec (PBNode/PBLink protobuf, links before data), UnixFS
`Data` messages, the 262,144-byte fixed-size chunker, the balanced layout of at most 174 links per node, and
HAMT-sharded directories above Kubo's 256 KiB threshold.
Two profiles are supported:

- CIDv0 (`ipfs add`, Kubo's `unixfs-v0-2015` profile): every block is dag-pb, leaves are UnixFS `File` nodes
  wrapping a chunk; CIDs are base58btc multihashes (`Qm…`).
- CIDv1 (`ipfs add --cid-version=1`): leaves are `raw` blocks (the chunk itself), internal nodes dag-pb; CIDs are
  base32 (`bafy…` for dag-pb, `bafk…` for raw).

A file's DAG shape depends only on its size, so a file node's cumulative size (the Tsize a directory records)
is computed from the size alone (`file_tsize`). Pure: bytes in, values out.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiprov.errors import IntegrityError, InvalidInput

CHUNK_SIZE = 262_144
"""Kubo's default fixed-size chunker (`size-262144`)."""
MAX_LINKS = 174
"""Kubo's balanced layout puts at most this many links in a file node (`UnixFSFileMaxLinks`)."""
HAMT_THRESHOLD = 262_144
"""Kubo shards a directory (HAMT) when the sum of its links' name and CID byte lengths exceeds this."""

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12

CidVersion = Literal[0, 1]

# UnixFS Data.Type values (unixfs.proto).
T_RAW, T_DIRECTORY, T_FILE, T_METADATA, T_SYMLINK, T_HAMT = 0, 1, 2, 3, 4, 5

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


# varints and multibase ------------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    """Unsigned LEB128 (protobuf varint, multiformats unsigned-varint)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at `pos`; return (value, position after it). Raises InvalidInput if truncated."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise InvalidInput("truncated or overlong varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise InvalidInput(f"{text!r} is not base58btc")
        n = n * 58 + _B58_INDEX[c]
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


# CIDs --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cid:
    """A CID with a SHA2-256 multihash: version 0 (dag-pb only) or 1 (dag-pb or raw)."""

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != 32:
            raise InvalidInput("a sha2-256 CID carries a 32-byte digest")
        if self.version == 0 and self.codec != DAG_PB:
            raise InvalidInput("a CIDv0 is always dag-pb")
        if self.version not in (0, 1) or self.codec not in (DAG_PB, RAW):
            raise InvalidInput(f"unsupported CID (version {self.version}, codec 0x{self.codec:x})")

    @property
    def multihash(self) -> bytes:
        return bytes((SHA2_256, 32)) + self.digest

    @property
    def binary(self) -> bytes:
        """The binary CID, as dag-pb links and CAR sections carry it."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + base64.b32encode(self.binary).decode().lower().rstrip("=")

    def check(self, block: bytes | memoryview) -> None:
        """Raise IntegrityError unless `block` hashes to this CID."""
        if hashlib.sha256(block).digest() != self.digest:
            raise IntegrityError(f"block {self} does not hash to its CID")

    @classmethod
    def of(cls, block: bytes | memoryview, version: int, codec: int = DAG_PB) -> Cid:
        return cls(version, codec, hashlib.sha256(block).digest())

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse a CIDv0 (`Qm…`) or a CIDv1 in base32 (`b…`) or base58btc (`z…`). Raises InvalidInput."""
        text = text.strip()
        if len(text) == 46 and text.startswith("Qm"):
            return cls.from_bytes(b58decode(text))
        if text[:1] in ("b", "B"):
            body = text[1:].upper()
            try:
                raw = base64.b32decode(body + "=" * (-len(body) % 8))
            except ValueError:
                raise InvalidInput(f"{text!r} is not a base32 CID") from None
            return cls.from_bytes(raw)
        if text[:1] == "z":
            return cls.from_bytes(b58decode(text[1:]))
        raise InvalidInput(f"{text!r} is not a CID", hint="expected a CIDv0 (Qm…) or a CIDv1 in base32 (bafy…)")

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> Cid:
        """Parse a binary CID that is exactly `raw`. Raises InvalidInput."""
        cid, end = cls.read(raw, 0)
        if end != len(raw):
            raise InvalidInput("trailing bytes after a CID")
        return cid

    @classmethod
    def read(cls, data: bytes | memoryview, pos: int) -> tuple[Cid, int]:
        """Decode a binary CID at `pos`; return it and the position after it. Raises InvalidInput."""
        if data[pos : pos + 2] == b"\x12\x20":
            version, codec = 0, DAG_PB
        else:
            version, pos = read_varint(data, pos)
            if version != 1:
                raise InvalidInput(f"unsupported CID version {version}")
            codec, pos = read_varint(data, pos)
        hash_code, pos = read_varint(data, pos)
        length, pos = read_varint(data, pos)
        if hash_code != SHA2_256 or length != 32:
            raise InvalidInput(f"unsupported multihash 0x{hash_code:x}/{length} (only sha2-256 is supported)")
        digest = bytes(data[pos : pos + 32])
        if len(digest) != 32:
            raise InvalidInput("truncated CID")
        return cls(version, codec, digest), pos + 32


# dag-pb and UnixFS encoding ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """A dag-pb PBLink: the child's CID, its name ('' in files) and its cumulative DAG size."""

    cid: Cid
    name: str
    tsize: int


def _field_bytes(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + varint(len(value)) + value


def encode_link(link: Link) -> bytes:
    # PBLink: Hash = 1, Name = 2, Tsize = 3. Kubo writes Name even when empty (file links), as does go-merkledag.
    body = _field_bytes(0x0A, link.cid.binary) + _field_bytes(0x12, link.name.encode()) + b"\x18" + varint(link.tsize)
    return _field_bytes(0x12, body)


def encode_node(links: Sequence[Link], data: bytes | None) -> bytes:
    """A dag-pb PBNode in canonical form: Links (field 2) first, then Data (field 1)."""
    out = b"".join(encode_link(link) for link in links)
    return out if data is None else out + _field_bytes(0x0A, data)


def unixfs_data(
    kind: int,
    *,
    data: bytes = b"",
    filesize: int | None = None,
    blocksizes: Sequence[int] = (),
    hash_type: int | None = None,
    fanout: int | None = None,
) -> bytes:
    """A UnixFS `Data` message.

    Fields: Type = 1, Data = 2 (omitted when empty), filesize = 3, blocksizes = 4 (unpacked), hashType = 5 and
    fanout = 6 (HAMT shards).
    """
    out = b"\x08" + varint(kind)
    if data:
        out += _field_bytes(0x12, data)
    if filesize is not None:
        out += b"\x18" + varint(filesize)
    out += b"".join(b"\x20" + varint(s) for s in blocksizes)
    if hash_type is not None:
        out += b"\x28" + varint(hash_type)
    if fanout is not None:
        out += b"\x30" + varint(fanout)
    return out


DIRECTORY_DATA = unixfs_data(T_DIRECTORY)


@dataclass(frozen=True, slots=True)
class Node:
    """A decoded dag-pb node and its UnixFS data."""

    links: tuple[Link, ...]
    kind: int
    data: bytes
    filesize: int | None
    blocksizes: tuple[int, ...]


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Protobuf fields of `buf` as (field number, wire type, value): varints as int, bytes as a memoryview."""
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        key, pos = read_varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(view, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = read_varint(view, pos)
            if pos + length > len(view):
                raise InvalidInput("truncated protobuf field")
            yield number, wire, view[pos : pos + length]
            pos += length
        else:
            raise InvalidInput(f"unexpected protobuf wire type {wire}")


def decode_node(block: bytes | memoryview) -> Node:
    """Decode a dag-pb block holding UnixFS data. Raises InvalidInput for anything else."""
    links: list[Link] = []
    data: memoryview | None = None
    for number, wire, value in _fields(block):
        if number == 2 and isinstance(value, memoryview):
            cid: Cid | None = None
            name, tsize = "", 0
            for n, _, v in _fields(value):
                if n == 1 and isinstance(v, memoryview):
                    cid = Cid.from_bytes(v)
                elif n == 2 and isinstance(v, memoryview):
                    name = bytes(v).decode("utf-8", "replace")
                elif n == 3 and isinstance(v, int):
                    tsize = v
            if cid is None:
                raise InvalidInput("a dag-pb link without a hash")
            links.append(Link(cid, name, tsize))
        elif number == 1 and isinstance(value, memoryview):
            data = value
        else:
            raise InvalidInput(f"unexpected dag-pb field {number} (wire type {wire})")
    if data is None:
        raise InvalidInput("a dag-pb node without UnixFS data")
    kind, content, filesize, sizes = -1, b"", None, []
    for n, _, v in _fields(data):
        if n == 1 and isinstance(v, int):
            kind = v
        elif n == 2 and isinstance(v, memoryview):
            content = bytes(v)
        elif n == 3 and isinstance(v, int):
            filesize = v
        elif n == 4 and isinstance(v, int):
            sizes.append(v)
    if kind < 0:
        raise InvalidInput("UnixFS data without a type")
    return Node(tuple(links), kind, content, filesize, tuple(sizes))


def leaf_span(block: bytes | memoryview) -> tuple[int, int] | None:
    """Where a UnixFS file leaf's bytes lie in its dag-pb block, as (start, end); None for any other node.

    A leaf is a dag-pb node without links whose UnixFS type is File or Raw; its bytes are its UnixFS Data field
    (the last one, as `decode_node` reads it; (end, end) of the message when absent). Raises InvalidInput for
    a block `decode_node` refuses.
    """
    fast = _kubo_leaf_span(block)
    if fast is not None:
        return fast
    node = decode_node(block)
    if node.links or node.kind not in (T_FILE, T_RAW):
        return None
    view = memoryview(block)
    outer: tuple[int, int] | None = None
    pos = 0
    while pos < len(view):  # decode_node checked it: only length-delimited Data fields (1) remain
        key, pos = read_varint(view, pos)
        length, pos = read_varint(view, pos)
        if key == 0x0A:
            outer = (pos, pos + length)
        pos += length
    assert outer is not None
    span = (outer[1], outer[1])
    pos = outer[0]
    while pos < outer[1]:
        key, pos = read_varint(view, pos)
        if key & 7 == 0:
            _, pos = read_varint(view, pos)
            continue
        length, pos = read_varint(view, pos)
        if key == 0x12:
            span = (pos, pos + length)
        pos += length
    return span


def _kubo_leaf_span(block: bytes | memoryview) -> tuple[int, int] | None:
    """The span of a leaf encoded exactly as Kubo and aiprov encode one (`_leaf_parts`), found without copying.

    None for any other encoding (the general parse then decides).
    """
    view = memoryview(block)
    try:
        if len(view) < 4 or view[0] != 0x0A:
            return None
        inner_len, pos = read_varint(view, 1)
        if pos + inner_len != len(view) or bytes(view[pos : pos + 3]) != b"\x08\x02\x12":
            return None
        n, start = read_varint(view, pos + 3)
    except InvalidInput:
        return None
    tail = b"\x18" + varint(n)
    if start + n + len(tail) != len(view) or bytes(view[start + n :]) != tail:
        return None
    return start, start + n


# files --------------------------------------------------------------------------------------------------------

Block = tuple[Cid, tuple[bytes | memoryview, ...]]
"""A block and its bytes, in parts (a CIDv0 leaf is a protobuf prefix, the chunk, and a suffix: never copied)."""

BlockSink = Callable[[Cid, tuple[bytes | memoryview, ...]], None]


def _leaf_parts(n: int) -> tuple[bytes, bytes]:
    """The protobuf bytes around an `n`-byte chunk in a CIDv0 leaf: PBNode{Data: UnixFS{File, Data, filesize}}."""
    if n == 0:
        return _field_bytes(0x0A, unixfs_data(T_FILE, filesize=0)), b""
    inner_head = b"\x08\x02\x12" + varint(n)
    inner_tail = b"\x18" + varint(n)
    inner_len = len(inner_head) + n + len(inner_tail)
    return b"\x0a" + varint(inner_len) + inner_head, inner_tail


@dataclass(frozen=True, slots=True)
class FileRoot:
    """The root of a file's DAG: its CID, cumulative block size (Tsize) and content size."""

    cid: Cid
    tsize: int
    size: int


@dataclass(frozen=True, slots=True)
class BlockPlace:
    """Where a block of a file's DAG comes from: enough to rebuild it from the file alone.

    The block is the node over the `length` bytes at `offset`, `depth` levels above the leaves (0: a leaf).
    """

    cid: Cid
    offset: int
    length: int
    depth: int


@dataclass(slots=True)
class _Child:
    cid: Cid
    tsize: int
    size: int
    offset: int
    depth: int


class FileBuilder:
    """Build a file's UnixFS DAG from bytes written in pieces of any size (`write`, then `finish`).

    Leaves are hashed as soon as a 256 KiB chunk is complete, straight from the caller's buffer (no copy unless
    a chunk straddles two writes). A full node of 174 links is emitted at once, so memory stays bounded by one
    pending node per tree level. `on_block` receives every block in post-order (children before parents);
    with `places`, `self.places` lists where each block comes from (what a gateway needs to serve it later).
    """

    __slots__ = ("_leafed", "_levels", "_on_block", "_partial", "_size", "places", "version")

    def __init__(self, version: int = 0, on_block: BlockSink | None = None, *, places: bool = False) -> None:
        if version not in (0, 1):
            raise InvalidInput(f"CID version must be 0 or 1, not {version}")
        self.version = version
        self._on_block = on_block
        self._partial = bytearray()
        self._levels: list[list[_Child]] = [[]]
        self._size = 0
        self._leafed = 0
        self.places: list[BlockPlace] | None = [] if places else None

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self._size += len(view)
        pos = 0
        if self._partial:
            take = min(CHUNK_SIZE - len(self._partial), len(view))
            self._partial += view[:take]
            pos = take
            if len(self._partial) < CHUNK_SIZE:
                return
            self._leaf(memoryview(self._partial))
            self._partial = bytearray()
        end = len(view)
        while end - pos >= CHUNK_SIZE:
            self._leaf(view[pos : pos + CHUNK_SIZE])
            pos += CHUNK_SIZE
        if pos < end:
            self._partial += view[pos:end]

    def _leaf(self, chunk: memoryview) -> None:
        offset = self._leafed
        self._leafed += len(chunk)
        if self.version == 1:
            cid = Cid(1, RAW, hashlib.sha256(chunk).digest())
            if self._on_block is not None:
                self._on_block(cid, (chunk,))
            tsize = len(chunk)
        else:
            head, tail = _leaf_parts(len(chunk))
            h = hashlib.sha256(head)
            h.update(chunk)
            h.update(tail)
            cid = Cid(0, DAG_PB, h.digest())
            if self._on_block is not None:
                self._on_block(cid, (head, chunk, tail))
            tsize = len(head) + len(chunk) + len(tail)
        if self.places is not None:
            self.places.append(BlockPlace(cid, offset, len(chunk), 0))
        self._push(0, _Child(cid, tsize, len(chunk), offset, 0))

    def _push(self, level: int, child: _Child) -> None:
        if level == len(self._levels):
            self._levels.append([])
        pending = self._levels[level]
        pending.append(child)
        if len(pending) == MAX_LINKS:
            self._levels[level] = []
            self._push(level + 1, self._node(pending))

    def _node(self, children: Sequence[_Child]) -> _Child:
        size = sum(c.size for c in children)
        block = encode_node(
            [Link(c.cid, "", c.tsize) for c in children],
            unixfs_data(T_FILE, filesize=size, blocksizes=[c.size for c in children]),
        )
        cid = Cid.of(block, self.version)
        if self._on_block is not None:
            self._on_block(cid, (block,))
        first = children[0]
        if self.places is not None:
            self.places.append(BlockPlace(cid, first.offset, size, first.depth + 1))
        return _Child(cid, len(block) + sum(c.tsize for c in children), size, first.offset, first.depth + 1)

    def finish(self, depth: int | None = None) -> FileRoot:
        """The root of the DAG (the leaf itself for a file of one chunk or less). The builder is then spent.

        `depth` forces the root that many levels above the leaves, wrapping a lone child as the balanced
        layout does below a root: how one inner node of a larger file is rebuilt from its byte range.
        """
        if self._partial or self._size == 0:
            self._leaf(memoryview(bytes(self._partial)))
            self._partial = bytearray()
        level = 0
        while True:
            pending = self._levels[level]
            lower_empty = all(not self._levels[i] for i in range(level))
            top = len(self._levels) - 1
            if level == top and len(pending) == 1 and lower_empty and (depth is None or level >= depth):
                root = pending[0]
                return FileRoot(root.cid, root.tsize, root.size)
            if pending:
                self._levels[level] = []
                self._push(level + 1, self._node(pending))
            level += 1


def file_cid(data: bytes | memoryview, version: int = 0) -> FileRoot:
    """The UnixFS DAG root of `data` held in memory (tests and small files)."""
    builder = FileBuilder(version)
    builder.write(data)
    return builder.finish()


def _leaf_block_size(n: int, version: int) -> int:
    if version == 1:
        return n
    head, tail = _leaf_parts(n)
    return len(head) + n + len(tail)


_DUMMY = Cid(0, DAG_PB, b"\0" * 32)


def file_tsize(size: int, version: int) -> int:
    """The cumulative block size (Tsize) of the DAG of any file of `size` bytes: it depends on the size alone."""
    if size <= CHUNK_SIZE:
        return _leaf_block_size(size, version)
    full, rest = divmod(size, CHUNK_SIZE)
    children = [(_leaf_block_size(CHUNK_SIZE, version), CHUNK_SIZE)] * full
    if rest:
        children.append((_leaf_block_size(rest, version), rest))
    link_cid = _DUMMY if version == 0 else Cid(1, RAW, b"\0" * 32)
    while len(children) > 1:
        groups = [children[i : i + MAX_LINKS] for i in range(0, len(children), MAX_LINKS)]
        nxt = []
        for group in groups:
            size_sum = sum(s for _, s in group)
            block = encode_node(
                [Link(link_cid, "", t) for t, _ in group],
                unixfs_data(T_FILE, filesize=size_sum, blocksizes=[s for _, s in group]),
            )
            nxt.append((len(block) + sum(t for t, _ in group), size_sum))
        children = nxt
        link_cid = _DUMMY if version == 0 else Cid(1, DAG_PB, b"\0" * 32)
    return children[0][0]


# directories ----------------------------------------------------------------------------------------------


class ShardingRequired(InvalidInput):
    """A directory so large that Kubo would shard it (HAMT) where the caller asked for a flat one."""

    code = "sharding_required"


HAMT_FANOUT = 256
MURMUR3_X64_64 = 0x22
"""The multicodec of the hash UnixFS HAMT shards use: the first 64 bits of murmur3-x64-128 (seed 0)."""

_M64 = (1 << 64) - 1


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


def murmur3_64(data: bytes) -> bytes:
    """The first 64 bits of MurmurHash3 x64-128 with seed 0, big-endian: what go-ipfs HAMTs hash names with."""
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = 0
    blocks = len(data) // 16
    for i in range(blocks):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        h1 ^= (_rotl((k1 * c1) & _M64, 31) * c2) & _M64
        h1 = (((_rotl(h1, 27) + h2) & _M64) * 5 + 0x52DCE729) & _M64
        h2 ^= (_rotl((k2 * c2) & _M64, 33) * c1) & _M64
        h2 = (((_rotl(h2, 31) + h1) & _M64) * 5 + 0x38495AB5) & _M64
    tail = data[16 * blocks :]
    if len(tail) > 8:
        h2 ^= (_rotl((int.from_bytes(tail[8:], "little") * c2) & _M64, 33) * c1) & _M64
    if tail:
        h1 ^= (_rotl((int.from_bytes(tail[:8], "little") * c1) & _M64, 31) * c2) & _M64
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1, h2 = _fmix(h1), _fmix(h2)
    return ((h1 + h2) & _M64).to_bytes(8, "big")


@dataclass(slots=True)
class _Shard:
    slots: dict[int, Link | _Shard] = field(default_factory=dict)


def _shard_put(shard: _Shard, link: Link, depth: int) -> None:
    """Insert by the `depth`-th byte of the name's hash; two names in one slot move into a child shard."""
    hashed = murmur3_64(link.name.encode())
    if depth >= len(hashed):
        raise InvalidInput(f"HAMT hash collision on {link.name!r}")
    index = hashed[depth]
    current = shard.slots.get(index)
    if current is None:
        shard.slots[index] = link
    elif isinstance(current, _Shard):
        _shard_put(current, link, depth + 1)
    else:
        child = _Shard()
        shard.slots[index] = child
        _shard_put(child, current, depth + 1)
        _shard_put(child, link, depth + 1)


def _shard_node(shard: _Shard, version: int, on_block: BlockSink | None) -> tuple[Cid, int]:
    """Encode a HAMT shard, children first, as go-ipfs and the JS importer do.

    Links are labelled by their slot in two upper-case hex digits (followed by the name for an entry); Data is a
    UnixFS HAMTShard with the occupied slots as a big-endian bitfield (no leading zero bytes), fanout 256 and
    hash type murmur3-x64-64.
    """
    links: list[Link] = []
    bits = 0
    for index in sorted(shard.slots):
        bits |= 1 << index
        slot = shard.slots[index]
        if isinstance(slot, _Shard):
            cid, tsize = _shard_node(slot, version, on_block)
            links.append(Link(cid, f"{index:02X}", tsize))
        else:
            links.append(Link(slot.cid, f"{index:02X}{slot.name}", slot.tsize))
    bitfield = bits.to_bytes((bits.bit_length() + 7) // 8, "big")
    data = unixfs_data(T_HAMT, data=bitfield, hash_type=MURMUR3_X64_64, fanout=HAMT_FANOUT)
    block = encode_node(links, data)
    cid = Cid.of(block, version)
    if on_block is not None:
        on_block(cid, (block,))
    return cid, len(block) + sum(link.tsize for link in links)


@dataclass(frozen=True, slots=True)
class DirEntry:
    """A file of a directory tree: its relative POSIX path and the root of its DAG."""

    path: str
    root: FileRoot


@dataclass(slots=True)
class _Dir:
    files: dict[str, FileRoot] = field(default_factory=dict)
    dirs: dict[str, _Dir] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DirRoot:
    """The root of a directory DAG and the CID of every subdirectory (by relative path, '' for the root)."""

    cid: Cid
    tsize: int
    directories: dict[str, Cid]


def directory_cid(
    entries: Iterable[DirEntry], version: int = 0, on_block: BlockSink | None = None, *, shard: bool = True
) -> DirRoot:
    """The UnixFS directory DAG that `ipfs add -r` builds over files with these DAG roots.

    Links are sorted by name (bytewise) and carry each child's cumulative size. `on_block` receives the directory
    blocks, children before parents. A directory whose links' names and CIDs add up to more than 256 KiB becomes
    a HAMT-sharded directory, as Kubo makes it (links-size estimate, fanout 256, murmur3); with `shard=False`
    that raises ShardingRequired instead.
    """
    tree = _Dir()
    for entry in entries:
        parts = entry.path.split("/")
        node = tree
        for part in parts[:-1]:
            node = node.dirs.setdefault(part, _Dir())
        node.files[parts[-1]] = entry.root
    directories: dict[str, Cid] = {}
    cid, tsize = _build_dir(tree, "", version, on_block, directories, shard)
    return DirRoot(cid, tsize, directories)


def _build_dir(
    tree: _Dir, path: str, version: int, on_block: BlockSink | None, out: dict[str, Cid], shard: bool
) -> tuple[Cid, int]:
    links = [Link(r.cid, name, r.tsize) for name, r in tree.files.items()]
    for name, sub in tree.dirs.items():
        cid, tsize = _build_dir(sub, f"{path}{name}/", version, on_block, out, shard)
        links.append(Link(cid, name, tsize))
    links.sort(key=lambda link: link.name.encode())
    estimate = sum(len(link.name.encode()) + len(link.cid.binary) for link in links)
    if estimate > HAMT_THRESHOLD:
        if not shard:
            raise ShardingRequired(
                f"directory {path or '/'} has {len(links)} entries, over Kubo's {HAMT_THRESHOLD}-byte sharding "
                "threshold",
                hint="Kubo stores it as a HAMT-sharded directory",
            )
        root = _Shard()
        for link in links:
            _shard_put(root, link, 0)
        cid, tsize = _shard_node(root, version, on_block)
        out[path.rstrip("/")] = cid
        return cid, tsize
    block = encode_node(links, DIRECTORY_DATA)
    cid = Cid.of(block, version)
    if on_block is not None:
        on_block(cid, (block,))
    out[path.rstrip("/")] = cid
    return cid, len(block) + sum(link.tsize for link in links)


# both profiles at once --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileCids:
    """A file's DAG roots under both profiles: Kubo's default (CIDv0) and `--cid-version=1` (raw leaves)."""

    v0: FileRoot
    v1: FileRoot
    places: tuple[BlockPlace, ...] = ()
    """Where each block of both DAGs comes from, when the builder kept them."""

    def root(self, version: int) -> FileRoot:
        return self.v1 if version == 1 else self.v0


class CidSink:
    """Receives a file's bytes (a `ByteSink`) and computes both of its CIDs; `result()` once all are written.

    It also keeps where each block of both DAGs comes from (`FileCids.places`), about 100 bytes per 256 KiB.
    """

    __slots__ = ("_v0", "_v1")

    def __init__(self) -> None:
        self._v0 = FileBuilder(0, places=True)
        self._v1 = FileBuilder(1, places=True)

    def write(self, data: bytes | memoryview) -> None:
        self._v0.write(data)
        self._v1.write(data)

    @property
    def builders(self) -> tuple[FileBuilder, FileBuilder]:
        """The CIDv0 and CIDv1 builders, to be fed separately (e.g. on two threads); then call `result()`."""
        return self._v0, self._v1

    def result(self) -> FileCids:
        v0, v1 = self._v0.finish(), self._v1.finish()
        return FileCids(v0, v1, (*(self._v0.places or ()), *(self._v1.places or ())))
