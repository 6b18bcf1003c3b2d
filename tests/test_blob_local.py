import os
from pathlib import Path

import pytest

from aiprov.adapters.blob_local import LocalBlobStore
from aiprov.core.digest import Digest
from aiprov.errors import BackendError, IntegrityError, NotFound


def put(store: LocalBlobStore, data: bytes) -> tuple[Digest, bool]:
    w = store.writer()
    w.write(data)
    return w.commit()


def test_blob_is_stored_under_its_digest_once(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest, new = put(store, b"weights")
    assert digest == Digest.of(b"weights") and new
    assert put(store, b"weights") == (digest, False)
    assert store.path_of(digest).read_bytes() == b"weights"
    assert b"".join(store.read(digest)) == b"weights"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_wrong_announced_digest_publishes_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    w = store.writer()
    w.write(b"actual")
    with pytest.raises(IntegrityError, match="not the announced"):
        w.commit(expected=Digest.of(b"announced"))
    assert not store.exists(Digest.of(b"actual"))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_altered_blob_fails_read_back_naming_the_file_in_the_log_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalBlobStore(tmp_path)
    digest, _ = put(store, b"original")
    store.path_of(digest).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=str(digest)) as e:
        b"".join(store.read(digest))
    assert str(tmp_path) not in e.value.diagnostics()
    assert str(store.path_of(digest)) in caplog.text


def test_a_store_that_cannot_be_written_names_no_server_path_but_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tmp").write_bytes(b"a file where the store's tmp folder should be")
    store = LocalBlobStore(tmp_path)
    failures = []
    for attempt in (store.writer, lambda: store.resumable("key")):
        with pytest.raises(BackendError) as e:
            attempt()
        failures.append(e.value.diagnostics())
    assert all("cannot write to the blob store" in f and str(tmp_path) not in f for f in failures), failures
    assert str(tmp_path / "tmp") in caplog.text
    with pytest.raises(NotFound) as missing:
        store.size(Digest.of(b"x"))
    assert str(tmp_path) not in missing.value.diagnostics()


def test_missing_blob_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        list(LocalBlobStore(tmp_path).read(Digest.of(b"x")))


def test_temp_files_of_dead_writers_are_swept(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    (tmp_path / "tmp").mkdir()
    dead = tmp_path / "tmp" / "999999999-deadbeef"
    dead.write_bytes(b"partial")
    mine = tmp_path / "tmp" / f"{os.getpid()}-cafe"
    mine.write_bytes(b"in progress")
    put(store, b"x")
    assert not dead.exists() and mine.exists()


def test_resumable_upload_survives_a_suspend_and_publishes_once_complete(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"0123456789" * 1000
    w = store.resumable("k1")
    w.write(data[:4000])
    w.suspend()
    assert store.partial_size("k1") == 4000 and not store.exists(Digest.of(data))
    w = store.resumable("k1")  # continues after the kept bytes, re-hashing them
    assert w.offset == 4000
    w.write(data[4000:])
    assert w.commit(expected=Digest.of(data)) == (Digest.of(data), True)
    assert store.path_of(Digest.of(data)).read_bytes() == data and store.partial_size("k1") == 0


def test_resumable_upload_at_a_smaller_offset_drops_the_rest_and_beyond_is_a_conflict(tmp_path: Path) -> None:
    from aiprov.errors import Conflict

    store = LocalBlobStore(tmp_path)
    w = store.resumable("k2")
    w.write(b"abcdef")
    w.suspend()
    with pytest.raises(Conflict, match="holds 6 bytes"):
        store.resumable("k2", 7)
    w = store.resumable("k2", 3)
    with pytest.raises(Conflict, match="another request"):
        store.resumable("k2")
    w.write(b"xyz")
    with pytest.raises(IntegrityError):
        w.commit(expected=Digest.of(b"abcdef"))
    assert store.partial_size("k2") == 0 and not store.exists(Digest.of(b"abcxyz"))


def test_materialize_links_a_blob_and_refuses_a_missing_one(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "store")
    digest, _ = put(store, b"weights")
    store.materialize(digest, tmp_path / "w.bin")
    assert (tmp_path / "w.bin").read_bytes() == b"weights"
    with pytest.raises(NotFound):
        store.materialize(Digest.of(b"other"), tmp_path / "o.bin")
