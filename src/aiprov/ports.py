"""Ports: the typed interfaces services depend on. Adapters implement them; each has one contract test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from aiprov.core.digest import Digest
from aiprov.records import AnchoredCheckpoint, ChainRegistration


class ChainReader(Protocol):
    """What `verify --chain` reads from an EVM chain: anchored checkpoints (from its events) and registrations."""

    @property
    def description(self) -> str:
        """Which contract on which chain, for reports (e.g. `registry 0xAb… on chain 11155111`)."""
        ...

    def anchors(self, origin: str) -> list[AnchoredCheckpoint]:
        """Every checkpoint of log `origin` anchored on chain, oldest first. Raises ChainError."""
        ...

    def registration(self, digest: bytes) -> ChainRegistration | None:
        """The on-chain registration of a version digest (32 bytes), or None. Raises ChainError."""
        ...


class BlobWriter(Protocol):
    """Receives a blob's bytes, hashing them as they come; nothing is visible until `commit`."""

    def write(self, data: bytes | memoryview) -> object: ...

    def staged(self) -> Path:
        """Finish writing; return a local file that holds exactly the bytes written, readable until commit/abort.

        Nothing is visible in the store yet: push scans this file, then commits or aborts. Raises BackendError.
        """
        ...

    def commit(self, expected: Digest | None = None) -> tuple[Digest, bool]:
        """Publish the blob under its digest; return (digest, stored_new).

        Raises IntegrityError (and publishes nothing) if `expected` is given and the bytes do not match it.
        """
        ...

    def abort(self) -> None: ...


class ResumableWriter(BlobWriter, Protocol):
    """A blob writer whose bytes survive a cut: `suspend` keeps them under a key so a later writer continues.

    `abort` discards the partial bytes; `commit` publishes them exactly as `BlobWriter.commit` does.
    """

    @property
    def offset(self) -> int:
        """How many bytes have been received so far, including those of earlier, suspended writers."""
        ...

    def suspend(self) -> None:
        """Stop writing and keep the bytes received so far for a writer opened later with the same key."""
        ...


class BlobStore(Protocol):
    """Content-addressed storage: a blob is stored once, under the SHA-256 of its bytes."""

    def exists(self, digest: Digest) -> bool: ...

    def writer(self, *, read_back: bool = False) -> BlobWriter:
        """A writer for a new blob; `read_back`: its bytes are read again soon (push scans its staged blob)."""
        ...

    def read(self, digest: Digest) -> Iterator[bytes]:
        """Yield the blob's bytes; raise IntegrityError at the end if they do not match `digest`.

        Raises NotFound if the blob is missing. Callers must not trust what they received until the iterator is
        exhausted.
        """
        ...

    def read_range(self, digest: Digest, offset: int, length: int) -> Iterator[bytes]:
        """Yield `length` bytes of the blob from `offset`, NOT checked against the blob's digest.

        The caller checks them another way (an IPFS block against its CID). Raises NotFound, BackendError,
        InvalidInput (past the end).
        """
        ...

    def size(self, digest: Digest) -> int: ...

    def resumable(self, key: str, offset: int | None = None) -> ResumableWriter:
        """A writer that continues the partial upload `key` (letters, digits, `-`, `_`) at `offset`.

        `offset` None continues after every byte kept; 0 starts over; a smaller offset drops the bytes after it.
        Raises Busy (a Conflict) at once if another writer holds the key, Conflict if `offset` is beyond the
        bytes kept, BackendError.
        """
        ...

    def partial_size(self, key: str) -> int:
        """How many bytes the partial upload `key` holds (0 when there is none)."""
        ...

    def materialize(self, digest: Digest, target: Path) -> None:
        """Make the blob readable as the new file `target`: a hard link when possible, else a verified copy.

        Raises NotFound if the blob is missing, IntegrityError if a copy does not match, BackendError.
        """
        ...

    def stored(self) -> Iterator[tuple[Digest, int, float]]:
        """Every stored blob as (digest, size in bytes, modification time as a POSIX timestamp)."""
        ...

    def delete(self, digest: Digest) -> bool:
        """Remove a blob nothing refers to (garbage collection); False if it was not there. Raises BackendError."""
        ...
