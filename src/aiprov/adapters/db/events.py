"""Events in the database: each one a log entry, appended in the same transaction as the state it records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select

from aiprov.adapters.db import log
from aiprov.adapters.db.schema import EventRow
from aiprov.adapters.db.times import utc
from aiprov.adapters.db.unit import UnitBase
from aiprov.core.events import Event
from aiprov.errors import NotFound
from aiprov.ports import ModelHandle, VersionHandle
from aiprov.records import EventRecord

_EVENTS = cast(Table, EventRow.__table__)


def _same(value: Any) -> Any:
    return value


def insert_events(conn: log.DriverSql, events: Sequence[Event]) -> int:
    """Append `events` to the log and the events table in `conn`'s write transaction; the first one's leaf index.

    Raises InvalidInput for an empty batch or an event whose entry exceeds the log's entry limit.
    """
    encoded = [e.encoded() for e in events]
    first = log.append(conn, [entry for entry, _ in encoded])
    # Through the driver, as the log is: a usage batch writes hundreds of rows, and Core's per-row parameter
    # processing cost more than the rest of the insert. The time column's own bind processor keeps the stored
    # form the one the ORM writes and reads (given UTC: SQLite's drops the offset). The details are stored
    # as the entry holds them (`Event.encoded`).
    to_time = _EVENTS.c.time.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) or _same
    conn.exec_driver_sql(
        f"INSERT INTO events (time, actor, action, subject, model, details, leaf_index) "
        f"VALUES ({log.placeholders(conn, 7)})",
        [
            (
                to_time(e.time.astimezone(UTC)),
                e.actor,
                e.action,
                e.subject,
                e.model,
                details.decode(),
                first + i,
            )
            for i, (e, (_, details)) in enumerate(zip(events, encoded, strict=True))
        ],
    )
    return first


class EventRows(UnitBase):
    """The event part of `SqlRegistryUnit`: `write` units append, counting what they appended in `appended`."""

    def registration_event(self, model: ModelHandle, version: VersionHandle) -> tuple[int, Event]:
        """The event that registered `version` (its first push under this model), with its leaf index."""
        row = self.s.scalars(
            select(EventRow)
            .where(EventRow.model == model.full_name, EventRow.subject == version.digest, EventRow.action == "push")
            .order_by(EventRow.leaf_index)
            .limit(1)
        ).one_or_none()
        if row is None:
            raise NotFound(f"no registration event for {model.full_name}@{version.number} in the log")
        return row.leaf_index, Event(utc(row.time), row.actor, row.action, row.subject, row.model, dict(row.details))

    def event_leaves(self, model: str, actions: Sequence[str]) -> list[int]:
        """The log indices of the model's events with one of `actions`, in log order."""
        query = (
            select(EventRow.leaf_index)
            .where(EventRow.model == model, EventRow.action.in_(actions))
            .order_by(EventRow.leaf_index)
        )
        return list(self.s.scalars(query))

    def event_at(self, leaf_index: int) -> EventRecord | None:
        """The event at log index `leaf_index`, None if the log has none there."""
        row = self.s.scalars(select(EventRow).where(EventRow.leaf_index == leaf_index)).one_or_none()
        return None if row is None else _event_record(row)

    def events_in_log_order(self, actions: Sequence[str], start: int = 0) -> list[EventRecord]:
        """Every event with one of `actions` (from log index `start` on), in log order (what reputation reads)."""
        query = select(EventRow).where(EventRow.action.in_(actions)).order_by(EventRow.leaf_index)
        if start:
            query = query.where(EventRow.leaf_index >= start)
        return [_event_record(r) for r in self.s.scalars(query)]

    def add_event(
        self, *, actor: str, action: str, subject: str, model: str | None, details: dict[str, Any], now: datetime
    ) -> int:
        """Record an event; its canonical JSON becomes the next log leaf, in this same transaction.

        Returns the event's leaf index.
        """
        event = Event(time=now, actor=actor, action=action, subject=subject, model=model, details=details)
        return self.add_events([event])

    def add_events(self, events: Sequence[Event]) -> int:
        """Record `events` in order with one log append and one insert; return the first one's leaf index.

        A batch costs about what one event costs (usage events are recorded this way). Raises InvalidInput for an
        empty batch or an event whose entry exceeds the log's entry limit.
        """
        assert self.write, "events are appended only in write units (see SqlRegistry.unit)"
        first = insert_events(self.conn, events)
        self.appended += len(events)
        return first

    def events(
        self,
        *,
        model: str | None = None,
        subject: str | None = None,
        actor: str | None = None,
        actions: Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[EventRecord]:
        """Events matching every given filter (`actions`: any of them), newest first."""
        query = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
        if actions is not None:
            query = query.where(EventRow.action.in_(actions))
        if model is not None:
            query = query.where(EventRow.model == model)
        if subject is not None:
            query = query.where(EventRow.subject == subject)
        if actor is not None:
            query = query.where(EventRow.actor == actor)
        return [_event_record(r) for r in self.s.scalars(query)]


def _event_record(r: EventRow) -> EventRecord:
    return EventRecord(
        id=r.id,
        time=utc(r.time),
        actor=r.actor,
        action=r.action,
        subject=r.subject,
        model=r.model,
        details=dict(r.details),
        leaf_index=r.leaf_index,
    )
