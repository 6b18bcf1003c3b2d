"""Times read back from the database."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(t: datetime) -> datetime:
    """A datetime read back from the database, as UTC (SQLite returns naive ones)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
