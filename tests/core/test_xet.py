"""The Xet formats: xorb chunks (each compression scheme, its limits) and the file info section of a shard."""

from __future__ import annotations

import os
import struct

import lz4.frame
import pytest

from aiprov.core.xet import (
    CHUNK_MAX_BYTES,
    SHARD_HEADER_TAG,
    XORB_MAX_UNPACKED,
    hash_hex,
    parse_shard,
    xorb_chunks,
)
from aiprov.errors import InvalidInput


def _chunk(raw: bytes, scheme: int, stored: bytes) -> bytes:
    return b"\x00" + len(stored).to_bytes(3, "little") + bytes([scheme]) + len(raw).to_bytes(3, "little") + stored


def _group4(data: bytes) -> bytes:
    return b"".join(data[g::4] for g in range(4))


@pytest.mark.parametrize("size", [0, 1, 5, 4097, CHUNK_MAX_BYTES])
def test_each_scheme_gives_back_the_chunk(size: int) -> None:
    raw = os.urandom(size // 2) + bytes(size - size // 2)
    xorb = (
        _chunk(raw, 0, raw) + _chunk(raw, 1, lz4.frame.compress(raw)) + _chunk(raw, 2, lz4.frame.compress(_group4(raw)))
    )
    assert xorb_chunks(xorb) == [raw, raw, raw]


def test_a_storage_footer_after_the_chunks_is_ignored() -> None:
    info = b"XETBLOB" + bytes(40)
    assert xorb_chunks(_chunk(b"abc", 0, b"abc") + info + len(info).to_bytes(4, "little")) == [b"abc"]


def test_limits_and_damage_are_refused() -> None:
    raw = b"a" * CHUNK_MAX_BYTES
    with pytest.raises(InvalidInput, match="over"):
        xorb_chunks(_chunk(raw + b"a", 0, raw + b"a"))  # a chunk one byte over 128 KiB
    with pytest.raises(InvalidInput, match="not one LZ4 frame"):
        xorb_chunks(_chunk(raw[:-1], 1, lz4.frame.compress(raw)))  # unpacks past its declared size
    with pytest.raises(InvalidInput, match="unpacks to more than"):  # ~1 MiB of bytes claiming 128 MiB + a chunk
        small = _chunk(raw, 1, lz4.frame.compress(raw))
        xorb_chunks(small * (XORB_MAX_UNPACKED // CHUNK_MAX_BYTES + 1))
    assert len(xorb_chunks(_chunk(raw, 1, lz4.frame.compress(raw)) * (XORB_MAX_UNPACKED // CHUNK_MAX_BYTES))) == 1024
    whole = _chunk(b"abcd", 0, b"abcd")
    for bad in (b"", whole[:7], whole[:-1], b"\x01" + whole[1:], whole[:4] + b"\x07" + whole[5:]):
        with pytest.raises(InvalidInput):
            xorb_chunks(bad)


def test_hash_hex_reverses_each_eight_bytes() -> None:
    # the CAS API spec's example, whose printed string drops the `10` of the third group (62 digits)
    expected = "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert hash_hex(bytes(range(32))) == expected


def test_a_shard_lists_files_with_terms_and_their_sha256() -> None:
    file_hash, xorb, sha = bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 96))
    header = SHARD_HEADER_TAG + struct.pack("<QQ", 2, 0)
    flags = (1 << 31) | (1 << 30)
    terms = [xorb + struct.pack("<IIII", 0, 10, 0, 2), xorb + struct.pack("<IIII", 0, 5, 2, 3)]
    file_header = file_hash + struct.pack("<II", flags, 2) + bytes(8)
    block = file_header + b"".join(terms) + bytes(96) + sha + bytes(16)
    plain = file_hash + struct.pack("<II", 0, 1) + bytes(8) + terms[0]
    bookend = b"\xff" * 32 + bytes(16)
    [first, second] = parse_shard(header + block + plain + bookend + bookend)
    assert first.file_hash == hash_hex(file_hash) and first.sha256 == hash_hex(sha) and first.size == 15
    assert [(t.xorb, t.start, t.end) for t in first.terms] == [(hash_hex(xorb), 0, 2), (hash_hex(xorb), 2, 3)]
    assert second.sha256 is None and second.size == 10
    with pytest.raises(InvalidInput, match="truncated"):
        parse_shard(header + block)  # no bookend
    with pytest.raises(InvalidInput, match="not a Xet shard"):
        parse_shard(b"\x00" * 48 + bookend)
    with pytest.raises(InvalidInput, match="version"):
        parse_shard(SHARD_HEADER_TAG + struct.pack("<QQ", 3, 0) + bookend)
    empty_range = file_hash + struct.pack("<II", 0, 1) + bytes(8) + xorb + struct.pack("<IIII", 0, 1, 4, 4)
    with pytest.raises(InvalidInput, match="chunk range"):
        parse_shard(header + empty_range + bookend)
