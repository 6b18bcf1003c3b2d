"""Ports: the typed interfaces services depend on. Adapters implement them; each has one contract test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from aiprov.core.digest import Digest


class BlobWriter(Protocol):
    """Receives a blob's bytes, hashing them as they come; nothing is visible until `commit`."""

    def write(self, data: bytes | memoryview) -> object: ...

    def commit(self, expected: Digest | None = None) -> tuple[Digest, bool]:
        """Publish the blob under its digest; return (digest, stored_new).

        Raises IntegrityError (and publishes nothing) if `expected` is given and the bytes do not match it.
        """
        ...

    def abort(self) -> None: ...


class BlobStore(Protocol):
    """Content-addressed storage: a blob is stored once, under the SHA-256 of its bytes."""

    def exists(self, digest: Digest) -> bool: ...

    def writer(self) -> BlobWriter: ...

    def read(self, digest: Digest) -> Iterator[bytes]:
        """Yield the blob's bytes; raise IntegrityError at the end if they do not match `digest`.

        Raises NotFound if the blob is missing. Callers must not trust what they received until the iterator is
        exhausted.
        """
        ...

    def size(self, digest: Digest) -> int: ...
