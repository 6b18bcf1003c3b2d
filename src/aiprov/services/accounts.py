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

from aiprov.core.names import ModelName
from aiprov.errors import InvalidInput, NotFound, Unauthorized
from aiprov.ports import RegistryStore, RegistryUnit
from aiprov.records import TokenRecord, UserRecord

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

    def __init__(self, db: RegistryStore, *, clock: Callable[[], datetime], actor: str, cache_s: float = 5.0) -> None:
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
            u.add_user(name, admin, now)
            made = self._make_token(u, name, granted, admin)
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
            user = u.user(name)
            if user is None:
                raise NotFound(f"no user named {name}", hint="`aiprov user ls` lists them")
            granted = check_scopes(scopes, user.admin)
            made = self._make_token(u, name, granted, user.admin)
            u.add_event(
                actor=self.actor if actor is None else actor,
                action="token-added",
                subject=f"token:{made.token_id}",
                model=None,
                details={"user": name, "scopes": list(granted)},
                now=now,
            )
        return made

    def _make_token(self, u: RegistryUnit, user: str, scopes: tuple[str, ...], admin: bool) -> NewToken:
        token_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        u.add_token(user, token_id, hash_token(token), scopes, self.clock())
        return NewToken(user, token_id, token, scopes, admin and "admin" in scopes)

    def revoke(self, token_id: str, *, of_user: str | None = None, actor: str | None = None) -> TokenRecord:
        """Revoke a token by its id; the next request with it is refused. Revoking twice is harmless.

        With `of_user`, only a token of that user may be revoked (another's is NotFound, not a hint it exists).
        Raises NotFound, BackendError.
        """
        now = self.clock()
        with self.db.unit(write=True) as u:
            found = u.token(token_id.strip())
            if found is None or (of_user is not None and found.user != of_user):
                raise NotFound(f"no token with id {token_id!r}", hint="`aiprov user ls` lists the tokens")
            self._forget(found.token_id)
            if found.revoked_at is not None:
                return found
            u.add_event(
                actor=self.actor if actor is None else actor,
                action="token-revoked",
                subject=f"token:{found.token_id}",
                model=None,
                details={"user": found.user},
                now=now,
            )
            return u.revoke_token(found.token_id, now)

    def users(self) -> builtins.list[UserRecord]:
        """Every user with its tokens (ids and scopes, never secrets), by name."""
        with self.db.unit() as u:
            return u.users()

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
            found = u.token_grant(hashed)
        if found is None:
            raise Unauthorized("the API token is not known to this hub")
        if found.revoked:
            raise Unauthorized("the API token was revoked")
        principal = Principal(found.user, found.scopes, found.admin and "admin" in found.scopes)
        if self.cache_s > 0:
            if len(self._checked) >= CACHE_SIZE:
                self._checked.clear()
            self._checked[hashed] = (time.monotonic() + self.cache_s, found.token_id, principal)
        return principal

    def _forget(self, token_id: str) -> None:
        for hashed, (_, cached_id, _) in list(self._checked.items()):
            if cached_id == token_id:
                self._checked.pop(hashed, None)
