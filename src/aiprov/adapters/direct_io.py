"""Writing a large new file with O_DIRECT, from a thread of its own, so the disk works while the caller hashes.

Written by hand because no library streams a file out with O_DIRECT: it needs page-aligned buffers, block-sized
lengths and block-aligned offsets, which Python's file objects don't give. Why bother: through the page cache, a
1 GiB blob costs about 1 s of kernel CPU on this project's ext4-on-virtio disks (copying into the cache, then
write-back); with O_DIRECT about 0.25 s (measured with `dd` and in `benchmarks/bench_cid.py`). On two cores that
kernel time is exactly what a push's hashing (the file's SHA-256 and both IPFS CIDs) competes with.

The bytes are copied into aligned buffers (a memcpy, about 0.1 s per GiB) rather than written from the caller's:
the caller reuses its buffer as soon as `write` returns, while the disk may still be busy with it.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import threading

BUFFER_SIZE = 4 * 1024 * 1024
"""The size of one O_DIRECT write (a multiple of every disk's logical block size)."""
BUFFERS = 2
"""One buffer on the disk while the caller fills the other; the disk is the slower side, so more would only wait."""
FLUSH_EVERY = 64 * 1024 * 1024
"""Ask the disk to make what is written durable after this many bytes, while the next ones are hashed and written.

An O_DIRECT write may still end in the disk's own cache (a VM's virtual disk caches on its host), so the final
fsync could face the whole file: measured here, 1.2-1.5 s of a 1 GiB push's 2.8 s were that fsync, after the
hashing had finished. A flush every 64 MiB on a thread of its own overlaps that work with the hashing.
"""
BLOCK = 4096
"""O_DIRECT needs lengths and offsets aligned to the logical block size: 512 or 4096 on every common disk."""

_O_DIRECT = getattr(os, "O_DIRECT", 0)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


class DirectWriter:
    """Writes what `write` is given to `fd`, a new file open for writing at offset 0.

    A file smaller than one buffer never uses O_DIRECT: its bytes are written through the page cache by `close`.
    Where the file system refuses O_DIRECT (tmpfs, some network and FUSE file systems) everything goes through
    the page cache. Either way the caller still fsyncs the file for durability. An error of the writer thread
    (a full disk) is raised by the next `write` or by `close`.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._direct = False
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._todo: queue.SimpleQueue[mmap.mmap | None] = queue.SimpleQueue()
        self._buffers: list[mmap.mmap] = []
        self._current: mmap.mmap | None = None
        self._fill = 0
        self._thread: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self._flush = threading.Condition()
        self._unflushed = 0  # bytes written since the last flush began
        self._error: BaseException | None = None
        self._closed = False

    @property
    def direct(self) -> bool:
        """Whether the file system took O_DIRECT writes (False until the first full buffer)."""
        return self._direct

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as whole:
            view = whole.cast("B")
            while view:
                if self._current is None:
                    self._current = self._take()
                n = min(len(view), BUFFER_SIZE - self._fill)
                self._current[self._fill : self._fill + n] = view[:n]
                self._fill += n
                view = view[n:]
                if self._fill == BUFFER_SIZE:
                    self._submit()

    def close(self) -> None:
        """Write what is left and wait for the disk; raises OSError if any write failed."""
        if self._closed:
            return
        self._stop()
        try:
            if self._error is not None:
                raise self._error
            if self._current is not None and self._fill:
                aligned = self._fill - self._fill % BLOCK if self._direct else 0
                with memoryview(self._current) as view:
                    if aligned:
                        _write_all(self._fd, view[:aligned])
                    self._set_direct(False)  # the last partial block goes through the page cache
                    _write_all(self._fd, view[aligned : self._fill])
        finally:
            self._release()

    def abort(self) -> None:
        """Stop without writing what is left (the caller removes the file)."""
        if not self._closed:
            self._stop()
            self._release()

    def _take(self) -> mmap.mmap:
        if self._error is not None:
            raise self._error
        if len(self._buffers) < BUFFERS:
            buffer = mmap.mmap(-1, BUFFER_SIZE)  # anonymous maps are page-aligned, as O_DIRECT needs
            self._buffers.append(buffer)
            return buffer
        buffer = self._free.get()
        if self._error is not None:
            self._free.put(buffer)
            raise self._error
        return buffer

    def _submit(self) -> None:
        assert self._current is not None
        if self._thread is None:
            self._direct = self._set_direct(True)
            self._thread = threading.Thread(target=self._drain, name="aiprov-direct-write", daemon=True)
            self._thread.start()
            self._flusher = threading.Thread(target=self._flush_behind, name="aiprov-flush", daemon=True)
            self._flusher.start()
        self._todo.put(self._current)
        self._current = None
        self._fill = 0

    def _drain(self) -> None:
        while (buffer := self._todo.get()) is not None:
            try:
                if self._error is None:
                    with memoryview(buffer) as view:
                        self._write_full(view)
                    with self._flush:
                        self._unflushed += len(buffer)
                        if self._unflushed >= FLUSH_EVERY:
                            self._flush.notify()
            except BaseException as e:  # raised to the caller by its next write or close
                self._error = e
            finally:
                self._free.put(buffer)

    def _flush_behind(self) -> None:
        while True:
            with self._flush:
                self._flush.wait_for(lambda: self._closed or self._unflushed >= FLUSH_EVERY)
                if self._closed:
                    return
                self._unflushed = 0
            try:
                os.fdatasync(self._fd)
            except OSError as e:
                self._error = e
                return

    def _write_full(self, view: memoryview) -> None:
        try:
            _write_all(self._fd, view)
        except OSError as e:
            # A file system may take the flag and refuse the write; the offset has not moved for a refused write.
            if e.errno != errno.EINVAL or not self._direct:
                raise
            self._set_direct(False)
            self._direct = False
            _write_all(self._fd, view)

    def _set_direct(self, on: bool) -> bool:
        """Turn O_DIRECT on or off for the file; whether it is now on."""
        if not _O_DIRECT:
            return False
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        wanted = flags | _O_DIRECT if on else flags & ~_O_DIRECT
        if wanted != flags:
            try:
                fcntl.fcntl(self._fd, fcntl.F_SETFL, wanted)
            except OSError:
                return False
        return on

    def _stop(self) -> None:
        with self._flush:
            self._closed = True
            self._flush.notify()
        if self._thread is not None:
            self._todo.put(None)
            self._thread.join()
        if self._flusher is not None:
            self._flusher.join()

    def _release(self) -> None:
        self._current = None
        for buffer in self._buffers:
            buffer.close()
        self._buffers.clear()
