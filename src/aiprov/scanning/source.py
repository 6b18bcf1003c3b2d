"""A forward-only byte source for the parsers: a whole buffer (an mmap of a file) or a stream read in chunks.

The parsers never seek backwards. Over a buffer, skipping numpy array data costs nothing (the bytes are never
touched); over a stream (a decompressor, a zip member) skipped bytes are read and dropped in large chunks.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

CHUNK = 1 << 20
"""How much a stream source reads at a time: large enough that per-call overhead vanishes."""


class Truncated(Exception):
    """The data ended before a structure was complete."""

    def __init__(self, offset: int, wanted: int) -> None:
        super().__init__(f"data ends at offset {offset} with {wanted} more byte(s) expected")
        self.offset = offset


class Buffer(Protocol):
    """What a Source needs from its buffer: bytes, bytearray, memoryview-like or mmap."""

    def __len__(self) -> int: ...
    def __getitem__(self, key: slice) -> bytes: ...
    def find(self, sub: bytes, start: int = ..., end: int = ...) -> int: ...


class Source:
    """Bytes read front to back from `data` (all present) or `stream` (read on demand)."""

    __slots__ = ("_buf", "_eof", "_stream", "base", "pos")

    def __init__(self, data: Buffer | None = None, stream: BinaryIO | None = None) -> None:
        if (data is None) == (stream is None):
            raise ValueError("give exactly one of data and stream")
        self._stream = stream
        self._buf: Buffer = data if data is not None else b""
        self._eof = stream is None
        self.base = 0  # absolute offset of _buf[0]
        self.pos = 0  # index into _buf

    def tell(self) -> int:
        """The absolute offset of the next byte."""
        return self.base + self.pos

    def _fill(self, n: int) -> bool:
        """Make `n` bytes available from pos if the stream has them; False at end of data."""
        while len(self._buf) - self.pos < n:
            if self._eof or self._stream is None:
                return False
            chunk = self._stream.read(max(CHUNK, n))
            if not chunk:
                self._eof = True
                return False
            self._buf = bytes(self._buf[self.pos :]) + chunk
            self.base += self.pos
            self.pos = 0
        return True

    def read(self, n: int) -> bytes:
        """The next `n` bytes. Raises Truncated if fewer remain."""
        if len(self._buf) - self.pos < n and not self._fill(n):
            raise Truncated(self.tell(), n - (len(self._buf) - self.pos))
        p = self.pos
        self.pos = p + n
        return bytes(self._buf[p : p + n])

    def readline(self, limit: int = 1 << 16) -> bytes:
        """Bytes up to and including the next newline. Raises Truncated if none comes within `limit` bytes."""
        while True:
            i = self._buf.find(b"\n", self.pos)
            if i >= 0:
                line = bytes(self._buf[self.pos : i + 1])
                self.pos = i + 1
                return line
            have = len(self._buf) - self.pos
            if have > limit or not self._fill(have + 1):
                raise Truncated(self.tell() + have, 1)

    def skip(self, n: int) -> None:
        """Pass over `n` bytes without keeping them. Raises Truncated if fewer remain."""
        have = len(self._buf) - self.pos
        if n <= have:
            self.pos += n
            return
        if self._stream is None or self._eof:
            raise Truncated(self.tell() + have, n - have)
        left = n - have
        self.base += len(self._buf)
        self.pos = 0
        self._buf = b""
        while left:
            chunk = self._stream.read(min(left, 16 * CHUNK))
            if not chunk:
                self._eof = True
                raise Truncated(self.base, left)
            self.base += len(chunk)
            left -= len(chunk)

    def at_end(self) -> bool:
        """True when no byte is left."""
        return len(self._buf) == self.pos and not self._fill(1)

    def remaining_sample(self, n: int = 16) -> bytes:
        """Up to `n` of the next bytes, without consuming them (for findings that show trailing data)."""
        self._fill(n)
        return bytes(self._buf[self.pos : self.pos + n])

    def drain(self) -> int:
        """Consume everything left; returns how many bytes that was (a zip member's CRC is checked at its end)."""
        count = len(self._buf) - self.pos
        self.base += len(self._buf)
        self.pos = 0
        self._buf = b""
        if self._stream is not None and not self._eof:
            while chunk := self._stream.read(16 * CHUNK):
                count += len(chunk)
                self.base += len(chunk)
            self._eof = True
        return count
