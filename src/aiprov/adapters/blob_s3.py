"""The S3 blob store (boto3): one object per blob under `<prefix>sha256/<64 hex>` of a bucket.

A new blob is streamed, as it is written, into a staging object `<prefix>tmp/<pid>-<token>` by s3transfer (a
multipart upload once it outgrows TransferConfig.multipart_threshold), and hashed with our own SHA-256 on the
way: S3's part checksums are not a file digest. Only once the digest is checked is the staging object copied to
its content address with a create-only write (`If-None-Match: *`); a 412 there means the same bytes are stored
already (dedup). An aborted or failed upload is aborted (s3transfer aborts its multipart upload), and the staging
object, if it was completed, is removed: nothing is ever visible under a content address before its digest is
checked. Each writer also keeps a local copy of what it wrote (the port's `staged` file, which push scans).

A resumable upload (the API's) keeps its partial bytes as the object `<prefix>uploads/<key>`, held by a lock
object `<prefix>uploads/<key>.lock` created with `If-None-Match: *`; a writer refreshes its lock as it writes and
a lock left unrefreshed for LOCK_STALE_S (its server died) is taken over, with `If-Match` on its ETag; the stalled
writer then finds its lock gone and hands the upload off untouched. Continuing an upload re-reads the kept
bytes once to rebuild the hash and streams them into the new upload along with what follows (S3 cannot append).

Staging objects and multipart uploads of dead writers are swept, once per process, when STAGING_TTL_S old;
partial uploads untouched for UPLOAD_TTL_S likewise.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from s3transfer.utils import ChunksizeAdjuster

from aiprov.adapters.blob_local import pid_alive
from aiprov.core.digest import Digest
from aiprov.errors import AiprovError, BackendError, Busy, Conflict, IntegrityError, InvalidInput, NotFound

if TYPE_CHECKING:
    from s3transfer.futures import TransferFuture
    from s3transfer.manager import TransferManager

READ_CHUNK = 4 * 1024 * 1024
STAGING_TTL_S = 24 * 3600
UPLOAD_TTL_S = 7 * 24 * 3600
LOCK_STALE_S = 300.0
LOCK_REFRESH_S = 60.0
MAX_WRITERS = 1024
"""Writers one store streams at once (one s3transfer submission thread each); one more waits for a free one."""
_UPLOAD_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
log = logging.getLogger("aiprov.blobs")


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where `AIPROV_BLOBS=s3://bucket/prefix` points: a bucket and a key prefix ("" or ending in `/`)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Raises InvalidInput unless `url` is `s3://bucket` or `s3://bucket/prefix`."""
        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if rest == url or not _BUCKET.fullmatch(bucket):
            raise InvalidInput(f"AIPROV_BLOBS={url!r} is not s3://BUCKET[/PREFIX]", hint="bucket: 3-63 of a-z 0-9 . -")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")


def _status(e: ClientError) -> tuple[str, int]:
    err: dict[str, Any] = e.response.get("Error", {})
    meta: dict[str, Any] = e.response.get("ResponseMetadata", {})
    return str(err.get("Code", "")), int(meta.get("HTTPStatusCode", 0))


class _Aborted(Exception):
    """Raised into s3transfer's reading thread so that it fails, and aborts, the upload."""


class _Pipe:
    """A bounded, blocking byte pipe: the writer's `write` on one side, s3transfer's `read(n)` on the other.

    s3transfer reads a non-seekable stream a part at a time and takes a short read for its last part, so
    `read(n)` blocks until it has n bytes or the writer closed the pipe.
    """

    def __init__(self, depth: int = 2) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._left = b""
        self._eof = False
        self._aborted = threading.Event()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def put(self, item: bytes | None, alive: Callable[[], bool]) -> None:
        """Queue `item` (None: end of stream), waiting while the pipe is full and the reader `alive()`."""
        while alive():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def abort(self) -> None:
        self._aborted.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def read(self, n: int = -1) -> bytes:
        parts = [self._left]
        have = len(self._left)
        while not self._eof and (n < 0 or have < n):
            item = self._queue.get()
            if self._aborted.is_set():
                raise _Aborted
            if item is None:
                self._eof = True
                break
            parts.append(item)
            have += len(item)
        data = b"".join(parts)
        if n < 0 or len(data) <= n:
            self._left = b""
            return data
        self._left = data[n:]
        return data[:n]


class S3BlobStore:
    """A `BlobStore` in an S3 bucket (AWS, SeaweedFS, MinIO, …); `scratch` is a local folder for staged copies."""

    def __init__(self, location: S3Location, scratch: Path, client: Any, transfer: TransferConfig) -> None:
        self.location = location
        self.scratch = scratch
        self.transfer = copy.copy(transfer)
        # s3transfer reads a non-seekable stream in a submission thread until it ends: with its 5 such threads a
        # sixth writer would wait for one of five to finish, forever if one caller feeds them all (a server's
        # uploads, round-robin). One thread per open writer, up to MAX_WRITERS (threads start as needed).
        self.transfer.max_submission_concurrency = MAX_WRITERS
        self._client = client
        self._manager: TransferManager | None = None
        self._lock = threading.Lock()
        self._checked = False
        self._swept = False

    @classmethod
    def from_environment(cls, url: str, scratch: Path, transfer: TransferConfig | None = None) -> S3BlobStore:
        """The store at `url` (s3://bucket/prefix) with the standard AWS settings of the environment.

        AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (or AWS_REGION) and the
        AWS config files are read by boto3 itself. Raises InvalidInput for a malformed url.
        """
        location = S3Location.parse(url)
        config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
        session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
        return cls(location, scratch, session.client("s3", config=config), transfer or TransferConfig())

    # keys and errors ------------------------------------------------------------------------------------

    def key_of(self, digest: Digest) -> str:
        return f"{self.location.prefix}sha256/{digest.hex}"

    def _key(self, name: str) -> str:
        return f"{self.location.prefix}{name}"

    def failed(self, what: str, e: Exception) -> AiprovError:
        """Our error for what boto3 raised during `what`: one line, naming no endpoint, key or secret."""
        bucket = self.location.bucket
        log.error("S3 %s failed: %r", what, e)  # the whole error, for the operator
        if isinstance(e, NoCredentialsError):
            return BackendError(
                f"{what}: no S3 credentials are configured",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
            )
        if isinstance(e, ClientError):
            code, status = _status(e)
            if code == "NoSuchBucket":
                return BackendError(f"the S3 bucket {bucket!r} does not exist", hint="create it, or fix AIPROV_BLOBS")
            if code in _DENIED:
                return BackendError(
                    f"{what}: the S3 store refused the credentials for bucket {bucket!r} ({code})",
                    hint="check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                )
            return BackendError(f"{what}: S3 answered {status} {code}".rstrip())
        if isinstance(e, BotoCoreError):
            return BackendError(
                f"{what}: cannot reach the S3 store ({type(e).__name__})", hint="check AWS_ENDPOINT_URL"
            )
        return BackendError(f"{what}: {type(e).__name__}")

    def _raise(self, what: str, e: Exception) -> NoReturn:
        raise self.failed(what, e) from e

    @property
    def client(self) -> Any:
        """The boto3 client, once the bucket answered (so a missing bucket or a wrong key fails first, clearly)."""
        if not self._checked:
            try:
                self._client.head_bucket(Bucket=self.location.bucket)
            except ClientError as e:
                if _status(e)[1] == 404:
                    e.response["Error"]["Code"] = "NoSuchBucket"  # a HEAD's error has no body: only the status
                self._raise("cannot open the blob store", e)
            except BotoCoreError as e:
                self._raise("cannot open the blob store", e)
            self._checked = True
        return self._client

    @property
    def manager(self) -> TransferManager:
        with self._lock:
            if self._manager is None:
                self._manager = create_transfer_manager(self.client, self.transfer)
            return self._manager

    # reads ----------------------------------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.location.bucket, Key=key)
        except ClientError as e:
            if _status(e)[1] == 404:
                return None
            self._raise("cannot read the blob store", e)
        except BotoCoreError as e:
            self._raise("cannot read the blob store", e)
        return head

    def exists(self, digest: Digest) -> bool:
        return self._head(self.key_of(digest)) is not None

    def size(self, digest: Digest) -> int:
        head = self._head(self.key_of(digest))
        if head is None:
            raise NotFound(f"blob {digest} is not in the store")
        return int(head["ContentLength"])

    def _get(self, digest: Digest, what: str, **range_: str) -> Iterator[bytes]:
        """The object's bytes in READ_CHUNK pieces. Raises NotFound, InvalidInput (a range past the end)."""
        try:
            body = self.client.get_object(Bucket=self.location.bucket, Key=self.key_of(digest), **range_)["Body"]
        except ClientError as e:
            code, status = _status(e)
            if code == "NoSuchKey" or status == 404:
                raise NotFound(f"blob {digest} is missing from the store") from None
            if code == "InvalidRange" or status == 416:
                raise InvalidInput(f"blob {digest} ends before byte {range_['Range'].split('-')[-1]}") from None
            self._raise(what, e)
        except BotoCoreError as e:
            self._raise(what, e)
        with contextlib.closing(body):
            try:
                yield from body.iter_chunks(READ_CHUNK)
            except BotoCoreError as e:
                self._raise(what, e)

    def read(self, digest: Digest) -> Iterator[bytes]:
        h = hashlib.sha256()
        for chunk in self._get(digest, f"cannot read blob {digest}"):
            h.update(chunk)
            yield chunk
        if h.hexdigest() != digest.hex:
            log.error("stored blob s3://%s/%s does not match its digest", self.location.bucket, self.key_of(digest))
            raise IntegrityError(f"stored blob {digest} does not match its digest: the store was altered")

    def read_range(self, digest: Digest, offset: int, length: int) -> Iterator[bytes]:
        if length <= 0:
            if not self.exists(digest):
                raise NotFound(f"blob {digest} is missing from the store")
            return
        left = length
        for chunk in self._get(digest, f"cannot read blob {digest}", Range=f"bytes={offset}-{offset + length - 1}"):
            left -= len(chunk)
            yield chunk
        if left:
            raise InvalidInput(f"blob {digest} ends before byte {offset + length}")

    def materialize(self, digest: Digest, target: Path) -> None:
        """A verified copy of the blob as the new file `target` (S3 has no links)."""
        try:
            with open(target, "xb") as f:
                for chunk in self.read(digest):
                    f.write(chunk)
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            log.error("cannot copy blob %s to %s: %s", digest, target, e)
            raise BackendError(f"cannot copy blob {digest}: {e.strerror}") from e
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            raise

    def _list(self, name: str) -> Iterator[dict[str, Any]]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=self._key(name)
            )
            for page in pages:
                yield from page.get("Contents", [])
        except (ClientError, BotoCoreError) as e:
            self._raise("cannot list the blob store", e)

    def stored(self) -> Iterator[tuple[Digest, int, float]]:
        """Every stored blob: (digest, size, time it was published); staging objects are not listed."""
        base = self._key("sha256/")
        for obj in self._list("sha256/"):
            name = obj["Key"][len(base) :]
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                yield Digest(name), int(obj["Size"]), obj["LastModified"].timestamp()

    def delete(self, digest: Digest) -> bool:
        if not self.exists(digest):
            return False
        self._delete_key(self.key_of(digest), f"cannot remove blob {digest}")
        return True

    def _delete_key(self, key: str, what: str) -> None:
        try:
            self.client.delete_object(Bucket=self.location.bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            self._raise(what, e)

    # writes ---------------------------------------------------------------------------------------------

    def writer(self, *, read_back: bool = False) -> S3BlobWriter:
        """A new blob's writer (`read_back` changes nothing here: the staged copy is always a local file)."""
        if not self._swept:
            self._sweep()
        return S3BlobWriter(self, self._key(f"tmp/{os.getpid()}-{secrets.token_hex(8)}"))

    def resumable(self, key: str, offset: int | None = None) -> S3ResumableWriter:
        if not _UPLOAD_KEY.fullmatch(key):
            raise InvalidInput(f"not an upload key: {key!r}")
        if not self._swept:
            self._sweep()
        return S3ResumableWriter(self, key, offset)

    def partial_size(self, key: str) -> int:
        if not _UPLOAD_KEY.fullmatch(key):
            raise InvalidInput(f"not an upload key: {key!r}")
        head = self._head(self._key(f"uploads/{key}"))
        return 0 if head is None else int(head["ContentLength"])

    def scratch_file(self) -> tuple[Path, io.BufferedWriter]:
        """A new local file for a writer's staged copy (`<pid>-<token>`, swept once its process is gone)."""
        try:
            self.scratch.mkdir(parents=True, exist_ok=True)
            path = self.scratch / f"{os.getpid()}-{secrets.token_hex(8)}"
            return path, open(path, "xb")
        except OSError as e:
            log.error("cannot create a staging file in %s: %s", self.scratch, e)
            raise BackendError(f"cannot write to the blob store: {e.strerror}") from e

    def publish(self, source: str, digest: Digest, size: int) -> bool:
        """Copy the checked object `source` to the digest's key, create-only; False if the blob was there already.

        s3transfer's managed copy sends no If-None-Match, so the create-only copy is ours: one CopyObject up to
        the multipart threshold, else a multipart copy whose completion carries If-None-Match.
        """
        target = self.key_of(digest)
        bucket = self.location.bucket
        copy_source = {"Bucket": bucket, "Key": source}
        try:
            if size < self.transfer.multipart_threshold:
                self.client.copy_object(Bucket=bucket, Key=target, CopySource=copy_source, IfNoneMatch="*")
            elif not self.exists(digest):  # a stored blob's copy, refused only at its end, is not worth making
                self._copy_multipart(copy_source, target, size)
            else:
                return False
        except ClientError as e:
            if _status(e)[1] == 412:
                return False  # the same bytes were published meanwhile
            self._raise(f"cannot store blob {digest}", e)
        except BotoCoreError as e:
            self._raise(f"cannot store blob {digest}", e)
        return True

    def _copy_multipart(self, source: dict[str, str], target: str, size: int) -> None:
        bucket = self.location.bucket
        upload = self.client.create_multipart_upload(Bucket=bucket, Key=target)["UploadId"]
        try:
            part = ChunksizeAdjuster().adjust_chunksize(self.transfer.multipart_chunksize, size)
            parts = []
            for number, start in enumerate(range(0, size, part), start=1):
                stop = min(start + part, size) - 1
                copied = self.client.upload_part_copy(
                    Bucket=bucket,
                    Key=target,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{stop}",
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=bucket, Key=target, UploadId=upload, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=bucket, Key=target, UploadId=upload)
            raise

    def _sweep(self) -> None:
        """Remove what dead writers left: local staged copies, staging objects and multipart uploads, old partials."""
        self._swept = True
        if self.scratch.is_dir():
            for tmp in self.scratch.iterdir():
                pid, _, _ = tmp.name.partition("-")
                if pid.isdigit() and not pid_alive(int(pid)):
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
        now = time.time()
        bucket = self.location.bucket
        for name, ttl in (("tmp/", STAGING_TTL_S), ("uploads/", UPLOAD_TTL_S)):
            for obj in self._list(name):
                if obj["LastModified"].timestamp() < now - ttl:
                    self._delete_key(obj["Key"], "cannot sweep the blob store")
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=bucket, Prefix=self.location.prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < now - STAGING_TTL_S:
                        self.client.abort_multipart_upload(
                            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
        except (ClientError, BotoCoreError) as e:
            self._raise("cannot sweep the blob store", e)


class S3BlobWriter:
    """Streams a blob into the staging object `key` while hashing it and keeping a local copy."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._hash = hashlib.sha256()
        self._written = 0
        self._done = False
        self._closed = False
        self._tmp, self._file = store.scratch_file()
        self._pipe = _Pipe()
        try:
            self._future: TransferFuture = store.manager.upload(self._pipe, store.location.bucket, key)
        except BaseException:
            self._discard_local()
            raise

    def write(self, data: bytes | memoryview) -> int:
        self._hash.update(data)
        try:
            self._file.write(data)
        except OSError as e:
            log.error("cannot write the staged copy %s: %s", self._tmp, e)
            raise BackendError(f"cannot write to the blob store: {e.strerror}") from e
        self._pipe.put(bytes(data), alive=lambda: not self._future.done())
        if self._future.done():
            self._upload_result()  # raises what stopped the upload
        self._written += len(data)
        return len(data)

    def digest(self) -> Digest:
        """The SHA-256 of the bytes written so far (what `commit` will store them under)."""
        return Digest(self._hash.hexdigest())

    def _close(self) -> None:
        """End the stream: s3transfer completes the staging object on its own; the local copy is flushed."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
        except OSError as e:
            raise BackendError(f"cannot write to the blob store: {e.strerror}") from e
        self._pipe.put(None, alive=lambda: not self._future.done())

    def _upload_result(self) -> None:
        """Wait for the upload; raise what stopped it as our error (s3transfer raises its own types too)."""
        try:
            self._future.result()
        except AiprovError:
            raise
        except Exception as e:
            self._store._raise("cannot write to the blob store", e)

    def staged(self) -> Path:
        """The local copy of exactly the bytes written, readable until commit or abort; the upload goes on."""
        self._close()
        return self._tmp

    def commit(self, expected: Digest | None = None) -> tuple[Digest, bool]:
        digest = self.digest()
        try:
            if expected is not None and digest != expected:
                raise IntegrityError(f"received bytes hash to {digest}, not the announced {expected}")
            self._close()
            self._upload_result()
            return digest, self._store.publish(self._key, digest, self._written)
        finally:
            self._finish()

    def abort(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        if not self._future.done():
            self._pipe.abort()  # s3transfer's read fails: it aborts the multipart upload
            self._future.cancel()
        with contextlib.suppress(Exception):
            self._future.result()
        try:
            self._store._delete_key(self._key, "cannot remove a staging object")  # absent unless it completed
        except AiprovError:
            # Never mask why the write ended (often the same outage); the sweep removes it after STAGING_TTL_S.
            log.warning("staging object %s left behind for the sweep", self._key)
        finally:
            self._discard_local()

    def _discard_local(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> S3BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class _UploadLock:
    """The lock object of a partial upload: created only if absent, refreshed while held, taken over when stale."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._etag = ""
        self._refreshed = 0.0
        self.lost = False
        """Another request took the lock over (this holder stalled past LOCK_STALE_S): hands off its upload."""
        self._acquire()

    def _put(self, **condition: str) -> None:
        answer = self._store.client.put_object(
            Bucket=self._store.location.bucket, Key=self._key, Body=secrets.token_hex(8).encode(), **condition
        )
        self._etag = answer["ETag"]
        self._refreshed = time.monotonic()

    def _acquire(self) -> None:
        busy = Busy("this upload is being written by another request", hint="wait for it, or retry later")
        try:
            self._put(IfNoneMatch="*")
            return
        except ClientError as e:
            if _status(e)[1] != 412:
                self._store._raise("cannot lock an upload", e)
        except BotoCoreError as e:
            self._store._raise("cannot lock an upload", e)
        held = self._store._head(self._key)
        if held is not None and held["LastModified"].timestamp() > time.time() - LOCK_STALE_S:
            raise busy
        try:  # its holder stopped refreshing it (died): take it over, unless another request just did
            self._put(IfMatch=held["ETag"]) if held is not None else self._put(IfNoneMatch="*")
        except ClientError as e:
            if _status(e)[1] in (404, 412):
                raise busy from None
            self._store._raise("cannot lock an upload", e)
        except BotoCoreError as e:
            self._store._raise("cannot lock an upload", e)

    def refresh(self) -> None:
        """Keep the lock fresh (every LOCK_REFRESH_S), so no other request takes a live upload over."""
        if time.monotonic() - self._refreshed < LOCK_REFRESH_S:
            return
        try:
            self._put(IfMatch=self._etag)
        except ClientError as e:
            if _status(e)[1] == 412:
                self.lost = True
                raise Conflict("another request took this upload over", hint="retry") from None
            self._store._raise("cannot lock an upload", e)
        except BotoCoreError as e:
            self._store._raise("cannot lock an upload", e)

    def release(self) -> None:
        """Remove the lock, unless it was taken over (then it is the new holder's)."""
        if self.lost:
            return
        try:
            self._store.client.delete_object(Bucket=self._store.location.bucket, Key=self._key, IfMatch=self._etag)
        except ClientError as e:
            if _status(e)[1] not in (404, 412):  # 412: taken over since our last refresh
                self._store._raise("cannot unlock an upload", e)
        except BotoCoreError as e:
            self._store._raise("cannot unlock an upload", e)


class S3ResumableWriter(S3BlobWriter):
    """A writer over the partial upload `<prefix>uploads/<key>`, holding its lock object until it is done."""

    def __init__(self, store: S3BlobStore, key: str, offset: int | None) -> None:
        partial = store._key(f"uploads/{key}")
        self._upload_lock = _UploadLock(store, f"{partial}.lock")
        try:
            kept = store.partial_size(key)
            offset = kept if offset is None else offset
            if offset > kept:
                raise Conflict(f"upload holds {kept} bytes; cannot continue at byte {offset}", hint=f"resume at {kept}")
            old = self._kept(store, partial, offset)
            super().__init__(store, partial)  # its upload replaces the partial object when it completes
            try:
                for chunk in old:
                    super().write(chunk)
            except BotoCoreError as e:
                self._finish()
                store._raise("cannot continue the upload", e)
            except BaseException:
                self._finish()
                raise
        except BaseException:
            self._upload_lock.release()
            raise

    @staticmethod
    def _kept(store: S3BlobStore, partial: str, offset: int) -> Iterator[bytes]:
        if offset == 0:
            return iter(())
        try:
            answer = store.client.get_object(Bucket=store.location.bucket, Key=partial, Range=f"bytes=0-{offset - 1}")
        except (ClientError, BotoCoreError) as e:
            store._raise("cannot continue the upload", e)
        chunks: Iterator[bytes] = answer["Body"].iter_chunks(READ_CHUNK)
        return chunks

    @property
    def offset(self) -> int:
        return self._written

    def write(self, data: bytes | memoryview) -> int:
        try:
            self._upload_lock.refresh()
        except Conflict:
            self._hand_off()
            raise
        return super().write(data)

    def _hand_off(self) -> None:
        """The upload is another request's now: stop ours without completing, or removing, its partial object."""
        self._done = True
        self._pipe.abort()
        self._future.cancel()
        with contextlib.suppress(Exception):
            self._future.result()
        self._discard_local()

    def suspend(self) -> None:
        """Complete the upload into the partial object (it then holds every byte received) and unlock it."""
        if self._done:
            return
        self._done = True
        try:
            self._close()
            self._upload_result()
        finally:
            self._discard_local()
            self._upload_lock.release()

    def commit(self, expected: Digest | None = None) -> tuple[Digest, bool]:
        if self._done:
            raise Conflict("another request took this upload over", hint="retry")
        try:
            return super().commit(expected)
        finally:
            self._upload_lock.release()

    def abort(self) -> None:
        if self._done:
            return
        try:
            super().abort()
        finally:
            self._upload_lock.release()
