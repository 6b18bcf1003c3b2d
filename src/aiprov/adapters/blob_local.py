"""The local blob store: one file per blob under `<root>/sha256/<2 hex>/<62 hex>`.

A blob is written to `<root>/tmp/`, fsynced, then renamed into place (and the directory fsynced), so a reader, or
a process that dies mid-write, never sees a partial blob. A leftover temporary file of a dead process is swept
the next time a writer starts.

A resumable upload (the API's) keeps its partial bytes in `<root>/tmp/uploads/<key>`, locked with flock while a
writer holds it, so several server processes can share the store; a later writer continues it. hashlib cannot
save a hash's state, so continuing re-reads the kept bytes once to rebuild it (about 1 s per GiB). Partial
uploads untouched for UPLOAD_TTL_S are swept.

A new blob of more than a few MiB is written with O_DIRECT from a thread of its own (`direct_io.DirectWriter`),
so the disk works while the next bytes are read and hashed, without the page cache's kernel CPU. A resumable
upload is written through the page cache (it continues at any offset, which O_DIRECT can't), and write-back of
what it already holds is started every WRITEBACK_EVERY bytes so that the final fsync has little left to wait for.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from aiprov.adapters.direct_io import DirectWriter
from aiprov.core.digest import Digest
from aiprov.errors import BackendError, Busy, Conflict, IntegrityError, InvalidInput, NotFound

READ_CHUNK = 4 * 1024 * 1024
WRITEBACK_EVERY = 256 * 1024 * 1024
"""Measured on ext4 (benchmarks/RESULTS.md): 32-64 MiB kicks cost more kernel time than they save; 256 MiB is best."""
UPLOAD_TTL_S = 7 * 24 * 3600
_UPLOAD_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")
log = logging.getLogger("aiprov.blobs")


def _failed(what: str, path: Path, e: OSError) -> BackendError:
    """A BackendError saying `what` failed and why, naming no server path (an API client reads the message).

    The path goes to the server's log, where the operator who can act on it looks.
    """
    log.error("%s: %s (%s)", what, e.strerror, path)
    return BackendError(f"{what}: {e.strerror}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _HashingWriter:
    """Writes a temporary file while hashing it; `commit` renames it into the store under its digest."""

    def __init__(
        self, store: LocalBlobStore, tmp: Path, file: io.FileIO, direct: bool = False, kick: bool = True
    ) -> None:
        self._store = store
        self._kick = kick  # start write-back early (it also drops clean pages: not for bytes read back soon)
        self._tmp = tmp
        self._file = file
        self._direct = DirectWriter(file.fileno()) if direct else None
        self._hash = hashlib.sha256()
        self._done = False
        self._published = False
        self._written = 0
        self._kicked = 0  # bytes up to here have had write-back started
        self._synced = False

    def write(self, data: bytes | memoryview) -> int:
        self._hash.update(data)
        try:
            if self._direct is not None:
                self._direct.write(data)
            else:
                view = memoryview(data)
                while view:
                    n = self._file.write(view)
                    view = view[n:]
        except OSError as e:
            raise _failed("cannot write to the blob store", self._tmp, e) from e
        self._written += len(data)
        if self._direct is None and self._kick and self._written - self._kicked >= WRITEBACK_EVERY:
            self._start_writeback()
        return len(data)

    def digest(self) -> Digest:
        """The SHA-256 of the bytes written so far (what `commit` will store them under)."""
        return Digest(self._hash.hexdigest())

    def _start_writeback(self) -> None:
        """Ask the kernel to start writing the dirty range out now; durability still comes from commit's fsync.

        On Linux POSIX_FADV_DONTNEED starts asynchronous write-back of dirty pages (PostgreSQL uses it the
        same way where sync_file_range is unavailable); it is only advice, so a failure is ignored.
        """
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(
                    self._file.fileno(), self._kicked, self._written - self._kicked, os.POSIX_FADV_DONTNEED
                )
        self._kicked = self._written

    def staged(self) -> Path:
        """Finish writing; the temporary file returned holds exactly the bytes written, until commit or abort.

        What push scans: the bytes it stores, read back from the store's own disk, not the source read again.
        Its bytes are made durable here unless the blob is already stored (then commit discards them).
        Raises BackendError if the last bytes cannot be written.
        """
        try:
            if self._direct is not None:
                self._direct.close()
            if not self._store.path_of(self.digest()).exists():
                self._sync()
        except OSError as e:
            raise _failed("cannot write to the blob store", self._tmp, e) from e
        return self._tmp

    def _sync(self) -> None:
        if self._synced:
            return
        if self._file.closed:  # LocalBlobWriter.staged closed it: a push may hold many files staged at once
            fd = os.open(self._tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            os.fsync(self._file.fileno())
        self._synced = True

    def commit(self, expected: Digest | None = None) -> tuple[Digest, bool]:
        digest = Digest(self._hash.hexdigest())
        try:
            if expected is not None and digest != expected:
                raise IntegrityError(f"received bytes hash to {digest}, not the announced {expected}")
            final = self._store.path_of(digest)
            if final.exists():
                return digest, False
            if self._direct is not None:
                self._direct.close()
            self._sync()
            final.parent.mkdir(parents=True, exist_ok=True)
            # Renamed while still open: a resumable upload's lock is held until its file is in place.
            os.replace(self._tmp, final)
            self._published = True
            _fsync_dir(final.parent)
            return digest, True
        except OSError as e:
            raise _failed(f"cannot store blob {digest}", self._tmp, e) from e
        finally:
            self._finish()

    def abort(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            if self._direct is not None:
                self._direct.abort()  # after a commit's close, a no-op
            if not self._published:
                with contextlib.suppress(FileNotFoundError):
                    self._tmp.unlink()  # before close: a resumable upload's lock covers its removal
        finally:
            self._file.close()

    def __enter__(self) -> _HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class LocalBlobWriter(_HashingWriter):
    def __init__(self, store: LocalBlobStore, direct: bool = True) -> None:
        tmp = store.tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}"
        # O_DIRECT: a blob not read back soon would only cost CPU in the page cache. One push scans right after
        # writing is written through the cache: read back from the disk instead, a 512 MiB zip pushed 40% slower.
        super().__init__(store, tmp, open(tmp, "xb", buffering=0), direct=direct, kick=direct)  # noqa: SIM115 - closed in commit/abort

    def staged(self) -> Path:
        """As `_HashingWriter.staged`, and the file is closed.

        A push keeps every file of a model staged until all are scanned: an open descriptor each would run out
        on a model of many files.
        """
        tmp = super().staged()
        self._file.close()
        return tmp


class LocalResumableWriter(_HashingWriter):
    """A writer over the partial upload `<root>/tmp/uploads/<key>`, holding its flock until it is done."""

    def __init__(self, store: LocalBlobStore, key: str, offset: int | None) -> None:
        path = store.uploads_dir / key
        for _ in range(3):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise Busy(
                    f"upload {key} is being written by another request", hint="wait for it, or retry later"
                ) from None
            # The holder we waited for may have published or discarded the file: then ours is a stale inode.
            if os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)
        else:
            raise Conflict(f"upload {key} keeps changing under us", hint="retry")
        file = open(fd, "r+b", buffering=0)  # noqa: SIM115 - closed in commit/abort/suspend
        super().__init__(store, path, file)
        try:
            self._resume_at(offset)
        except BaseException:
            if os.fstat(fd).st_size == 0:  # nothing kept (e.g. created just now): leave no empty partial behind
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # under the lock, as every removal of a partial upload
            file.close()
            raise

    def _resume_at(self, offset: int | None) -> None:
        kept = os.fstat(self._file.fileno()).st_size
        if offset is None:
            offset = kept
        if offset > kept:
            raise Conflict(f"upload holds {kept} bytes; cannot continue at byte {offset}", hint=f"resume at {kept}")
        if offset < kept:
            os.ftruncate(self._file.fileno(), offset)
        buffer = memoryview(bytearray(min(READ_CHUNK, offset) or 1))
        self._file.seek(0)
        while self._written < offset:
            n = self._file.readinto(buffer[: offset - self._written])
            if not n:
                log.error("partial upload %s shrank while being re-read", self._tmp)
                raise BackendError("a partial upload shrank while being re-read", hint="retry the upload")
            self._hash.update(buffer[:n])
            self._written += n
        self._kicked = offset
        self._file.seek(offset)

    @property
    def offset(self) -> int:
        return self._written

    def suspend(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            os.fsync(self._file.fileno())
        except OSError as e:
            raise _failed("cannot keep the partial upload", self._tmp, e) from e
        finally:
            self._file.close()


class LocalBlobStore:
    """A `BlobStore` in a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.uploads_dir = self.tmp_dir / "uploads"
        self._swept = False
        self._swept_uploads = False

    def path_of(self, digest: Digest) -> Path:
        return self.root / "sha256" / digest.hex[:2] / digest.hex[2:]

    def exists(self, digest: Digest) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: Digest) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None

    def writer(self, *, read_back: bool = False) -> LocalBlobWriter:
        """A new blob's writer: with O_DIRECT, unless `read_back` says the bytes are wanted again from the cache."""
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            if not self._swept:
                self._sweep()
            return LocalBlobWriter(self, direct=not read_back)
        except OSError as e:
            raise _failed("cannot write to the blob store", self.tmp_dir, e) from e

    def _sweep(self) -> None:
        """Remove temporary files left by processes that died mid-write."""
        self._swept = True
        for tmp in self.tmp_dir.iterdir():
            pid, _, _ = tmp.name.partition("-")
            if pid.isdigit() and not pid_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    def resumable(self, key: str, offset: int | None = None) -> LocalResumableWriter:
        if not _UPLOAD_KEY.fullmatch(key):
            raise InvalidInput(f"not an upload key: {key!r}")
        try:
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
            if not self._swept_uploads:
                self._sweep_uploads()
            return LocalResumableWriter(self, key, offset)
        except OSError as e:
            raise _failed("cannot write to the blob store", self.tmp_dir, e) from e

    def partial_size(self, key: str) -> int:
        if not _UPLOAD_KEY.fullmatch(key):
            raise InvalidInput(f"not an upload key: {key!r}")
        try:
            return (self.uploads_dir / key).stat().st_size
        except FileNotFoundError:
            return 0

    def _sweep_uploads(self) -> None:
        """Remove partial uploads nobody continued for UPLOAD_TTL_S (a writer holding one keeps it fresh)."""
        self._swept_uploads = True
        cutoff = time.time() - UPLOAD_TTL_S
        for partial in self.uploads_dir.iterdir():
            with contextlib.suppress(OSError):
                if partial.stat().st_mtime >= cutoff:
                    continue
                fd = os.open(partial, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    partial.unlink()
                finally:
                    os.close(fd)

    def materialize(self, digest: Digest, target: Path) -> None:
        source = self.path_of(digest)
        if not source.is_file():
            raise NotFound(f"blob {digest} is not in the store")
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy, verifying as we go
        try:
            with open(target, "xb") as f:
                for chunk in self.read(digest):
                    f.write(chunk)
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            raise _failed(f"cannot copy blob {digest}", target, e) from e
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            raise

    def _open(self, digest: Digest) -> io.FileIO:
        """The blob's file, unbuffered. Raises NotFound if it is missing, BackendError if it cannot be read."""
        path = self.path_of(digest)
        try:
            return open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the store") from None
        except OSError as e:
            raise _failed(f"cannot read blob {digest}", path, e) from e

    def read_range(self, digest: Digest, offset: int, length: int) -> Iterator[bytes]:
        with self._open(digest) as f:
            f.seek(offset)
            left = length
            while left:
                chunk = f.read(min(READ_CHUNK, left))
                if not chunk:
                    raise InvalidInput(f"blob {digest} ends before byte {offset + length}")
                left -= len(chunk)
                yield chunk

    def read(self, digest: Digest) -> Iterator[bytes]:
        path = self.path_of(digest)
        h = hashlib.sha256()
        with self._open(digest) as f:
            while chunk := f.read(READ_CHUNK):
                h.update(chunk)
                yield chunk
        if h.hexdigest() != digest.hex:
            log.error("stored blob %s does not match its digest %s", path, digest)
            raise IntegrityError(f"stored blob {digest} does not match its digest: the store was altered")

    def stored(self) -> Iterator[tuple[Digest, int, float]]:
        """Every stored blob: (digest, size, modification time); blobs being written are not listed."""
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for prefix in sorted(base.iterdir()):
            for path in sorted(prefix.iterdir()):
                name = prefix.name + path.name
                if len(name) != 64 or not path.is_file():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    yield Digest(name), st.st_size, st.st_mtime

    def delete(self, digest: Digest) -> bool:
        """Remove a blob (garbage collection only: the caller checked nothing refers to it); False if absent."""
        path = self.path_of(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as e:
            raise _failed(f"cannot remove blob {digest}", path, e) from e
        _fsync_dir(path.parent)
        return True
