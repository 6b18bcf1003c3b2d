"""The local blob store: one file per blob under `<root>/sha256/<2 hex>/<62 hex>`.

A blob is written to `<root>/tmp/`, fsynced, then renamed into place (and the directory fsynced), so a reader, or
a process that dies mid-write, never sees a partial blob. A leftover temporary file of a dead process is swept
the next time a writer starts.

While a large blob is written, write-back of what is already written is started every WRITEBACK_EVERY bytes,
so the disk works while the next bytes are read and hashed and the final fsync has little left to wait for.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from aiprov.core.digest import Digest
from aiprov.errors import BackendError, IntegrityError, NotFound

READ_CHUNK = 4 * 1024 * 1024
WRITEBACK_EVERY = 256 * 1024 * 1024
"""Measured on ext4 (benchmarks/RESULTS.md): 32-64 MiB kicks cost more kernel time than they save; 256 MiB is best."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalBlobWriter:
    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        self._tmp = store.tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}"
        self._file = open(self._tmp, "xb", buffering=0)  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256()
        self._done = False
        self._written = 0
        self._kicked = 0  # bytes up to here have had write-back started

    def write(self, data: bytes | memoryview) -> int:
        self._hash.update(data)
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n:]
        self._written += len(data)
        if self._written - self._kicked >= WRITEBACK_EVERY:
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

    def commit(self, expected: Digest | None = None) -> tuple[Digest, bool]:
        digest = Digest(self._hash.hexdigest())
        try:
            if expected is not None and digest != expected:
                raise IntegrityError(f"received bytes hash to {digest}, not the announced {expected}")
            final = self._store.path_of(digest)
            if final.exists():
                return digest, False
            os.fsync(self._file.fileno())
            self._file.close()
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, final)
            _fsync_dir(final.parent)
            return digest, True
        except OSError as e:
            raise BackendError(f"cannot store blob {digest}: {e.strerror}") from e
        finally:
            self._finish()

    def abort(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> LocalBlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class LocalBlobStore:
    """A `BlobStore` in a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self._swept = False

    def path_of(self, digest: Digest) -> Path:
        return self.root / "sha256" / digest.hex[:2] / digest.hex[2:]

    def exists(self, digest: Digest) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: Digest) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store at {self.root}") from None

    def writer(self) -> LocalBlobWriter:
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            if not self._swept:
                self._sweep()
            return LocalBlobWriter(self)
        except OSError as e:
            raise BackendError(f"cannot write to the blob store at {self.root}: {e.strerror}") from e

    def _sweep(self) -> None:
        """Remove temporary files left by processes that died mid-write."""
        self._swept = True
        for tmp in self.tmp_dir.iterdir():
            pid, _, _ = tmp.name.partition("-")
            if pid.isdigit() and not _pid_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    def read(self, digest: Digest) -> Iterator[bytes]:
        path = self.path_of(digest)
        h = hashlib.sha256()
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below, generator may be abandoned
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the store at {self.root}") from None
        except OSError as e:
            raise BackendError(f"cannot read blob {path}: {e.strerror}") from e
        with f:
            while chunk := f.read(READ_CHUNK):
                h.update(chunk)
                yield chunk
        if h.hexdigest() != digest.hex:
            raise IntegrityError(f"stored blob {path} does not match its digest {digest}: the store was altered")
