"""The Xet storage formats a `huggingface_hub` upload sends: xorbs (compressed chunks) and shards (file recipes).

Pure functions of bytes (https://huggingface.co/docs/xet/): `xorb_chunks` splits a serialized xorb into its
chunks and decompresses each (scheme 0 none, 1 LZ4 frame, 2 byte-grouping-4 + LZ4); `parse_shard` reads the
file info section of an uploaded shard: per file, its reconstruction terms (xorb hash, chunk range, unpacked
size) and the SHA-256 its metadata extension carries. Xet's own BLAKE3 chunk and xorb hashes are not computed:
the service checks the SHA-256 of each file it rebuilds instead (see `services.hf_xet`).

Hashes are carried as Xet prints them in URLs (`hash_hex`): each 8-byte group of the 32 bytes as a little-endian
u64 in hex, so a term's xorb matches the hash of the `/v1/xorbs/default/{hash}` it was uploaded under.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aiprov.errors import InvalidInput

XORB_MAX_BYTES = 64 * 2**20
"""The largest serialized xorb the CAS API takes (the protocol's limit)."""

CHUNK_MAX_BYTES = 128 * 2**10
"""The largest chunk, uncompressed (the protocol's limit)."""

XORB_MAX_UNPACKED = 128 * 2**20
"""The most bytes a xorb may unpack to: clients fill a xorb to ~64 MiB of chunk data; twice that bounds the
memory a small, highly compressed xorb could otherwise claim."""

SHARD_HEADER_TAG = bytes.fromhex("48465265706f4d6574614461746100556967456a7b815783a5bdd95ccdd14aa9")
"""`MDB_SHARD_HEADER_TAG`, the 32 bytes every shard begins with."""

SHARD_HEADER_VERSION = 2
_ENTRY = 48
_BOOKEND = b"\xff" * 32
_FLAG_VERIFICATION = 1 << 31
_FLAG_METADATA_EXT = 1 << 30
_LZ4, _BG4_LZ4, _NONE = 1, 2, 0


def hash_hex(raw: bytes) -> str:
    """The URL form of a 32-byte Xet hash: four little-endian u64s, each as 16 hex digits."""
    return "".join(f"{word:016x}" for word in struct.unpack("<4Q", raw))


@dataclass(frozen=True, slots=True)
class Term:
    """One piece of a file: chunks [start, end) of the xorb `xorb`, `size` bytes once unpacked."""

    xorb: str
    start: int
    end: int
    size: int


@dataclass(frozen=True, slots=True)
class ShardFile:
    """A file a shard records: its Xet hash, its terms in order, and the SHA-256 it declares (or None)."""

    file_hash: str
    terms: tuple[Term, ...]
    sha256: str | None

    @property
    def size(self) -> int:
        return sum(t.size for t in self.terms)


def xorb_chunks(data: bytes) -> list[bytes]:
    """The uncompressed chunks of a serialized xorb, in order.

    A storage footer after the chunks (`XETBLOB` ident, ending in its u32 length) is tolerated and ignored.
    Raises InvalidInput (truncated, an unknown version or scheme, a chunk that does not decompress to its size).
    """
    if len(data) > XORB_MAX_BYTES:
        raise InvalidInput(f"a xorb of {len(data)} bytes is over the limit of {XORB_MAX_BYTES}")
    chunks: list[bytes] = []
    at = 0
    unpacked = 0
    while at < len(data):
        if data[at] != 0 and _is_footer(data, at):
            break
        if len(data) - at < 8:
            raise InvalidInput(f"the xorb is truncated: {len(data) - at} bytes where a chunk header (8) was due")
        version = data[at]
        stored = int.from_bytes(data[at + 1 : at + 4], "little")
        scheme = data[at + 4]
        size = int.from_bytes(data[at + 5 : at + 8], "little")
        if version != 0:
            raise InvalidInput(f"chunk {len(chunks)} of the xorb has version {version}, not 0")
        if size > CHUNK_MAX_BYTES:
            raise InvalidInput(f"chunk {len(chunks)} of the xorb is {size} bytes, over {CHUNK_MAX_BYTES}")
        unpacked += size
        if unpacked > XORB_MAX_UNPACKED:
            raise InvalidInput(f"the xorb unpacks to more than {XORB_MAX_UNPACKED} bytes")
        body = data[at + 8 : at + 8 + stored]
        if len(body) != stored:
            raise InvalidInput(f"the xorb is truncated inside chunk {len(chunks)}")
        chunks.append(_decompress(body, scheme, size, len(chunks)))
        at += 8 + stored
    if not chunks:
        raise InvalidInput("the xorb holds no chunk")
    return chunks


def _is_footer(data: bytes, at: int) -> bool:
    if len(data) - at < 4:
        return False
    length = int.from_bytes(data[-4:], "little")
    return data[at : at + 7] == b"XETBLOB" and len(data) - at == length + 4


def _decompress(body: bytes, scheme: int, size: int, index: int) -> bytes:
    if scheme == _NONE:
        out = body
    elif scheme in (_LZ4, _BG4_LZ4):
        out = _lz4(body, size, index)
        if scheme == _BG4_LZ4:
            out = _ungroup4(out)
    else:
        raise InvalidInput(f"chunk {index} of the xorb has an unknown compression scheme {scheme}")
    if len(out) != size:
        raise InvalidInput(f"chunk {index} of the xorb unpacks to {len(out)} bytes, not the {size} its header says")
    return out


def _lz4(body: bytes, size: int, index: int) -> bytes:
    """Decompress one LZ4 frame, producing at most `size` bytes (a frame that would give more is refused)."""
    import lz4.frame

    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out = decompressor.decompress(body, max_length=size)
    except RuntimeError:
        raise InvalidInput(f"chunk {index} of the xorb is not a valid LZ4 frame") from None
    if not decompressor.eof or decompressor.unused_data:
        raise InvalidInput(f"chunk {index} of the xorb is not one LZ4 frame of {size} bytes")
    return bytes(out)


def _ungroup4(grouped: bytes) -> bytes:
    """Undo byte grouping: group g holds byte g of every 4; the first len % 4 groups hold one byte more."""
    n = len(grouped)
    base, extra = divmod(n, 4)
    out = bytearray(n)
    at = 0
    for g in range(4):
        count = base + (1 if g < extra else 0)
        out[g::4] = grouped[at : at + count]
        at += count
    return bytes(out)


def parse_shard(data: bytes) -> list[ShardFile]:
    """The files an uploaded shard records (its file info section; the CAS info section is not needed).

    Raises InvalidInput (not a shard, truncated, a term with an empty or reversed chunk range).
    """
    if len(data) < _ENTRY or data[:32] != SHARD_HEADER_TAG:
        raise InvalidInput("the body is not a Xet shard (no shard header)")
    version = int.from_bytes(data[32:40], "little")
    if version != SHARD_HEADER_VERSION:
        raise InvalidInput(f"shard header version {version} is not {SHARD_HEADER_VERSION}")
    files: list[ShardFile] = []
    at = _ENTRY
    while True:
        header = _entry(data, at)
        if header[:32] == _BOOKEND:
            return files
        flags, count = struct.unpack_from("<II", header, 32)
        at += _ENTRY
        terms: list[Term] = []
        for _ in range(count):
            entry = _entry(data, at)
            _flags, size, start, end = struct.unpack_from("<IIII", entry, 32)
            if not start < end:
                raise InvalidInput(f"a term of file {len(files)} has the chunk range [{start}, {end})")
            terms.append(Term(hash_hex(entry[:32]), start, end, size))
            at += _ENTRY
        if flags & _FLAG_VERIFICATION:
            at += _ENTRY * count
        sha256 = None
        if flags & _FLAG_METADATA_EXT:
            sha256 = hash_hex(_entry(data, at)[:32])
            at += _ENTRY
        if not terms:
            raise InvalidInput(f"file {len(files)} of the shard has no term")
        files.append(ShardFile(hash_hex(header[:32]), tuple(terms), sha256))


def _entry(data: bytes, at: int) -> bytes:
    entry = data[at : at + _ENTRY]
    if len(entry) != _ENTRY:
        raise InvalidInput("the shard is truncated before the end of its file info section")
    return entry
