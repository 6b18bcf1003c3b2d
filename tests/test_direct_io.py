"""The O_DIRECT writer behind new blobs: exact bytes, its fallbacks, errors and flush-behind."""

import errno
import fcntl
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiprov.adapters import direct_io
from aiprov.adapters.blob_local import LocalBlobStore
from aiprov.adapters.direct_io import BUFFER_SIZE, DirectWriter
from aiprov.core.digest import Digest


def supports_o_direct(directory: Path) -> bool:
    """Asked of the file system itself, independently of the writer."""
    probe = directory / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


def pieces(data: bytes, seed: int) -> Iterator[bytes]:
    """`data` cut into pieces of random sizes, from one byte to a bit over a buffer."""
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        n = rng.choice([1, 4095, 65536, BUFFER_SIZE, BUFFER_SIZE + 7])
        yield data[pos : pos + n]
        pos += n


def write_file(path: Path, data: bytes, seed: int = 0) -> DirectWriter:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = DirectWriter(fd)
        for piece in pieces(data, seed):
            writer.write(piece)
        writer.close()
        os.fsync(fd)
    finally:
        os.close(fd)
    return writer


SIZES = [0, 1, 4095, 4096, BUFFER_SIZE - 1, BUFFER_SIZE, BUFFER_SIZE + 1, 3 * BUFFER_SIZE + 4097]


@pytest.mark.parametrize("size", SIZES)
def test_the_file_holds_exactly_the_bytes_written(tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    writer = write_file(tmp_path / "out", data, seed=size)
    assert (tmp_path / "out").read_bytes() == data
    # Only a file of at least one full buffer is written with O_DIRECT, and only where the file system takes it.
    assert writer.direct == (size >= BUFFER_SIZE and supports_o_direct(tmp_path))


def test_a_file_system_that_refuses_the_flag_gets_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fcntl.fcntl

    def refuse_o_direct(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)

    monkeypatch.setattr(direct_io.fcntl, "fcntl", refuse_o_direct)
    data = random.Random(1).randbytes(2 * BUFFER_SIZE + 5)
    writer = write_file(tmp_path / "out", data)
    assert not writer.direct
    assert (tmp_path / "out").read_bytes() == data


def test_a_file_system_that_takes_the_flag_but_refuses_the_write_gets_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = direct_io._write_all
    refused: list[int] = []

    def refuse_direct_writes(fd: int, view: memoryview) -> None:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(len(view))
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd, view)

    monkeypatch.setattr(direct_io, "_write_all", refuse_direct_writes)
    if not supports_o_direct(tmp_path):
        pytest.fail("the test directory's file system must take O_DIRECT for this test to mean anything")
    data = random.Random(2).randbytes(3 * BUFFER_SIZE + 100)
    writer = write_file(tmp_path / "out", data)
    assert refused == [BUFFER_SIZE]  # the first direct write was refused, and none was tried after it
    assert not writer.direct
    assert (tmp_path / "out").read_bytes() == data


def test_a_full_disk_is_raised_and_stops_the_threads(tmp_path: Path) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        writer = DirectWriter(fd)
        with pytest.raises(OSError) as caught:
            for _ in range(4):
                writer.write(bytes(BUFFER_SIZE))
            writer.close()
    finally:
        os.close(fd)
    assert caught.value.errno == errno.ENOSPC
    writer.abort()
    assert not [t for t in threading.enumerate() if t.name in ("aiprov-direct-write", "aiprov-flush")]


def test_written_bytes_are_flushed_behind_the_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        flushed.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(direct_io, "FLUSH_EVERY", BUFFER_SIZE)
    monkeypatch.setattr(os, "fdatasync", counting)
    data = random.Random(3).randbytes(6 * BUFFER_SIZE)
    write_file(tmp_path / "out", data)
    assert flushed, "no flush happened before the caller's fsync"
    assert all(0 < size <= len(data) for size in flushed)


def test_abort_stops_the_threads_and_writes_nothing_more(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        writer = DirectWriter(fd)
        writer.write(bytes(BUFFER_SIZE + 10))
        writer.abort()
        writer.close()  # after abort, a no-op
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    assert size in (0, BUFFER_SIZE)  # the full buffer may have reached the disk; the partial one never does
    assert not [t for t in threading.enumerate() if t.name in ("aiprov-direct-write", "aiprov-flush")]


def test_a_large_blob_round_trips_through_the_store(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = random.Random(4).randbytes(2 * BUFFER_SIZE + 12345)
    writer = store.writer()
    for piece in pieces(data, seed=4):
        writer.write(piece)
    digest, new = writer.commit()
    assert new and digest == Digest.of(data)
    assert store.path_of(digest).read_bytes() == data
    assert b"".join(store.read(digest)) == data
    assert list((tmp_path / "tmp").iterdir()) == []
