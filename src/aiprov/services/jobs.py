"""Evaluations and reproductions as jobs: asked now, run by `aiprov worker` on any machine with the sandbox.

With a queue (AIPROV_JOBS=queue, on PostgreSQL), `evaluate` and `reproduce` record a job and enqueue it in the
same transaction, and answer the job; a worker then runs it through `EvaluationService`, which records and logs
the result exactly as a synchronous evaluation does. Without a queue (the embedded default) they run at once and
answer the result, as they always did.

The work a job does is named by (model version digest, dataset digest, split): one job per name runs at a time
(the queue's lock), a second request while one is queued or running answers that job, and an evaluation whose
identical result is already recorded is answered with that result, not run again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from aiprov.core.canonical import canonical_json
from aiprov.core.names import Ref
from aiprov.errors import AiprovError, BackendError
from aiprov.ports import JobQueue, RegistryStore, RegistryUnit
from aiprov.records import EvaluationRecord, JobRecord, Reproduction
from aiprov.services.evaluation import EvaluationService

log = logging.getLogger(__name__)

EVALUATE = "evaluate"
REPRODUCE = "reproduce"


def work_key(digest: str, dataset_digest: str, split: dict[str, Any]) -> str:
    """The name of the work of evaluating version `digest` on data `dataset_digest` split by `split`."""
    split_id = hashlib.sha256(canonical_json(split)).hexdigest()[:16]
    return f"{digest}:{dataset_digest}:{split_id}"


def identical(
    evaluations: Iterable[EvaluationRecord], dataset_digest: str, split: dict[str, Any]
) -> EvaluationRecord | None:
    """The first of `evaluations` (of one version) on the same data and split, if any."""
    return next((e for e in evaluations if e.dataset_digest == dataset_digest and e.split == split), None)


def problem_of(error: AiprovError) -> dict[str, Any]:
    """The problem body a failed job reports: what the API would have answered had it run the job itself."""
    return {**error.problem(), "status": error.http_status}


class JobService:
    def __init__(
        self,
        db: RegistryStore,
        evaluation: EvaluationService,
        queue: JobQueue | None,
        *,
        clock: Callable[[], datetime],
        actor: str,
    ) -> None:
        self.db = db
        self.evaluation = evaluation
        self.queue = queue
        self.clock = clock
        self.actor = actor

    @property
    def queued(self) -> bool:
        """Whether evaluations go to the queue (else they run in this process)."""
        return self.queue is not None

    def evaluate(
        self, ref: str, *, benchmark: str | None = None, dataset: str | None = None, actor: str | None = None
    ) -> EvaluationRecord | JobRecord:
        """Evaluate version `ref` (as `EvaluationService.evaluate`): the record at once without a queue, else a job.

        The job is queued, or the one already doing the same work, or (state succeeded, `reused`) answered by an
        identical finished evaluation. Raises InvalidInput, NotFound, BackendError before anything is queued.
        """
        actor = self.actor if actor is None else actor
        if self.queue is None:
            return self.evaluation.evaluate(ref, benchmark=benchmark, dataset=dataset, actor=actor)
        data = self.evaluation.test_set(benchmark, dataset)
        now = self.clock()
        with self.db.unit(write=True) as u:
            model, version = u.resolve(Ref.parse(ref))
            record = u.version_record(model, version)
            work = work_key(str(record.manifest.digest), data.digest, data.split)
            request = {
                "ref": f"{record.full_name}@{record.number}",
                "digest": str(record.manifest.digest),
                "benchmark": benchmark,
                "dataset": dataset,
                "dataset_digest": data.digest,
                "split": data.split,
            }
            found = identical(u.evaluations_of(model, version), data.digest, data.split)
            if found is not None:
                job = u.add_job(EVALUATE, f"{EVALUATE}:{work}", request, actor, now)
                return u.finish_job(job.id, now, result={"evaluation": found.to_json(), "reused": True})
            return self._enqueue(u, EVALUATE, work, request, actor, now)

    def reproduce(self, evaluation_id: int, *, actor: str | None = None) -> Reproduction | JobRecord:
        """Re-run evaluation `evaluation_id` (as `EvaluationService.reproduce`): at once without a queue, else a job.

        `actor` is who asked (by default the hub's own actor). Raises NotFound before anything is queued.
        """
        if self.queue is None:
            return self.evaluation.reproduce(evaluation_id)
        now = self.clock()
        with self.db.unit(write=True) as u:
            original = u.evaluation(evaluation_id)
            work = work_key(original.digest, original.dataset_digest, original.split)
            request = {"evaluation_id": original.id, "ref": f"{original.model}@{original.version}"}
            return self._enqueue(u, REPRODUCE, work, request, self.actor if actor is None else actor, now)

    def _enqueue(
        self, u: RegistryUnit, kind: str, work: str, request: dict[str, Any], actor: str, now: datetime
    ) -> JobRecord:
        assert self.queue is not None
        # write units run one at a time, so nobody queues the same work between this read and the insert
        active = u.active_job(f"{kind}:{work}")
        if active is not None:
            return active
        job = u.add_job(kind, f"{kind}:{work}", request, actor, now)
        u.set_job_queue_id(job.id, self.queue.defer(u, job.id, lock=work))
        return u.job(job.id)

    def get(self, job_id: int) -> JobRecord:
        """The job with id `job_id`. Raises NotFound."""
        with self.db.unit() as u:
            return u.job(job_id)

    def run(self, job_id: int, *, final: bool) -> JobRecord:
        """Run job `job_id` (a worker's part); return it finished, or raise to have the queue try it again.

        An AiprovError of the request itself (bad data, a model that raises or is refused, …) fails the job with
        its problem body at once. Anything else (a database or blob store that is down, a crash) is raised for a
        retry, unless this is the `final` attempt, which fails the job with a BackendError problem.
        """
        with self.db.unit(write=True) as u:
            job = u.job(job_id)
            if job.finished:
                return job
            job = u.start_job(job_id, self.clock())
        try:
            result = self._execute(job)
        except AiprovError as e:
            if isinstance(e, BackendError) and not final:
                self._requeue(job_id)
                raise
            return self._finish(job_id, error=problem_of(e))
        except Exception as e:
            log.exception("job %s (%s) failed", job_id, job.kind)
            if not final:
                self._requeue(job_id)
                raise
            failure = BackendError(
                f"job {job_id} failed unexpectedly after {job.attempts} attempts: {type(e).__name__}"
            )
            return self._finish(job_id, error=problem_of(failure))
        return self._finish(job_id, result=result)

    def _execute(self, job: JobRecord) -> dict[str, Any]:
        r = job.request
        if job.kind == REPRODUCE:
            return {"reproduction": self.evaluation.reproduce(int(r["evaluation_id"])).to_json()}
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(r["ref"]))
            # a job retried after its worker died may find the evaluation that worker recorded before dying
            found = identical(u.evaluations_of(model, version), r["dataset_digest"], r["split"])
        if found is not None:
            return {"evaluation": found.to_json(), "reused": True}
        made = self.evaluation.evaluate(r["ref"], benchmark=r["benchmark"], dataset=r["dataset"], actor=job.actor)
        return {"evaluation": made.to_json(), "reused": False}

    def _requeue(self, job_id: int) -> None:
        with self.db.unit(write=True) as u:
            u.requeue_job(job_id)

    def _finish(self, job_id: int, **outcome: Any) -> JobRecord:
        with self.db.unit(write=True) as u:
            return u.finish_job(job_id, self.clock(), **outcome)
