"""CARv1 (Content Addressable aRchive) framing: what `ipfs dag import`/`export` and `ipfs-car` read and write.

A CARv1 is a varint-prefixed dag-cbor header `{"roots": [CID], "version": 1}` followed by sections, each a
varint length, a binary CID and the block. Hand-written: the header is one tiny, fixed dag-cbor map (no need for
a CBOR library), and reading only needs the few CBOR types that header uses. Pure: bytes in, values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiprov.core.unixfs import Cid, varint
from aiprov.errors import InvalidInput

CAR_V2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")
"""The first bytes of a CARv2 file (a CARv1-style header `{"version": 2}`)."""


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes((major << 5 | info,)) + n.to_bytes(width, "big")
    raise InvalidInput("CBOR length too large")


def header(roots: Sequence[Cid]) -> bytes:
    """The varint-prefixed CARv1 header naming `roots` (dag-cbor: map keys by length, then bytes)."""
    body = _cbor_head(5, 2) + _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots))
    for root in roots:
        link = b"\0" + root.binary  # dag-cbor links: tag 42 over the binary CID with a 0x00 multibase prefix
        body += b"\xd8\x2a" + _cbor_head(2, len(link)) + link
    body += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return varint(len(body)) + body


def section_head(cid: Cid, block_length: int) -> bytes:
    """What precedes a block in a CAR: varint(len(CID) + len(block)) and the binary CID."""
    binary = cid.binary
    return varint(len(binary) + block_length) + binary


class _Cbor:
    """Just enough CBOR to read a CAR header: ints, strings, arrays, maps, tag 42, true/false/null."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise InvalidInput("truncated CAR header")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        if info in (24, 25, 26, 27):
            return int.from_bytes(self._take(1 << (info - 24)), "big")
        raise InvalidInput("unsupported CBOR length in the CAR header")

    def value(self, depth: int = 0) -> Any:
        if depth > 8:
            raise InvalidInput("CAR header nested too deeply")
        initial = self._take(1)[0]
        major, info = initial >> 5, initial & 31
        if major == 7:
            simple = {20: False, 21: True, 22: None}
            if info not in simple:
                raise InvalidInput("unsupported CBOR value in the CAR header")
            return simple[info]
        n = self._arg(info)
        if major == 0:
            return n
        if major == 2:
            return self._take(n)
        if major == 3:
            return self._take(n).decode("utf-8", "replace")
        if major == 4:
            return [self.value(depth + 1) for _ in range(n)]
        if major == 5:
            return {self.value(depth + 1): self.value(depth + 1) for _ in range(n)}
        if major == 6 and n == 42:
            link = self.value(depth + 1)
            if not isinstance(link, bytes) or link[:1] != b"\0":
                raise InvalidInput("malformed CID in the CAR header")
            return Cid.from_bytes(link[1:])
        raise InvalidInput("unsupported CBOR type in the CAR header")


def parse_header(data: bytes) -> list[Cid]:
    """The roots of a CARv1 header body (without its length prefix). Raises InvalidInput for anything else."""
    if data.startswith(CAR_V2_PRAGMA[1:]):
        raise InvalidInput("this is a CARv2 file", hint="convert it to CARv1 first (e.g. `ipfs-car` or `go-car`)")
    value = _Cbor(data).value()
    if not isinstance(value, dict) or value.get("version") != 1:
        raise InvalidInput("not a CARv1 header", hint="expected {roots, version: 1}")
    roots = value.get("roots")
    if not isinstance(roots, list) or not roots or not all(isinstance(r, Cid) for r in roots):
        raise InvalidInput("the CAR header names no root CID")
    return roots
