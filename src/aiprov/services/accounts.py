"""API accounts: users, their tokens and scopes, and authenticating a token.

A token is `aiprov_<id>_<secret>`; it is shown once, when made, and stored only as its SHA-256 (the secret has
256 random bits, so a hash is enough: nothing to brute-force). `<id>` is public, to list and revoke a token by.
Making a user and revoking a token are events in the transparency log.

A checked token is remembered for `cache_s` seconds (the setting `token_cache_s`, 5 by default): a request whose
token was checked recently costs one SHA-256 of the token and a dict lookup, no database round trip. So a
revocation is a row update that every server process sees within `cache_s` seconds; the process that revokes
forgets the token at once. Unknown and revoked tokens are not remembered: each such request asks the database.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiprov.adapters.db import accounts as db
from aiprov.adapters.db.registry import SqlRegistry
from aiprov.adapters.db.times import utc
from aiprov.core.names import ModelName
from aiprov.errors import InvalidInput, NotFound, Unauthorized
from aiprov.records import iso

SCOPES = ("read", "write", "admin")
TOKEN_PREFIX = "aiprov_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for."""

    user: str
    scopes: tuple[str, ...]
    admin: bool
    """The user is an admin and the token carries the admin scope."""


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just made: `token` is the only time its secret is seen."""

    user: str
    token_id: str
    token: str
    scopes: tuple[str, ...]
    admin: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "token": self.token,
            "token_id": self.token_id,
            "scopes": list(self.scopes),
            "admin": self.admin,
        }


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    user: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "user": self.user,
            "scopes": list(self.scopes),
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    admin: bool
    created_at: datetime
    tokens: tuple[TokenRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "admin": self.admin,
            "created_at": iso(self.created_at),
            "tokens": [t.to_json() for t in self.tokens],
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Iterable[str], admin: bool) -> tuple[str, ...]:
    """Validate scopes (default: read and write, plus admin for an admin); `read` is always included.

    Raises InvalidInput for an unknown scope or the admin scope for a user who is not an admin.
    """
    wanted = set(scopes) or {"read", "write", *(("admin",) if admin else ())}
    unknown = wanted - set(SCOPES)
    if unknown:
        shown = ", ".join(repr(s[:40]) for s in sorted(unknown)[:5])  # repr: no control character reaches a terminal
        raise InvalidInput(f"unknown scope(s) {shown}", hint=f"use {', '.join(SCOPES)}")
    if "admin" in wanted and not admin:
        raise InvalidInput("only an admin user's token may have the admin scope", hint="add the user with --admin")
    return tuple(s for s in SCOPES if s in wanted | {"read"})


CACHE_SIZE = 10_000
"""Tokens remembered at most; past it the cache starts over (a hub with more live tokens asks the database more)."""


class AccountService:
    """Users and tokens. Each change is logged as the work of `actor` (an API caller), by default the hub's own."""

    def __init__(self, db: SqlRegistry, *, clock: Callable[[], datetime], actor: str, cache_s: float = 5.0) -> None:
        self.db = db
        self.clock = clock
        self.actor = actor
        self.cache_s = cache_s
        self._checked: dict[str, tuple[float, str, Principal]] = {}
        """Token hash -> (monotonic expiry, token id, principal); dict operations are atomic, so no lock."""

    def add_user(
        self, name: str, *, admin: bool = False, scopes: Iterable[str] = (), actor: str | None = None
    ) -> NewToken:
        """Create user `name` (a valid owner name: it is the user's namespace) with a first token.

        Raises InvalidInput (bad name or scopes), Conflict (the user exists), BackendError.
        """
        ModelName.parse(f"{name}/x")  # the user name is the namespace owner, with the same rules
        granted = check_scopes(scopes, admin)
        now = self.clock()
        with self.db.unit(write=True) as u:
            user = db.add_user(u.s, name, admin, now)
            made = self._make_token(u.s, user, granted, admin)
            u.add_event(
                actor=self.actor if actor is None else actor,
                action="user-added",
                subject=f"user:{name}",
                model=None,
                details={"admin": admin, "token_id": made.token_id, "scopes": list(granted)},
                now=now,
            )
        return made

    def add_token(self, name: str, scopes: Iterable[str] = (), *, actor: str | None = None) -> NewToken:
        """Make another token for user `name`. Raises NotFound, InvalidInput (scopes), BackendError."""
        now = self.clock()
        with self.db.unit(write=True) as u:
            user = db.user(u.s, name)
            if user is None:
                raise NotFound(f"no user named {name}", hint="`aiprov user ls` lists them")
            granted = check_scopes(scopes, user.admin)
            made = self._make_token(u.s, user, granted, user.admin)
            u.add_event(
                actor=self.actor if actor is None else actor,
                action="token-added",
                subject=f"token:{made.token_id}",
                model=None,
                details={"user": name, "scopes": list(granted)},
                now=now,
            )
        return made

    def _make_token(self, s: Any, user: Any, scopes: tuple[str, ...], admin: bool) -> NewToken:
        token_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        db.add_token(s, user, token_id, hash_token(token), ",".join(scopes), self.clock())
        return NewToken(user.name, token_id, token, scopes, admin and "admin" in scopes)

    def revoke(self, token_id: str, *, of_user: str | None = None, actor: str | None = None) -> TokenRecord:
        """Revoke a token by its id; the next request with it is refused. Revoking twice is harmless.

        With `of_user`, only a token of that user may be revoked (another's is NotFound, not a hint it exists).
        Raises NotFound, BackendError.
        """
        now = self.clock()
        with self.db.unit(write=True) as u:
            found = db.token(u.s, token_id.strip())
            if found is None or (of_user is not None and found[1] != of_user):
                raise NotFound(f"no token with id {token_id!r}", hint="`aiprov user ls` lists the tokens")
            row, user = found
            self._forget(row.token_id)
            if row.revoked_at is None:
                row.revoked_at = now
                u.add_event(
                    actor=self.actor if actor is None else actor,
                    action="token-revoked",
                    subject=f"token:{row.token_id}",
                    model=None,
                    details={"user": user},
                    now=now,
                )
            return _token_record(row, user)

    def users(self) -> builtins.list[UserRecord]:
        """Every user with its tokens (ids and scopes, never secrets), by name."""
        with self.db.unit() as u:
            by_user: dict[str, builtins.list[TokenRecord]] = {}
            for row, name in db.tokens(u.s):
                by_user.setdefault(name, []).append(_token_record(row, name))
            return [
                UserRecord(r.name, r.admin, utc(r.created_at), tuple(by_user.get(r.name, ()))) for r in db.users(u.s)
            ]

    def cached(self, token: str) -> Principal | None:
        """Who `token` speaks for if it was checked within `cache_s` seconds, else None. Never touches the database."""
        hit = self._checked.get(hash_token(token))
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[2]

    def authenticate(self, token: str) -> Principal:
        """Who `token` speaks for, from the cache when fresh.

        Raises Unauthorized for an unknown, malformed or revoked token.
        """
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise Unauthorized("the API token is malformed", hint="tokens start with `aiprov_`")
        hashed = hash_token(token)
        hit = self._checked.get(hashed)
        if hit is not None and hit[0] > time.monotonic():
            return hit[2]
        with self.db.unit() as u:
            found = db.by_hash(u.s, hashed)
        if found is None:
            raise Unauthorized("the API token is not known to this hub")
        if found.revoked_at is not None:
            raise Unauthorized("the API token was revoked")
        scopes = tuple(found.scopes.split(","))
        principal = Principal(found.name, scopes, bool(found.admin) and "admin" in scopes)
        if self.cache_s > 0:
            if len(self._checked) >= CACHE_SIZE:
                self._checked.clear()
            self._checked[hashed] = (time.monotonic() + self.cache_s, found.token_id, principal)
        return principal

    def _forget(self, token_id: str) -> None:
        for hashed, (_, cached_id, _) in list(self._checked.items()):
            if cached_id == token_id:
                self._checked.pop(hashed, None)


def _token_record(row: Any, user: str) -> TokenRecord:
    return TokenRecord(
        row.token_id,
        user,
        tuple(row.scopes.split(",")),
        utc(row.created_at),
        None if row.revoked_at is None else utc(row.revoked_at),
    )
