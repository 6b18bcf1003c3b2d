"""Content digests: `sha256:<64 lowercase hex>`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from aiprov.errors import InvalidInput

ALGORITHM = "sha256"
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A SHA-256 digest; refuses to exist with a malformed value."""

    hex: str

    def __post_init__(self) -> None:
        if not _HEX.fullmatch(self.hex):
            raise InvalidInput(f"not a SHA-256 digest: {self.hex!r}", hint="expected 64 lowercase hex digits")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse `sha256:<hex>` (the prefix is required; hex may be given in upper case)."""
        algorithm, sep, value = text.strip().partition(":")
        if not sep or algorithm.lower() != ALGORITHM:
            raise InvalidInput(f"not a digest: {text!r}", hint="expected sha256:<64 hex digits>")
        return cls(value.lower())

    @classmethod
    def of(cls, data: bytes) -> Digest:
        """The digest of `data`."""
        return cls(hashlib.sha256(data).hexdigest())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Digest:
        """Wrap a raw 32-byte SHA-256 output."""
        if len(raw) != 32:
            raise InvalidInput(f"a SHA-256 digest has 32 bytes, not {len(raw)}")
        return cls(raw.hex())

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex)

    def __str__(self) -> str:
        return f"{ALGORITHM}:{self.hex}"


def is_digest_prefix(text: str) -> bool:
    """Whether `text` looks like an abbreviated digest (`sha256:` followed by 4 to 64 hex digits)."""
    algorithm, sep, value = text.partition(":")
    return (
        bool(sep) and algorithm == ALGORITHM and 4 <= len(value) <= 64 and re.fullmatch(r"[0-9a-f]+", value) is not None
    )
