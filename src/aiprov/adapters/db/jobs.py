"""Jobs in the database: aiprov's view of each queued evaluation or reproduction (the queue is procrastinate's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from aiprov.adapters.db.schema import JobRow
from aiprov.adapters.db.times import utc
from aiprov.adapters.db.unit import UnitBase
from aiprov.errors import NotFound
from aiprov.records import JobRecord

ACTIVE = ("queued", "running")


class JobRows(UnitBase):
    """The job part of `SqlRegistryUnit` (one transaction's session, `s`)."""

    def add_job(self, kind: str, key: str, request: dict[str, Any], actor: str, now: datetime) -> JobRecord:
        """Record a queued job of `kind` doing the work `key` names; its id is the database's."""
        row = JobRow(kind=kind, key=key, state="queued", request=request, actor=actor, attempts=0, created_at=now)
        self.s.add(row)
        self.s.flush()
        return _job(row)

    def set_job_queue_id(self, job_id: int, queue_id: int) -> None:
        """Note the id the queue gave the job (procrastinate's), for an operator reading both."""
        self._row(job_id).queue_id = queue_id
        self.s.flush()

    def job(self, job_id: int) -> JobRecord:
        """The job with id `job_id`. Raises NotFound."""
        return _job(self._row(job_id))

    def active_job(self, key: str) -> JobRecord | None:
        """The queued or running job doing the work `key` names, if any (the oldest)."""
        query = select(JobRow).where(JobRow.key == key, JobRow.state.in_(ACTIVE)).order_by(JobRow.id).limit(1)
        row = self.s.scalars(query).one_or_none()
        return None if row is None else _job(row)

    def start_job(self, job_id: int, now: datetime) -> JobRecord:
        """Mark the job running (one more attempt). Raises NotFound."""
        row = self._row(job_id)
        row.state, row.attempts, row.started_at = "running", row.attempts + 1, now
        self.s.flush()
        return _job(row)

    def requeue_job(self, job_id: int) -> None:
        """Put a running job back to queued: its attempt failed and the queue will retry it."""
        self._row(job_id).state = "queued"
        self.s.flush()

    def finish_job(
        self, job_id: int, now: datetime, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None
    ) -> JobRecord:
        """Mark the job succeeded with `result`, or failed with the problem body `error`. Raises NotFound."""
        row = self._row(job_id)
        row.state = "failed" if error is not None else "succeeded"
        row.result, row.error, row.finished_at = result, error, now
        self.s.flush()
        return _job(row)

    def driver_connection(self) -> Any:
        """The transaction's own DB-API connection (psycopg's), for a queue that enqueues inside it."""
        return self.s.connection().connection.driver_connection

    def _row(self, job_id: int) -> JobRow:
        row = self.s.get(JobRow, job_id)
        if row is None:
            raise NotFound(f"no job {job_id}")
        return row


def _job(r: JobRow) -> JobRecord:
    return JobRecord(
        id=r.id,
        kind=r.kind,
        state=r.state,
        request=dict(r.request),
        actor=r.actor,
        attempts=r.attempts,
        created_at=utc(r.created_at),
        started_at=None if r.started_at is None else utc(r.started_at),
        finished_at=None if r.finished_at is None else utc(r.finished_at),
        result=None if r.result is None else dict(r.result),
        error=None if r.error is None else dict(r.error),
    )
