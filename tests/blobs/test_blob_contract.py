"""The BlobStore contract: the local folder and the S3 store (on a real SeaweedFS) keep the same promises."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from blobtools import BUCKET, PART, StoreCase, Weed, s3_case

from aiprov.core.digest import Digest
from aiprov.errors import BackendError, Busy, Conflict, IntegrityError, InvalidInput, NotFound
from aiprov.ports import BlobStore
from aiprov.services.uploads import UploadService

ROOT = Path(__file__).resolve().parents[2]
MULTIPART = os.urandom(2 * PART + 12345)  # three parts on S3


def put(store: BlobStore, data: bytes) -> tuple[Digest, bool]:
    w = store.writer()
    w.write(data)
    return w.commit()


def test_same_bytes_are_stored_once_under_their_digest(case: StoreCase) -> None:
    store = case.store
    for data in (b"", b"weights", MULTIPART):
        digest, new = put(store, data)
        assert digest == Digest.of(data) and new
        assert put(store, data) == (digest, False)  # dedup: S3 answered the create-only copy 412
        assert store.exists(digest) and store.size(digest) == len(data)
        assert b"".join(store.read(digest)) == data
    assert sorted(d for d, _, _ in store.stored()) == sorted(Digest.of(d) for d in (b"", b"weights", MULTIPART))
    assert case.leftovers() == []


def test_nothing_is_visible_before_commit_and_a_wrong_digest_publishes_nothing(case: StoreCase) -> None:
    store = case.store
    w = store.writer()
    w.write(MULTIPART)
    assert w.staged().read_bytes() == MULTIPART  # what push scans: exactly the bytes written
    assert not store.exists(Digest.of(MULTIPART)) and list(store.stored()) == []
    with pytest.raises(IntegrityError, match="not the announced"):
        w.commit(expected=Digest.of(b"announced"))
    assert not store.exists(Digest.of(MULTIPART)) and list(store.stored()) == []
    assert case.leftovers() == []


def test_an_aborted_multipart_write_leaves_nothing(case: StoreCase) -> None:
    store = case.store
    w = store.writer()
    w.write(MULTIPART[: PART + 1])
    w.abort()
    with pytest.raises(RuntimeError, match="source failed"), store.writer() as cut:  # type: ignore[attr-defined]
        cut.write(MULTIPART)
        raise RuntimeError("the source failed mid-copy")
    assert list(store.stored()) == [] and case.leftovers() == []


def test_a_writer_killed_mid_upload_leaves_nothing_visible(case: StoreCase, tmp_path: Path) -> None:
    if case.kind == "local":
        where, scratch = str(case.store.root), ""  # type: ignore[attr-defined]
    else:
        where, scratch = f"s3://{BUCKET}/{case.store.location.prefix}", str(case.store.scratch)  # type: ignore[attr-defined]
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "cut_writer.py"), case.kind, where, scratch, str(len(MULTIPART))],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"written\n"
        if case.kind == "s3":  # a multipart upload is under way when the writer dies
            client, deadline = case.store.client, time.monotonic() + 30  # type: ignore[attr-defined]
            while not client.list_multipart_uploads(Bucket=BUCKET, Prefix=where.split("/", 3)[3]).get("Uploads"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert list(case.store.stored()) == [] and not case.store.exists(Digest.of(MULTIPART))
    put(case.store, b"the next writer sweeps the dead one's local file")
    assert all(not name.startswith(f"{child.pid}-") for name in case.leftovers())


def test_concurrent_writers_of_the_same_bytes_store_one_blob(case: StoreCase) -> None:
    results: list[tuple[Digest, bool]] = []
    writers = [case.store.writer() for _ in range(4)]
    for w in writers:
        w.write(MULTIPART)
    start = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def commit(w: object) -> None:
        start.wait()
        try:
            results.append(w.commit())  # type: ignore[attr-defined]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=commit, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # At least one reports the bytes new, perhaps more: the local store's rename replaces identical bytes, and
    # SeaweedFS 4.48 lets concurrent If-None-Match completions of a multipart copy all succeed (AWS lets one).
    # Every competitor publishes bytes it checked against the digest, so the one blob is right whoever wins.
    assert True in [new for _, new in results] and len(results) == len(writers)
    assert b"".join(case.store.read(Digest.of(MULTIPART))) == MULTIPART and case.leftovers() == []


def test_many_writers_open_at_once_in_one_thread_all_finish(case: StoreCase) -> None:
    """Like a server with many uploads in flight: no writer waits for another one to end."""
    blobs = [os.urandom(3 * 2**20) for _ in range(12)]
    done: list[Digest] = []

    def write_all() -> None:
        writers = [case.store.writer() for _ in blobs]
        for start in range(0, len(blobs[0]), 2**20):  # round-robin, 1 MiB at a time
            for w, data in zip(writers, blobs, strict=True):
                w.write(data[start : start + 2**20])
        done.extend(w.commit()[0] for w in writers)

    worker = threading.Thread(target=write_all, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "a writer is stuck waiting for another one"
    assert done == [Digest.of(d) for d in blobs] and case.leftovers() == []


def test_ranges_from_the_first_byte_to_the_last_and_past_the_end(case: StoreCase) -> None:
    data = bytes(range(256)) * 4
    digest, _ = put(case.store, data)

    def read(offset: int, length: int) -> bytes:
        return b"".join(case.store.read_range(digest, offset, length))

    assert read(0, 1) == data[:1]
    assert read(len(data) - 1, 1) == data[-1:]
    assert read(0, len(data)) == data
    assert read(100, 300) == data[100:400]
    assert read(len(data), 0) == b""
    for offset, length in ((len(data) - 1, 2), (len(data), 1), (len(data) + 100, 1)):
        with pytest.raises(InvalidInput, match="ends before byte"):
            read(offset, length)
    with pytest.raises(NotFound):
        b"".join(case.store.read_range(Digest.of(b"absent"), 0, 1))


def test_an_altered_blob_fails_whole_and_ranged_verified_reads(case: StoreCase) -> None:
    digest, _ = put(case.store, b"original bytes")
    case.tamper(digest, b"tampered bytes")
    with pytest.raises(IntegrityError, match=str(digest)):
        b"".join(case.store.read(digest))
    uploads = UploadService(case.store, max_blob_bytes=2**20)
    with pytest.raises(IntegrityError):
        b"".join(uploads.read_verified(digest, start=0, end=0))


def test_missing_blob_is_not_found_by_every_read(case: StoreCase, tmp_path: Path) -> None:
    absent = Digest.of(b"absent")
    assert not case.store.exists(absent)
    for attempt in (
        lambda: b"".join(case.store.read(absent)),
        lambda: case.store.size(absent),
        lambda: case.store.materialize(absent, tmp_path / "m"),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert case.store.delete(absent) is False


def test_materialize_and_delete(case: StoreCase, tmp_path: Path) -> None:
    digest, _ = put(case.store, b"weights")
    case.store.materialize(digest, tmp_path / "w.bin")
    assert (tmp_path / "w.bin").read_bytes() == b"weights"
    ((listed, size, mtime),) = case.store.stored()
    assert listed == digest and size == 7 and abs(mtime - time.time()) < 120
    assert case.store.delete(digest) is True and not case.store.exists(digest) and list(case.store.stored()) == []


def test_resumable_upload_survives_a_suspend_and_publishes_once_complete(case: StoreCase) -> None:
    store = case.store
    data = MULTIPART
    w = store.resumable("k1")
    w.write(data[: PART + 10])
    w.suspend()
    assert store.partial_size("k1") == PART + 10 and not store.exists(Digest.of(data))
    w = store.resumable("k1")  # continues after the kept bytes, re-hashing them
    assert w.offset == PART + 10
    w.write(data[PART + 10 :])
    assert w.commit(expected=Digest.of(data)) == (Digest.of(data), True)
    assert b"".join(store.read(Digest.of(data))) == data and store.partial_size("k1") == 0
    assert case.leftovers() == []


def test_resumable_upload_has_one_writer_and_a_wrong_offset_is_a_conflict(case: StoreCase) -> None:
    store = case.store
    w = store.resumable("k2")
    w.write(b"abcdef")
    w.suspend()
    with pytest.raises(Conflict, match="holds 6 bytes"):
        store.resumable("k2", 7)
    w = store.resumable("k2", 3)
    with pytest.raises(Busy):
        store.resumable("k2")
    w.write(b"xyz")
    with pytest.raises(IntegrityError):
        w.commit(expected=Digest.of(b"abcdef"))
    assert store.partial_size("k2") == 0 and not store.exists(Digest.of(b"abcxyz"))
    assert case.leftovers() == []


# S3 only --------------------------------------------------------------------------------------------------


def test_the_create_only_write_never_replaces_stored_bytes(weed: Weed, s3_env: dict[str, str], tmp_path: Path) -> None:
    case = s3_case(weed, tmp_path / "staging")
    store = case.store
    digest, _ = put(store, b"first")
    client = weed.client()
    source = f"{store.location.prefix}tmp/forged"  # type: ignore[attr-defined]
    client.put_object(Bucket=BUCKET, Key=source, Body=b"other")
    assert store.publish(source, digest, 5) is False  # type: ignore[attr-defined]
    assert b"".join(store.read(digest)) == b"first"


def test_a_stalled_upload_taken_over_leaves_the_new_holders_upload_alone(
    weed: Weed, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiprov.adapters import blob_s3

    monkeypatch.setattr(blob_s3, "LOCK_STALE_S", 0.0)  # every lock is stale at once: the writer "stalled"
    monkeypatch.setattr(blob_s3, "LOCK_REFRESH_S", 0.0)  # and every write refreshes its lock
    case = s3_case(weed, tmp_path / "staging")
    stalled = case.store.resumable("k")
    stalled.write(b"abc")
    taker = case.store.resumable("k")  # takes the stale lock over with If-Match on its ETag
    with pytest.raises(Conflict, match="took this upload over"):
        stalled.write(b"zzz")
    stalled.suspend()  # a no-op: the partial upload is the taker's
    taker.write(b"abcdef")
    assert taker.commit(expected=Digest.of(b"abcdef")) == (Digest.of(b"abcdef"), True)
    stalled.abort()
    assert case.store.exists(Digest.of(b"abcdef")) and case.leftovers() == []


def one_line(e: BackendError, *secrets: str) -> str:
    text = e.diagnostics()
    assert "\n" not in text and all(s not in text for s in secrets), text
    return text


def test_a_wrong_key_is_one_clear_line_naming_no_secret_or_endpoint(
    weed: Weed, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789")
    store = s3_case(weed, tmp_path / "staging").store
    port = weed.endpoint.rsplit(":", 1)[1]
    for attempt in (store.writer, lambda: store.exists(Digest.of(b"x")), lambda: list(store.stored())):
        with pytest.raises(BackendError) as e:
            attempt()
        text = one_line(e.value, "wrong-secret", s3_env["AWS_SECRET_ACCESS_KEY"], port, "127.0.0.1")
        assert "refused the credentials" in text and "AWS_SECRET_ACCESS_KEY" in text


def test_no_credentials_at_all_is_one_clear_line(
    weed: Weed, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to find here
    store = s3_case(weed, tmp_path / "staging").store
    with pytest.raises(BackendError) as e:
        store.exists(Digest.of(b"x"))
    assert "no S3 credentials are configured" in one_line(e.value, weed.endpoint)


def test_a_missing_bucket_is_one_clear_line(weed: Weed, s3_env: dict[str, str], tmp_path: Path) -> None:
    store = s3_case(weed, tmp_path / "staging", url="s3://no-such-bucket/p").store
    with pytest.raises(BackendError) as e:
        put(store, b"x")
    assert one_line(e.value, weed.endpoint).startswith("the S3 bucket 'no-such-bucket' does not exist")


def test_an_unreachable_endpoint_is_one_line(
    weed: Weed, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blobtools import free_port

    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", down)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = s3_case(weed, tmp_path / "staging").store
    with pytest.raises(BackendError) as e:
        store.exists(Digest.of(b"x"))
    assert "cannot reach the S3 store" in one_line(e.value, down)
