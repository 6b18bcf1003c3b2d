"""Blob uploads that stream and resume, and downloads verified on the way out: what the API's blob routes call.

An upload is received into the blob store's partial-upload area under a key made of the digest and the uploader,
hashed as it is written, and published under its digest only when the received bytes hash to the digest the
client announced. A cut connection keeps the partial bytes (never visible as a blob); the same uploader continues
at `status(...).offset`. hashlib cannot save a hash's state, so continuing re-reads the kept bytes once to rebuild
it. A download yields a blob's bytes but holds back the last chunk until the whole blob has hashed to its digest,
so a client never receives a complete response of altered bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiprov.core.digest import Digest
from aiprov.errors import Busy, Conflict, IntegrityError, InvalidInput, TooLarge
from aiprov.ports import BlobStore, ResumableWriter


def upload_key(digest: Digest, uploader: str) -> str:
    """The partial-upload key of `uploader`'s upload of `digest`: uploaders never continue each other's bytes."""
    return f"{digest.hex}-{hashlib.sha256(uploader.encode()).hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class BlobStatus:
    """What the hub has of a blob: stored (with its size), or how many bytes of the uploader's upload it kept."""

    digest: Digest
    stored: bool
    size: int | None
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {"digest": str(self.digest), "stored": self.stored, "size": self.size, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class UploadResult:
    """How an upload request ended: `complete` (published, `new` unless already stored) or kept at `offset`."""

    digest: Digest
    complete: bool
    new: bool
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {"digest": str(self.digest), "complete": self.complete, "new": self.new, "offset": self.offset}


class BlobUpload:
    """One request's part of an upload: `write` its bytes, then `finish` (or `suspend` if the client went away)."""

    def __init__(self, writer: ResumableWriter, digest: Digest, total: int | None, max_bytes: int) -> None:
        self._writer = writer
        self.digest = digest
        self.total = total
        self.max_bytes = max_bytes

    @property
    def offset(self) -> int:
        return self._writer.offset

    def write(self, data: bytes | memoryview) -> None:
        """Append bytes.

        Raises TooLarge (over the limit) or InvalidInput (past the announced total), discarding the partial
        upload: the client must start over.
        """
        end = self._writer.offset + len(data)
        if end > self.max_bytes:
            self._writer.abort()
            raise TooLarge(f"blob {self.digest} is over the upload limit of {self.max_bytes} bytes")
        if self.total is not None and end > self.total:
            self._writer.abort()
            raise InvalidInput(f"more bytes than the announced total of {self.total} for {self.digest}")
        self._writer.write(data)

    def finish(self) -> UploadResult:
        """End of the request body: keep the bytes if fewer than `total` came, else publish them under the digest.

        Raises InvalidInput (and keeps nothing) when the bytes do not hash to the digest; BackendError.
        """
        if self.total is not None and self._writer.offset < self.total:
            offset = self._writer.offset
            self._writer.suspend()
            return UploadResult(self.digest, False, False, offset)
        size = self._writer.offset
        try:
            _, new = self._writer.commit(expected=self.digest)
        except IntegrityError as e:
            raise InvalidInput(
                f"the {size} bytes received do not match: {e.message}; nothing was stored",
                hint="upload the bytes of the digest named in the URL, from the start",
            ) from None
        return UploadResult(self.digest, True, new, size)

    def suspend(self) -> None:
        """The client went away: keep what was received for a later request to continue."""
        self._writer.suspend()

    def abort(self) -> None:
        """Discard the partial upload."""
        self._writer.abort()


class UploadService:
    """Streaming, resumable uploads into a `BlobStore`, and verified reads out of it."""

    def __init__(self, blobs: BlobStore, *, max_blob_bytes: int) -> None:
        self.blobs = blobs
        self.max_blob_bytes = max_blob_bytes

    def status(self, digest: Digest, uploader: str | None) -> BlobStatus:
        """Whether the blob is stored, and how many bytes of `uploader`'s partial upload are kept (0 if none)."""
        if self.blobs.exists(digest):
            return BlobStatus(digest, True, self.blobs.size(digest), 0)
        offset = self.blobs.partial_size(upload_key(digest, uploader)) if uploader else 0
        return BlobStatus(digest, False, None, offset)

    def begin(
        self, digest: Digest, uploader: str, *, start: int = 0, total: int | None = None
    ) -> BlobUpload | UploadResult:
        """Open `uploader`'s upload of `digest` at byte `start` (0 starts over; more continues a kept upload).

        `total` is the blob's size when the client announced it: the request may then carry a part, and the
        upload is published only once `total` bytes arrived. Re-reads the kept bytes up to `start` once.
        Answers the stored blob's (complete, not new) `UploadResult` instead when it is stored already, which
        is how a request that waited for another one writing the same bytes ends.
        Raises Busy (another request holds the upload now: retry later), TooLarge, Conflict (`start` beyond the
        kept bytes), InvalidInput, BackendError.
        """
        if self.blobs.exists(digest):
            return self._stored(digest)
        if start < 0 or (total is not None and (total < 0 or start > total)):
            raise InvalidInput(f"cannot upload from byte {start} of a {total}-byte blob")
        if total is not None and total > self.max_blob_bytes:
            raise TooLarge(f"a {total}-byte blob is over the upload limit of {self.max_blob_bytes} bytes")
        try:
            writer = self.blobs.resumable(upload_key(digest, uploader), start)
        except Busy:
            raise
        except Conflict:  # the request we waited for published the blob: its partial upload, and `start`, are gone
            if self.blobs.exists(digest):
                return self._stored(digest)
            raise
        if self.blobs.exists(digest):  # published by the holder we just took the upload over from
            writer.abort()
            return self._stored(digest)
        return BlobUpload(writer, digest, total, self.max_blob_bytes)

    def _stored(self, digest: Digest) -> UploadResult:
        return UploadResult(digest, True, False, self.blobs.size(digest))

    def read_verified(
        self,
        digest: Digest,
        on_complete: Callable[[], None] | None = None,
        *,
        start: int = 0,
        end: int | None = None,
    ) -> Iterator[bytes]:
        """Yield bytes `start`..`end` (inclusive; default all), the last chunk held back until the blob verified.

        A range is verified like the whole: the blob is read from its first byte to its last and only the range
        is yielded, so a client continuing a cut download never receives altered bytes either. `on_complete` runs
        after the blob verified and before its last byte is yielded (to log the download before it completes); a
        range that stops short never runs it.
        Raises NotFound before the first byte if the blob is missing; IntegrityError instead of the last chunk if
        the stored bytes were altered.
        """
        chunks = self.blobs.read(digest)
        held: bytes | None = None
        offset = 0
        for chunk in chunks:  # the store's reader raises IntegrityError after its last chunk on a mismatch
            lo, hi = offset, offset + len(chunk)
            offset = hi
            if end is not None and lo > end:
                continue  # past the range: read on only to verify
            piece = chunk[max(start - lo, 0) : (len(chunk) if end is None else min(end + 1 - lo, len(chunk)))]
            if not piece:
                continue
            if held is not None:
                yield held
            held = piece
        if on_complete is not None and (end is None or end + 1 >= offset):  # the blob's last byte goes out next
            on_complete()  # before it: a download that completed is logged
        if held is not None:
            yield held
