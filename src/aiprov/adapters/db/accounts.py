"""Users and API tokens in the registry database, read and written inside a `RegistryUnit`'s session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.orm import Session

from aiprov.adapters.db.schema import TokenRow, UserRow
from aiprov.errors import Conflict


def user(s: Session, name: str) -> UserRow | None:
    return s.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()


def users(s: Session) -> list[UserRow]:
    return list(s.scalars(select(UserRow).order_by(UserRow.name)))


def add_user(s: Session, name: str, admin: bool, now: datetime) -> UserRow:
    """Insert a user. Raises Conflict if the name is taken."""
    row = UserRow(name=name, admin=admin, created_at=now)
    s.add(row)
    try:
        s.flush()
    except SqlIntegrityError as e:
        raise Conflict(f"user {name} already exists") from e
    return row


def add_token(s: Session, owner: UserRow, token_id: str, token_hash: str, scopes: str, now: datetime) -> TokenRow:
    row = TokenRow(token_id=token_id, user_id=owner.id, token_hash=token_hash, scopes=scopes, created_at=now)
    s.add(row)
    s.flush()
    return row


def tokens(s: Session) -> list[tuple[TokenRow, str]]:
    """Every token with its user's name, oldest first."""
    query = select(TokenRow, UserRow.name).join(UserRow, UserRow.id == TokenRow.user_id).order_by(TokenRow.id)
    return [(row[0], row[1]) for row in s.execute(query)]


def token(s: Session, token_id: str) -> tuple[TokenRow, str] | None:
    query = select(TokenRow, UserRow.name).join(UserRow, UserRow.id == TokenRow.user_id)
    found = s.execute(query.where(TokenRow.token_id == token_id)).one_or_none()
    return None if found is None else (found[0], found[1])


def by_hash(s: Session, token_hash: str) -> Any | None:
    """(user name, admin, token id, scopes, revoked_at) of the token with this hash; None if unknown.

    One indexed query.
    """
    query = (
        select(UserRow.name, UserRow.admin, TokenRow.token_id, TokenRow.scopes, TokenRow.revoked_at)
        .join(UserRow, UserRow.id == TokenRow.user_id)
        .where(TokenRow.token_hash == token_hash)
    )
    return s.execute(query).one_or_none()
