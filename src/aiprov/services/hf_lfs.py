"""The Hugging Face Hub's LFS upload protocol: batch grants, capability upload URLs, and what a commit may name.

`batch` answers the client's `POST /{repo}.git/info/lfs/objects/batch`: an object already stored gets no upload
(the client skips it); any other gets an upload URL whose last segment is a **capability**, a random secret id
(`secrets.token_urlsafe(32)`, 256 bits) that is the only credential of the PUT (huggingface_hub sends that PUT
without its token, as it would to S3). The grant — who, which model, which sha256 and size, until when — is a
database row keyed by the SHA-256 of the id, so every server process on the database accepts the URL and no
signing secret is shared between them; a stolen database copy holds no usable URL.

`receive` is that PUT: the grant is claimed (`pending` -> `uploading`, one conditional UPDATE, so two requests
with one URL cannot both write), the body is streamed into a blob writer that hashes it, and the blob is
published only if it is exactly the announced size and sha256; then the grant is `uploaded` and its URL dead.
A refused body publishes nothing and gives the grant back (`pending`), so the client may retry before it
expires. Nothing is registered: the blob is unreferenced (`aiprov gc` may collect it) until a commit names it,
and `check_commit` lets a commit name an object only through a grant of the same caller and model.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiprov.core.digest import Digest
from aiprov.errors import Gone, IntegrityError, InvalidInput, NotFound
from aiprov.ports import BlobStore, BlobWriter, RegistryStore
from aiprov.records import LfsGrant

_OID = re.compile(r"[0-9a-f]{64}")
_CAPABILITY = re.compile(r"[A-Za-z0-9_-]{43}")
"""What `secrets.token_urlsafe(32)` makes: 43 URL-safe base64 characters."""

LFS_MAX_BYTES = 10 * 2**20
"""A file above this size goes through LFS (the Hub's threshold), or above half the body limit if that is less."""


def lfs_threshold(max_body_bytes: int) -> int:
    """The size above which preupload answers `lfs`: 10 MiB, or half the commit body limit if that is less.

    Smaller files stay `regular` (base64 inside the commit, where half the limit still fits once encoded), text
    or binary: only the files a commit could not carry are asked for as `lfs`, which huggingface_hub then sends
    through Xet when `hf_xet` is installed (`services.hf_xet`), else through the LFS batch API.
    """
    return min(LFS_MAX_BYTES, max_body_bytes // 2)


def capability_hash(capability: str) -> str:
    """The SHA-256 (hex) under which a capability is stored: the database never holds the id itself."""
    return hashlib.sha256(capability.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LfsAnswer:
    """The batch answer for one object: an upload `capability`, none (stored already), or an `error`."""

    oid: str
    size: int
    capability: str | None = None
    expires_at: datetime | None = None
    error: tuple[int, str] | None = None


class LfsReceiver:
    """One PUT of an upload URL: `write` the body's bytes, then `finish`; `abort` if the body did not all come."""

    def __init__(self, service: LfsUploads, grant: LfsGrant, key: str, writer: BlobWriter) -> None:
        self._service = service
        self._grant = grant
        self._key = key
        self._writer = writer
        self.received = 0

    def write(self, data: bytes) -> None:
        """Take more of the body. Raises InvalidInput past the announced size (nothing kept, the URL given back)."""
        self.received += len(data)
        if self.received > self._grant.size:
            self.abort()
            raise InvalidInput(
                f"more bytes than the {self._grant.size} the LFS batch announced for {self._grant.sha256}; "
                "nothing was stored"
            )
        self._writer.write(data)

    def finish(self) -> Digest:
        """Publish the bytes under their digest and spend the URL.

        Raises InvalidInput (fewer bytes than announced, or bytes that do not hash to the oid: nothing stored,
        the URL given back for a retry), BackendError.
        """
        grant = self._grant
        if self.received != grant.size:
            self.abort()
            raise InvalidInput(
                f"{self.received} bytes received, not the {grant.size} the LFS batch announced; nothing was stored"
            )
        try:
            digest, _ = self._writer.commit(expected=grant.sha256)
        except IntegrityError:
            self.abort()
            raise InvalidInput(
                f"the {self.received} bytes received do not hash to the oid {grant.sha256.hex}; nothing was stored",
                hint="upload the file the LFS batch named, unchanged",
            ) from None
        except BaseException:
            self.abort()
            raise
        self._service._move(self._key, "uploading", "uploaded")
        return digest

    def abort(self) -> None:
        """Discard what was received and give the URL back (`pending`), so a retry may use it."""
        self._writer.abort()
        self._service._move(self._key, "uploading", "pending")


class LfsUploads:
    """Grants of the LFS batch API over the registry database, and uploads through them into the blob store."""

    def __init__(
        self,
        db: RegistryStore,
        blobs: BlobStore,
        *,
        clock: Callable[[], datetime],
        ttl_s: float,
        max_blob_bytes: int,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self.ttl = timedelta(seconds=ttl_s)
        self.max_blob_bytes = max_blob_bytes

    def batch(self, account: str, model: str, objects: Sequence[tuple[str, int]]) -> list[LfsAnswer]:
        """Grant `account` the upload of each (oid, size) into `model`, or say why not (per object).

        An object stored already with that size needs no upload (a `stored` grant, no capability). Expired
        grants of every caller are deleted here. Raises BackendError.
        """
        now = self.clock()
        expires = now + self.ttl
        answers: list[LfsAnswer] = []
        grants: list[LfsGrant] = []
        for oid, size in objects:
            if not _OID.fullmatch(oid):
                answers.append(LfsAnswer(oid, size, error=(422, f"{oid[:80]!r} is not a sha256 (64 hex digits)")))
                continue
            if size > self.max_blob_bytes:
                answers.append(
                    LfsAnswer(oid, size, error=(413, f"{size} bytes is over the limit of {self.max_blob_bytes}"))
                )
                continue
            digest = Digest(oid)
            if self.blobs.exists(digest):
                stored = self.blobs.size(digest)
                if stored != size:
                    wrong = f"the object {oid} has {stored} bytes, not {size}"
                    answers.append(LfsAnswer(oid, size, error=(422, wrong)))
                    continue
                grants.append(LfsGrant(None, account, model, digest, size, "stored", expires))
                answers.append(LfsAnswer(oid, size))
                continue
            capability = secrets.token_urlsafe(32)
            grants.append(LfsGrant(capability_hash(capability), account, model, digest, size, "pending", expires))
            answers.append(LfsAnswer(oid, size, capability, expires))
        with self.db.unit(write=True) as u:
            u.prune_lfs_grants(now)
            for grant in grants:
                u.add_lfs_grant(grant, now)
        return answers

    def receive(self, capability: str) -> LfsReceiver:
        """Claim the upload URL whose secret id is `capability` for one PUT.

        Raises NotFound (no such URL), Gone (expired, used, or held by another PUT now), BackendError. The
        messages name neither the object nor anything of the server.
        """
        if not _CAPABILITY.fullmatch(capability):
            raise NotFound("no such upload URL")
        key = capability_hash(capability)
        with self.db.unit() as u:
            grant = u.lfs_grant(key)
        if grant is None:
            raise NotFound("no such upload URL", hint="ask the LFS batch API for a new one")
        if grant.expires_at <= self.clock():
            raise Gone("this upload URL has expired", hint="ask the LFS batch API for a new one")
        if grant.state != "pending" or not self._move(key, "pending", "uploading"):
            raise Gone(
                "this upload URL was used already" if grant.received else "this upload URL is in use by another upload",
                hint="each upload URL takes one upload; ask the LFS batch API for a new one",
            )
        return LfsReceiver(self, grant, key, self.blobs.writer(read_back=True))

    def verify(self, account: str, model: str, oid: str, size: int) -> None:
        """The LFS `verify` action: the object is stored with `size` bytes through a grant of `account`.

        Raises InvalidInput (a malformed oid), NotFound (not received, or a different size).
        """
        digest = self._digest(oid)
        if not self._granted(account, model, digest) or self.blobs.size(digest) != size:
            raise NotFound(f"the object {oid} of {size} bytes was not received", hint="upload it again")

    def check_commit(self, account: str, model: str, objects: Iterable[tuple[str, Digest]]) -> None:
        """Every (path, sha256) an LFS commit names must have been received through a grant of `account`.

        Raises InvalidInput naming the first path that was not.
        """
        for path, digest in objects:
            if not self._granted(account, model, digest):
                raise InvalidInput(
                    f"{path!r} names the LFS object {digest.hex}, which {account} did not upload to {model} "
                    "(or its upload expired)",
                    hint="upload it through Xet or the LFS batch API first (huggingface_hub does), then commit",
                )

    def _granted(self, account: str, model: str, digest: Digest) -> bool:
        now = self.clock()
        with self.db.unit() as u:
            grants = u.lfs_grants_of(account, model, digest)
        return any(g.received and g.expires_at > now for g in grants) and self.blobs.exists(digest)

    @staticmethod
    def _digest(oid: str) -> Digest:
        if not _OID.fullmatch(oid):
            raise InvalidInput(f"{oid[:80]!r} is not a sha256 (64 hex digits)")
        return Digest(oid)

    def _move(self, key: str, from_state: str, to_state: str) -> bool:
        with self.db.unit(write=True) as u:
            return u.move_lfs_grant(key, from_state, to_state)
