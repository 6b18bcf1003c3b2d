"""Users and API tokens in the registry database (`SqlRegistryUnit`'s accounts part): rows in, records out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from aiprov.adapters.db.schema import TokenRow, UserRow
from aiprov.adapters.db.times import utc
from aiprov.adapters.db.unit import UnitBase
from aiprov.errors import Conflict, NotFound
from aiprov.records import TokenGrant, TokenRecord, UserRecord


class AccountRows(UnitBase):
    """Users and their tokens; a token is stored only as the SHA-256 of its secret."""

    def user(self, name: str) -> UserRecord | None:
        """The user `name` (without its tokens), or None."""
        row = self.s.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
        return None if row is None else UserRecord(row.name, row.admin, utc(row.created_at), ())

    def users(self) -> list[UserRecord]:
        """Every user with its tokens, by name (tokens oldest first)."""
        by_user: dict[str, list[TokenRecord]] = {}
        for row, name in self._tokens(None):
            by_user.setdefault(name, []).append(_token(row, name))
        rows = self.s.scalars(select(UserRow).order_by(UserRow.name))
        return [UserRecord(r.name, r.admin, utc(r.created_at), tuple(by_user.get(r.name, ()))) for r in rows]

    def add_user(self, name: str, admin: bool, now: datetime) -> UserRecord:
        """Insert a user. Raises Conflict if the name is taken."""
        row = UserRow(name=name, admin=admin, created_at=now)
        self.s.add(row)
        try:
            self.s.flush()
        except SqlIntegrityError as e:
            raise Conflict(f"user {name} already exists") from e
        return UserRecord(name, admin, now, ())

    def add_token(
        self, user: str, token_id: str, token_hash: str, scopes: tuple[str, ...], now: datetime
    ) -> TokenRecord:
        """Record a token of `user` by the hash of its secret. Raises NotFound (no such user)."""
        owner = self.s.scalars(select(UserRow.id).where(UserRow.name == user)).one_or_none()
        if owner is None:
            raise NotFound(f"no user named {user}")
        row = TokenRow(token_id=token_id, user_id=owner, token_hash=token_hash, scopes=",".join(scopes), created_at=now)
        self.s.add(row)
        self.s.flush()
        return _token(row, user)

    def token(self, token_id: str) -> TokenRecord | None:
        found = self._tokens(token_id)
        return None if not found else _token(*found[0])

    def revoke_token(self, token_id: str, now: datetime) -> TokenRecord:
        """Mark the token revoked at `now` (kept if it already was). Raises NotFound."""
        found = self._tokens(token_id)
        if not found:
            raise NotFound(f"no token with id {token_id!r}")
        row, user = found[0]
        if row.revoked_at is None:
            row.revoked_at = now
            self.s.flush()
        return _token(row, user)

    def token_grant(self, token_hash: str) -> TokenGrant | None:
        """What the token with this hash unlocks, in one indexed query; None if no token has it."""
        query = (
            select(UserRow.name, UserRow.admin, TokenRow.token_id, TokenRow.scopes, TokenRow.revoked_at)
            .join(UserRow, UserRow.id == TokenRow.user_id)
            .where(TokenRow.token_hash == token_hash)
        )
        found = self.s.execute(query).one_or_none()
        if found is None:
            return None
        name, admin, token_id, scopes, revoked_at = found
        return TokenGrant(name, bool(admin), token_id, tuple(scopes.split(",")), revoked_at is not None)

    def _tokens(self, token_id: str | None) -> list[tuple[TokenRow, str]]:
        """Tokens with their user's name, oldest first: all of them, or the one with `token_id`."""
        query = select(TokenRow, UserRow.name).join(UserRow, UserRow.id == TokenRow.user_id).order_by(TokenRow.id)
        if token_id is not None:
            query = query.where(TokenRow.token_id == token_id)
        return [(row[0], row[1]) for row in self.s.execute(query)]


def _token(row: TokenRow, user: str) -> TokenRecord:
    return TokenRecord(
        row.token_id,
        user,
        tuple(row.scopes.split(",")),
        utc(row.created_at),
        None if row.revoked_at is None else utc(row.revoked_at),
    )
