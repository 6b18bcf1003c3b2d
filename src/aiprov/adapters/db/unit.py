"""What every part of `SqlRegistryUnit` shares: the transaction's session and connection."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.orm import Session

R = TypeVar("R")


class UnitBase:
    """One transaction: its ORM session `s`, whether it may write, and how many log entries it appended."""

    s: Session
    write: bool
    appended: int

    @property
    def conn(self) -> Connection:
        """The transaction's connection, for the SQL of `aiprov.adapters.db.log`."""
        return self.s.connection()


def row_of(handle: object, kind: type[R]) -> R:
    """The row behind a handle a unit handed out (services pass back only what `resolve` and friends returned)."""
    if not isinstance(handle, kind):
        raise TypeError(f"expected a {kind.__name__} handed out by the registry, not {type(handle).__name__}")
    return handle
