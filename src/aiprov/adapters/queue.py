"""The job queue: procrastinate on the hub's own PostgreSQL database.

A job is enqueued on the connection of the registry transaction that records it (procrastinate's `connection=`
option runs its INSERT there), so the queue and aiprov's `jobs` table commit or roll back together: no job is
queued that aiprov does not know, and none that aiprov knows is lost.

Workers (`work`) heartbeat into procrastinate's `procrastinate_workers`; a job whose worker stopped beating for
`stall_timeout_s` (killed, its machine gone) is put back in the queue by any other worker, and runs again there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiprov.errors import BackendError, InvalidInput
from aiprov.extras import missing
from aiprov.records import JobRecord

if TYPE_CHECKING:
    import procrastinate

    from aiprov.ports import RegistryUnit

log = logging.getLogger(__name__)

TASK = "aiprov.job"
"""The one procrastinate task: run the aiprov job whose id it carries."""

SCHEMA_LOCK = 0x616970726F76  # "aiprov": the advisory lock two workers applying the schema at once take


def conninfo(database_url: str) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL. Raises InvalidInput for another database."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise InvalidInput(
            f"the job queue needs PostgreSQL, not {url.get_backend_name()}",
            hint="set AIPROV_DATABASE_URL=postgresql://…, or unset AIPROV_JOBS to run jobs in process",
        )
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class _Transient(Exception):
    """An attempt that failed for a reason that may pass (the database, the blob store): retried by the queue."""


class _Failed(Exception):
    """The job ended failed (its problem is in aiprov's `jobs` row): procrastinate records it failed, not retried."""


@dataclass
class WorkerTally:
    """What one `aiprov worker` run did."""

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    recovered: list[int] = field(default_factory=list)
    """Queue ids of stalled jobs (their worker stopped beating) this worker put back in the queue."""

    def to_json(self) -> dict[str, Any]:
        return {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "recovered": self.recovered,
        }


class ProcrastinateQueue:
    """The `ports.JobQueue` of a PostgreSQL hub, and the worker loop that drains it.

    `runner(job_id, final)` runs one aiprov job (`JobService.run`); `attempts` is how many times a job is tried
    in all, `retry_wait_s` the pause before each retry.
    """

    def __init__(
        self,
        database_url: str,
        runner: Callable[[int, bool], JobRecord],
        *,
        attempts: int,
        retry_wait_s: int,
    ) -> None:
        try:
            import procrastinate
        except ImportError as e:
            raise missing("AIPROV_JOBS=queue", e, "procrastinate") from e
        self.conninfo = conninfo(database_url)
        self.runner = runner
        self.attempts = attempts
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=self.conninfo))
        retry = procrastinate.RetryStrategy(max_attempts=attempts - 1, wait=retry_wait_s, retry_exceptions=[_Transient])
        self.tally = WorkerTally()
        self._counting = threading.Lock()
        self.on_started: Callable[[], None] | None = None
        """Called once the worker listens for signals and reached the database, before it takes a job."""
        self.on_finished: Callable[[JobRecord], None] | None = None
        """Called with each job this worker finished (succeeded or failed)."""
        self.task: procrastinate.tasks.Task[Any, Any, Any] = self.app.task(name=TASK, pass_context=True, retry=retry)(
            self._run
        )

    def defer(self, unit: RegistryUnit, job_id: int, lock: str) -> int:
        """Enqueue job `job_id` in `unit`'s own transaction; procrastinate's job id. Raises BackendError."""
        from procrastinate import exceptions

        try:
            return int(self.task.configure(lock=lock, connection=unit.driver_connection()).defer(job=job_id))
        except exceptions.ProcrastinateException as e:
            cause = e.__cause__ or e
            raise BackendError(
                f"cannot queue job {job_id}: {cause}", hint="run `aiprov init` (it creates the queue's tables)"
            ) from e

    def _run(self, context: procrastinate.JobContext, job: int) -> None:
        attempt = context.job.attempts  # 0 the first time; a stalled job put back counts one more
        try:
            record = self.runner(job, attempt + 1 >= self.attempts)
        except Exception as e:
            with self._counting:
                self.tally.retried += 1
            raise _Transient(f"job {job}: {type(e).__name__}: {e}") from e
        with self._counting:  # jobs run on threads of their own
            if record.state == "failed":
                self.tally.failed += 1
            else:
                self.tally.succeeded += 1
        if self.on_finished is not None:
            self.on_finished(record)
        if record.state == "failed":
            raise _Failed(f"job {job} failed: {(record.error or {}).get('detail')}")

    def ensure_schema(self) -> bool:
        """Create procrastinate's tables and functions unless they exist; whether it created them.

        Raises BackendError when the database cannot be reached.
        """
        import psycopg
        from procrastinate.schema import SchemaManager

        try:
            with psycopg.connect(self.conninfo) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
                if row is not None and row[0] is not None:
                    return False
                conn.execute(SchemaManager.get_schema())
                return True
        except psycopg.Error as e:
            raise BackendError(f"cannot create the job queue's tables: {e}") from e

    def work(self, *, concurrency: int, stall_timeout_s: float, name: str) -> WorkerTally:
        """Run jobs, `concurrency` at a time, until SIGTERM or SIGINT (running jobs finish first).

        Raises BackendError when the database cannot be reached.
        """
        try:
            asyncio.run(self._work(concurrency, stall_timeout_s, name))
        except OSError as e:
            raise BackendError(f"the job queue's database failed: {e}") from e
        return self.tally

    async def _work(self, concurrency: int, stall_timeout_s: float, name: str) -> None:
        from procrastinate import exceptions
        from procrastinate.worker import Worker

        worker = Worker(
            self.app,
            name=name,
            concurrency=concurrency,
            update_heartbeat_interval=stall_timeout_s / 4,
            stalled_worker_timeout=stall_timeout_s,
            fetch_job_polling_interval=min(5.0, stall_timeout_s / 2),
            install_signal_handlers=False,  # ours, installed before the pool opens: no signal is lost at start
        )
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()

        def stop() -> None:  # the first signal: take no more jobs, let running ones finish; a second one kills
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            stopping.set()
            worker.stop()  # type: ignore[no-untyped-call]  # procrastinate leaves it unannotated

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        try:
            async with self.app.open_async():
                if self.on_started is not None:
                    self.on_started()
                recovery = asyncio.create_task(self._recover(stall_timeout_s))
                try:
                    if not stopping.is_set():  # no await between this test and run(), which resets a stop
                        await worker.run()  # type: ignore[no-untyped-call]
                finally:
                    recovery.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await recovery
        except exceptions.ConnectorException as e:
            raise BackendError(f"the job queue's database failed: {e.__cause__ or e}") from e
        finally:
            if not stopping.is_set():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    async def _recover(self, stall_timeout_s: float) -> None:
        """Every half stall timeout, put back in the queue the running jobs of workers that stopped beating."""
        from procrastinate import exceptions

        manager = self.app.job_manager
        while True:
            await asyncio.sleep(stall_timeout_s / 2)
            try:
                stalled = await manager.get_stalled_jobs(task_name=TASK, seconds_since_heartbeat=stall_timeout_s)
                for job in stalled:
                    await manager.retry_job(job)
                    assert job.id is not None
                    self.tally.recovered.append(job.id)
                    log.warning("job %s of a stalled worker put back in the queue", job.id)
            except exceptions.ConnectorException as e:  # another worker recovered it first, or the database blinked
                log.warning("stalled-job recovery: %s", e.__cause__ or e)
