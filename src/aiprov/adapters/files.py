"""Reading a model from the local file system: which files it has, and their digests.

Files are streamed in large chunks into one reused buffer (a model is never read whole into memory) and the files
of a directory are hashed by a thread pool: hashlib releases the GIL on large updates, so threads use every core.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

from aiprov.core.digest import Digest
from aiprov.core.manifest import IGNORED_TOP_LEVEL, Manifest, ManifestEntry, refuse_git_paths
from aiprov.errors import InvalidInput

CHUNK_SIZE = 4 * 1024 * 1024
"""Large enough that per-call overhead vanishes next to SHA-256, small enough to keep memory flat."""

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int], None]
"""Called with the number of bytes just processed; must be thread-safe."""

ProgressFactory = Callable[[int], Progress | None]
"""Given the total number of bytes about to be processed, returns a progress callback (or None)."""


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file of a model on disk: its manifest path and where it is."""

    path: str
    location: Path
    size: int


class ByteSink(Protocol):
    """Something that receives a file's bytes while it is hashed (a blob writer when pushing)."""

    def write(self, data: memoryview) -> object: ...


@runtime_checkable
class HashingSink(ByteSink, Protocol):
    """A fresh sink that SHA-256-hashes what it receives (a blob writer): `hash_file` then uses its digest.

    Hashing the same bytes twice, once for the manifest and once in the writer, would halve push throughput
    when hashing is the bottleneck.
    """

    def digest(self) -> Digest:
        """The SHA-256 of every byte written so far."""
        ...


def model_files(root: Path) -> list[LocalFile]:
    """List the files of a model at `root` (a file or a directory), sorted by manifest path.

    Top-level .git/.github/.gitattributes/.gitignore are ignored, as model-signing ignores them; a `.git`
    folder deeper down is refused (`refuse_git_paths`: a version never holds git metadata).

    Raises InvalidInput for a missing path, a symlink anywhere, a special file, an empty directory (a manifest
    cannot record one), a directory without files, or a `.git` folder below the top.
    """
    try:
        st = root.lstat()
    except FileNotFoundError:
        raise InvalidInput(f"no such file or directory: {root}") from None
    except OSError as e:
        raise InvalidInput(f"cannot read {root}: {e.strerror}") from e
    if stat.S_ISLNK(st.st_mode):
        raise InvalidInput(f"{root} is a symbolic link; symlinks are refused", hint="push the target instead")
    if stat.S_ISREG(st.st_mode):
        refuse_git_paths([root.name], str(root))
        return [LocalFile(root.name, root, st.st_size)]
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{root} is neither a regular file nor a directory")
    files: list[LocalFile] = []
    _walk(root, "", files)
    refuse_git_paths((f.path for f in files), str(root))
    if not files:
        raise InvalidInput(f"{root} contains no files", hint="a model needs at least one file")
    files.sort(key=lambda f: f.path)
    return files


def _walk(directory: Path, prefix: str, out: list[LocalFile]) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError as e:
        raise InvalidInput(f"cannot list {directory}: {e.strerror}") from e
    if not entries and prefix:
        raise InvalidInput(
            f"empty directory {directory}: a manifest records files only",
            hint="remove it or put a file in it",
        )
    for entry in entries:
        if not prefix and entry.name in IGNORED_TOP_LEVEL:
            continue
        rel = prefix + entry.name
        location = Path(entry.path)
        if entry.is_symlink():
            raise InvalidInput(f"{location} is a symbolic link; symlinks are refused")
        if entry.is_dir(follow_symlinks=False):
            _walk(location, rel + "/", out)
        elif entry.is_file(follow_symlinks=False):
            out.append(LocalFile(rel, location, entry.stat(follow_symlinks=False).st_size))
        else:
            raise InvalidInput(f"{location} is not a regular file (device, socket or fifo)")


def stream_file(location: Path, buffer: bytearray) -> Iterator[memoryview]:
    """Yield the bytes of a file in chunks that share `buffer` (valid until the next chunk).

    Raises InvalidInput if the file cannot be opened or read.
    """
    view = memoryview(buffer)
    try:
        with open(location, "rb", buffering=0) as f:
            while n := f.readinto(view):
                yield view[:n]
    except OSError as e:
        raise InvalidInput(f"cannot read {location}: {e.strerror}") from e


def hash_file(
    file: LocalFile,
    sink: ByteSink | None = None,
    progress: Progress | None = None,
    sides: Sequence[ByteSink] = (),
) -> ManifestEntry:
    """Hash one file (and feed its bytes to `sink` and each of `sides` in the same pass).

    Each of `sides` (the IPFS CID builders when pushing) is fed on its own helper thread while this thread hashes
    and writes: hashlib releases the GIL, so computing CIDs costs other cores rather than wall time when there are
    free ones. The chunks go round a few buffers (`SIDE_BUFFERS`), so a side that lags (a core busy) or a write
    that waits on the disk holds the others back only once every buffer is in use.
    Raises InvalidInput if the file is unreadable or changes size while being read.
    """
    if sides and file.size > CHUNK_SIZE:
        return _hash_with_sides(file, sink, progress, sides)
    hashing = sink if isinstance(sink, HashingSink) else None
    h = hashlib.sha256()
    size = 0
    # A small file gets a small buffer: zeroing 4 MiB would cost more than hashing a config file.
    for chunk in stream_file(file.location, bytearray(min(CHUNK_SIZE, file.size + 1))):
        for side in sides:
            side.write(chunk)
        if hashing is None:
            h.update(chunk)
        if sink is not None:
            sink.write(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return _entry(file, size, hashing.digest() if hashing is not None else Digest(h.hexdigest()))


SIDE_BUFFERS = 3
"""Chunks a large file's sides may lag behind its reader (up to 3 x 4 MiB of memory per file being pushed)."""

_EXTRA_BUFFERS = threading.BoundedSemaphore(4)
"""Buffers beyond the first one of each file, shared by every file hashed at once: a push of many large files on
many threads stays within about (threads + 4) x 4 MiB, however many cores there are (plus each blob writer's two
O_DIRECT buffers). Measured on a push of 4 x 512 MiB with CIDs: peak RSS 137 MB with 4, 153 MB with 8, and the
same speed within the disk's noise."""


class _Buffers:
    """A few chunk buffers shared by the reader and the side threads; a buffer is free once all are done with it."""

    def __init__(self, count: int, size: int, users: int) -> None:
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(bytearray(size))
        self._users = users
        self._pending: dict[int, int] = {}
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        buffer = self._free.get()
        with self._lock:
            self._pending[id(buffer)] = self._users
        return buffer

    def release(self, buffer: bytearray) -> None:
        with self._lock:
            self._pending[id(buffer)] -= 1
            done = self._pending[id(buffer)] == 0
        if done:
            self._free.put(buffer)


def _hash_with_sides(
    file: LocalFile, sink: ByteSink | None, progress: Progress | None, sides: Sequence[ByteSink]
) -> ManifestEntry:
    extra = 0
    while extra < SIDE_BUFFERS - 1 and _EXTRA_BUFFERS.acquire(blocking=False):
        extra += 1
    try:
        return _pipeline(file, sink, progress, sides, 1 + extra)
    finally:
        for _ in range(extra):
            _EXTRA_BUFFERS.release()


def _pipeline(
    file: LocalFile, sink: ByteSink | None, progress: Progress | None, sides: Sequence[ByteSink], depth: int
) -> ManifestEntry:
    hashing = sink if isinstance(sink, HashingSink) else None
    h = hashlib.sha256()
    buffers = _Buffers(depth, CHUNK_SIZE, users=len(sides) + 1)  # the sides, and this thread
    inboxes: list[queue.SimpleQueue[tuple[bytearray, memoryview] | None]] = [queue.SimpleQueue() for _ in sides]
    failures: list[BaseException] = []

    def feed(side: ByteSink, inbox: queue.SimpleQueue[tuple[bytearray, memoryview] | None]) -> None:
        while (item := inbox.get()) is not None:
            buffer, chunk = item
            try:
                if not failures:
                    side.write(chunk)
            except BaseException as e:  # handed to the reader, which raises it
                failures.append(e)
            finally:
                buffers.release(buffer)

    threads = [
        threading.Thread(target=feed, args=pair, name="aiprov-side", daemon=True)
        for pair in zip(sides, inboxes, strict=True)
    ]
    for thread in threads:
        thread.start()
    size = 0
    try:
        with open(file.location, "rb", buffering=0) as f:
            while not failures:
                buffer = buffers.take()
                n = f.readinto(buffer)
                if not n:
                    break
                chunk = memoryview(buffer)[:n]
                for inbox in inboxes:
                    inbox.put((buffer, chunk))
                if hashing is None:
                    h.update(chunk)
                if sink is not None:
                    sink.write(chunk)
                buffers.release(buffer)
                size += n
                if progress is not None:
                    progress(n)
    except OSError as e:
        raise InvalidInput(f"cannot read {file.location}: {e.strerror}") from e
    finally:
        for inbox in inboxes:
            inbox.put(None)
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return _entry(file, size, hashing.digest() if hashing is not None else Digest(h.hexdigest()))


def _entry(file: LocalFile, size: int, digest: Digest) -> ManifestEntry:
    if size != file.size:
        raise InvalidInput(f"{file.location} changed size while being read ({file.size} -> {size} bytes)")
    return ManifestEntry(file.path, size, digest)


@contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """A new file that appears at `target` only complete.

    It is written under a temporary name beside `target`, fsynced, then renamed over it. If the block raises,
    nothing appears and the temporary file is removed.

    Raises InvalidInput when the file cannot be written (what the block raises otherwise propagates).
    """
    tmp = target.parent / f".{target.name}.aiprov-{secrets.token_hex(4)}"
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        raise InvalidInput(f"cannot write {target}: {e.strerror}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextmanager
def staged_directory(dest: Path, paths: Sequence[str]) -> Iterator[Path]:
    """A directory to write the files `paths` (relative) into, which appear under `dest` only if the block returns.

    An error in the block (altered bytes, a cut download) leaves `dest` as it was and no temporary directory
    behind. A new `dest` is written as a hidden directory beside it, then renamed to `dest` (its missing parents are
    made, and removed again on an error). Into an existing directory, the files are written to a hidden
    directory inside it (the same file system even if `dest` is a mount point), then each is renamed over its
    place; the other files of `dest` are left alone. Raises InvalidInput when `dest` is not a directory, a
    file's place is taken by a directory (or one of its parents by a file), or `dest` cannot be written.
    """
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"{dest} exists and is not a directory")
    fresh = not dest.exists()
    if not fresh and not paths:  # every file is there already: nothing to stage
        yield dest
        return
    missing = [p for p in dest.absolute().parents if not p.exists()]  # nearest first
    token = secrets.token_hex(4)
    staging = dest.parent / f".{dest.name}.aiprov-pull-{token}" if fresh else dest / f".aiprov-pull-{token}"
    try:
        try:
            staging.mkdir(parents=True)
            yield staging
            if fresh:
                os.rename(staging, dest)
            else:
                _move_into(staging, dest, paths)
        except OSError as e:
            raise InvalidInput(f"cannot write {dest}: {e.strerror}") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in missing:  # made for the new `dest` only
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into(staging: Path, dest: Path, paths: Sequence[str]) -> None:
    """Rename each staged file over its place in `dest`, once every place is known to take a file."""
    for rel in paths:
        target = dest / rel
        if target.is_dir() and not target.is_symlink():
            raise InvalidInput(f"{target} is a directory; the version has a file there")
        for parent in target.relative_to(dest).parents:
            if (dest / parent).exists() and not (dest / parent).is_dir():
                raise InvalidInput(f"{dest / parent} is not a directory; the version has files under it")
    for rel in paths:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, dest / rel)


def default_workers() -> int:
    """Two threads per core, at most 8.

    While one thread waits on the disk (page-cache allocation, write-back, fsync) another hashes, so a push keeps
    every core busy; for pure hashing the extra threads cost nothing but a 4 MiB buffer each.
    """
    return max(1, min(8, 2 * (os.cpu_count() or 1)))


def parallel_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """Apply `fn` to `items` on a thread pool, results in input order; the first exception propagates."""
    items = list(items)
    if len(items) <= 1 or workers == 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers or default_workers(), len(items))) as pool:
        return list(pool.map(fn, items))


def hash_model(root: Path, progress: ProgressFactory | None = None, workers: int | None = None) -> Manifest:
    """The manifest of the model at `root`, without storing anything."""
    return hash_files(model_files(root), progress, workers)


def hash_files(
    files: Sequence[LocalFile], progress: ProgressFactory | None = None, workers: int | None = None
) -> Manifest:
    """The manifest of `files` (as `model_files` lists them), without storing anything."""
    advance = progress(sum(f.size for f in files)) if progress else None
    return Manifest.build(parallel_map(lambda f: hash_file(f, progress=advance), files, workers))
