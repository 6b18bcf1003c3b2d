"""Xet uploads from `huggingface_hub`: write tokens, xorbs kept per caller and model, files rebuilt from shards.

huggingface_hub sends every file preupload marks `lfs` through Xet when `hf_xet` is installed: it asks
`xet-write-token` for a CAS URL and a token, POSTs xorbs (compressed chunks), then a shard listing each file as
terms over those xorbs, and finally commits the files by sha256 (`lfsFile`) as it would after an LFS upload.

- `issue` makes the token: a random secret (`secrets.token_urlsafe(32)`, 256 bits) bound to the caller and the
  model, stored as its SHA-256 with an expiry, so any server process on the database accepts it.
- `put_xorb` checks that the body is a well-formed xorb whose chunks all decompress (`core.xet`), stores its bytes
  as a blob, and records that this caller sent this xorb for this model.
- `put_shard` rebuilds every file the shard lists from xorbs *this caller sent for this model* (nobody else's,
  whatever their hash), streams it into the blob store hashing it as it goes, checks the SHA-256 the shard
  declares, and records the file as received (an LFS grant in state `uploaded`), which is what lets the commit
  name it (`LfsUploads.check_commit`). The commit then scans it and registers it like any pushed file.

Xet's BLAKE3 chunk, xorb and verification hashes are not recomputed: they protect Xet's deduplication, which
this hub does not offer (global dedupe always answers "not found"). A client that lies about a xorb's hash only
changes what its own files are rebuilt from, and those are checked by SHA-256 against what it commits.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiprov.core.digest import Digest
from aiprov.core.xet import ShardFile, parse_shard, xorb_chunks
from aiprov.errors import IntegrityError, InvalidInput, TooLarge, Unauthorized
from aiprov.ports import BlobStore, RegistryStore
from aiprov.records import LfsGrant, XetToken, XetXorb

_HASH = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
"""What `secrets.token_urlsafe(32)` makes: 43 URL-safe base64 characters."""

SHARD_MAX_BYTES = 8 * 2**20
"""The largest shard taken (a shard lists files and xorbs, ~100 bytes per 64 KiB of data: far more than needed)."""


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a Xet token is stored: the database never holds the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new Xet write token and when it expires."""

    token: str
    expires_at: datetime


class XetUploads:
    """Xet write tokens, xorbs and shards over the registry database and the blob store."""

    def __init__(
        self,
        db: RegistryStore,
        blobs: BlobStore,
        *,
        clock: Callable[[], datetime],
        token_ttl_s: float,
        ttl_s: float,
        max_blob_bytes: int,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self.token_ttl = timedelta(seconds=token_ttl_s)
        self.ttl = timedelta(seconds=ttl_s)
        self.max_blob_bytes = max_blob_bytes

    def issue(self, account: str, model: str) -> IssuedToken:
        """A new write token for `account` uploading into `model`. Expired tokens and xorbs are deleted here."""
        now = self.clock()
        token = secrets.token_urlsafe(32)
        expires = now + self.token_ttl
        with self.db.unit(write=True) as u:
            u.prune_xet(now)
            u.add_xet_token(XetToken(token_hash(token), account, model, expires), now)
        return IssuedToken(token, expires)

    def session(self, authorization: str | None) -> XetToken:
        """The live token an `Authorization: Bearer <token>` header carries. Raises Unauthorized."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a Xet request needs `Authorization: Bearer <xet token>`", hint=_TOKEN_HINT)
        if not _TOKEN.fullmatch(token.strip()):
            raise Unauthorized("not a Xet token of this hub", hint=_TOKEN_HINT)
        with self.db.unit() as u:
            found = u.xet_token(token_hash(token.strip()))
        if found is None:
            raise Unauthorized("not a Xet token of this hub", hint=_TOKEN_HINT)
        if found.expires_at <= self.clock():
            raise Unauthorized("this Xet token has expired", hint=_TOKEN_HINT)
        return found

    def put_xorb(self, session: XetToken, prefix: str, xorb: str, data: bytes) -> bool:
        """Keep the xorb `xorb` for the session's caller and model; whether it was new for them.

        Raises InvalidInput (a prefix other than `default`, a malformed hash, a body that is not a xorb).
        """
        if prefix != "default":
            raise InvalidInput(f"xorbs are uploaded under the prefix `default`, not {prefix[:40]!r}")
        _check_hash(xorb)
        xorb_chunks(data)  # refuses a truncated or undecodable xorb before anything is stored
        now = self.clock()
        with self.db.unit() as u:
            known = [x for x in u.xet_xorbs_of(session.account, session.model, xorb) if x.expires_at > now]
        if any(self.blobs.exists(x.sha256) for x in known):
            return False
        writer = self.blobs.writer()
        try:
            writer.write(data)
            digest, _ = writer.commit()
        except BaseException:
            writer.abort()
            raise
        record = XetXorb(session.account, session.model, xorb, digest, len(data), now + self.ttl)
        with self.db.unit(write=True) as u:
            u.add_xet_xorb(record, now)
        return True

    def put_shard(self, session: XetToken, data: bytes) -> list[tuple[Digest, int]]:
        """Rebuild, store and record as received every file the shard lists; their (sha256, size).

        Raises InvalidInput (not a shard; a term naming a xorb the caller did not send for this model, or chunks
        it does not have; a file whose bytes do not hash to the SHA-256 the shard declares), TooLarge.
        """
        if len(data) > SHARD_MAX_BYTES:
            raise TooLarge(f"a shard of {len(data)} bytes is over the limit of {SHARD_MAX_BYTES}")
        files = parse_shard(data)
        stored = [self._rebuild(session, index, f) for index, f in enumerate(files)]
        now = self.clock()
        with self.db.unit(write=True) as u:
            u.prune_lfs_grants(now)
            for digest, size in stored:
                grant = LfsGrant(None, session.account, session.model, digest, size, "uploaded", now + self.ttl)
                u.add_lfs_grant(grant, now)
        return stored

    def _rebuild(self, session: XetToken, index: int, file: ShardFile) -> tuple[Digest, int]:
        if file.size > self.max_blob_bytes:
            raise TooLarge(f"file {index} of the shard is {file.size} bytes, over the limit of {self.max_blob_bytes}")
        declared = None
        if file.sha256 is not None:
            declared = Digest(file.sha256)
        writer = self.blobs.writer(read_back=True)
        cached: tuple[str, list[bytes]] | None = None
        try:
            for term in file.terms:
                if cached is None or cached[0] != term.xorb:
                    cached = (term.xorb, self._chunks(session, term.xorb))
                chunks = cached[1]
                if term.end > len(chunks):
                    raise InvalidInput(
                        f"file {index} of the shard names chunks [{term.start}, {term.end}) of the xorb "
                        f"{term.xorb}, which has {len(chunks)}"
                    )
                piece = b"".join(chunks[term.start : term.end])
                if len(piece) != term.size:
                    raise InvalidInput(
                        f"file {index} of the shard says chunks [{term.start}, {term.end}) of the xorb {term.xorb} "
                        f"hold {term.size} bytes; they hold {len(piece)}"
                    )
                writer.write(piece)
            digest, _ = writer.commit(expected=declared)
        except IntegrityError:
            writer.abort()
            raise InvalidInput(
                f"file {index} of the shard does not hash to the SHA-256 {file.sha256} it declares; nothing was stored"
            ) from None
        except BaseException:
            writer.abort()
            raise
        return digest, file.size

    def _chunks(self, session: XetToken, xorb: str) -> list[bytes]:
        now = self.clock()
        with self.db.unit() as u:
            known = [x for x in u.xet_xorbs_of(session.account, session.model, xorb) if x.expires_at > now]
        for record in known:
            if self.blobs.exists(record.sha256):
                return xorb_chunks(b"".join(self.blobs.read(record.sha256)))
        raise InvalidInput(
            f"the shard names the xorb {xorb}, which {session.account} did not upload for {session.model} "
            "(or it expired)",
            hint="upload every xorb a shard names before the shard",
        )


_TOKEN_HINT = "huggingface_hub asks /api/models/{owner}/{name}/xet-write-token/{revision} for one"


def _check_hash(value: str) -> None:
    if not _HASH.fullmatch(value):
        raise InvalidInput(f"{value[:80]!r} is not a Xet hash (64 lowercase hex digits)")
