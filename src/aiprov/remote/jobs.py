"""Jobs on a server: evaluations and reproductions it may queue (202 and a job), and waiting for one to finish.

`wait` and `failure` serve a home with a queue too: they take how to read a job, not a client.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiprov.core.names import Ref
from aiprov.errors import AiprovError, BackendError, InvalidInput
from aiprov.records import EvaluationRecord, JobRecord, Reproduction
from aiprov.remote.client import HubClient, error_from_problem
from aiprov.remote.services import model_path

if TYPE_CHECKING:
    import httpx

POLL_S = 0.5
"""How often a waiting client reads the job again."""


def wait(
    get: Callable[[int], JobRecord],
    job: JobRecord,
    *,
    on_change: Callable[[JobRecord], None] | None = None,
    poll_s: float = POLL_S,
) -> JobRecord:
    """Read `job` again every `poll_s` seconds until it is finished; `on_change` sees each new state or attempt."""
    seen = (job.state, job.attempts)
    while not job.finished:
        time.sleep(poll_s)
        job = get(job.id)
        if (job.state, job.attempts) != seen and on_change is not None:
            on_change(job)
        seen = (job.state, job.attempts)
    return job


def failure(job: JobRecord) -> AiprovError:
    """The error a failed job ended with, as the same AiprovError class the hub raised (from its problem body)."""
    problem = job.error or {}
    status = problem.get("status")
    return error_from_problem(status if isinstance(status, int) else 500, problem, f"job {job.id}")


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as e:
        raise BackendError(f"the server sent no JSON for {response.url}") from e
    if not isinstance(body, dict):
        raise BackendError(f"the server sent no JSON object for {response.url}")
    return body


class RemoteJobs:
    def __init__(self, client: HubClient) -> None:
        self.client = client

    def evaluate(
        self, ref: str, *, benchmark: str | None = None, dataset: str | None = None
    ) -> EvaluationRecord | JobRecord:
        """Ask the server to evaluate: the record (201) when it ran it, the job (202) when it queued it."""
        if (benchmark is None) == (dataset is None):
            raise InvalidInput("give exactly one of --benchmark or --dataset")
        parsed = Ref.parse(ref)
        if parsed.model is None:
            raise InvalidInput(f"{ref!r} names no model: evaluate OWNER/NAME[@N|@ALIAS]")
        version = parsed.alias if parsed.alias is not None else parsed.number
        params = {} if version is None else {"version": str(version)}
        body = {"benchmark": benchmark} if benchmark is not None else {"dataset": dataset}
        path = f"{model_path(str(parsed.model))}/evaluations"
        response = self.client.request("POST", path, json=body, params=params)
        document = _answer(response)
        if response.status_code == 202:
            return JobRecord.from_json(document)
        return EvaluationRecord.from_json(document)

    def reproduce(self, evaluation_id: int) -> Reproduction | JobRecord:
        """Ask the server to re-run an evaluation: the comparison when it ran it, the job when it queued it."""
        response = self.client.request("POST", f"/evaluations/{int(evaluation_id)}/reproduce")
        document = _answer(response)
        if response.status_code == 202:
            return JobRecord.from_json(document)
        original = EvaluationRecord.from_json(self.client.json("GET", f"/evaluations/{int(evaluation_id)}"))
        return Reproduction.from_json(document, original)

    def get(self, job_id: int) -> JobRecord:
        return JobRecord.from_json(self.client.json("GET", f"/jobs/{int(job_id)}"))
