"""Jobs (`/api/v1/jobs/{id}`): evaluations and reproductions queued for `aiprov worker` (AIPROV_JOBS=queue).

A route that queues answers `202 Accepted` with the job and a `Location` here; the client reads it until its
state is `succeeded` (the result: the evaluation or the reproduction) or `failed` (the problem body).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from aiprov.api.deps import ContainerDep
from aiprov.api.limits import JsonRoute
from aiprov.api.schemas import JobOut
from aiprov.records import JobRecord

router = APIRouter(tags=["jobs"], route_class=JsonRoute)

JOB_PATH = "/api/v1/jobs/{job_id}"

ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": JobOut,
        "description": "Queued for the hub's workers (AIPROV_JOBS=queue): the job; `Location` is its status route.",
    }
}


def accepted(job: JobRecord) -> JSONResponse:
    """The 202 answer of a route that queued `job`: the job, and where to read it again."""
    return JSONResponse(job.to_json(), status_code=202, headers={"Location": JOB_PATH.format(job_id=job.id)})


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job")
def get_job(container: ContainerDep, job_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    """The job's state (queued, running, succeeded, failed), its result once succeeded, its problem once failed."""
    return container.jobs.get(job_id).to_json()
