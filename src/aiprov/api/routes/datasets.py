"""Datasets to evaluate on (`/api/v1/datasets`): register an uploaded CSV/Parquet blob, list, show.

Upload the file's bytes first (`PUT /api/v1/blobs/sha256:<hex>`, streamed and resumable), then register the digest
under a name in your namespace; shapes mirror `aiprov dataset add|ls --json`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aiprov.api.deps import CallerDep, ContainerDep, check_namespace
from aiprov.api.limits import JsonRoute
from aiprov.api.params import Name, Owner
from aiprov.api.schemas import DatasetIn, DatasetOut
from aiprov.core.digest import Digest
from aiprov.core.names import ModelName

router = APIRouter(tags=["datasets"], route_class=JsonRoute)


@router.get("/datasets", response_model=list[DatasetOut], summary="List datasets")
def list_datasets(container: ContainerDep) -> list[dict[str, Any]]:
    """Every registered dataset, like `aiprov dataset ls --json`."""
    return [d.to_json() for d in container.datasets.list()]


@router.get("/datasets/{owner}/{name}", response_model=DatasetOut, summary="Show a dataset")
def show_dataset(container: ContainerDep, owner: Owner, name: Name) -> dict[str, Any]:
    return container.datasets.get(f"{owner}/{name}").to_json()


@router.post(
    "/datasets",
    response_model=DatasetOut,
    status_code=201,
    summary="Register an uploaded CSV or Parquet blob as a dataset",
    responses={200: {"description": "the same bytes were already registered under this name"}},
)
def add_dataset(body: DatasetIn, container: ContainerDep, caller: CallerDep) -> JSONResponse:
    """Parse the blob (as data; nothing is executed), check the target and numeric features, record and log it.

    Datasets are immutable: the name holding other bytes is a 409. Only the namespace's owner or an admin may.
    """
    parsed = ModelName.parse(body.name)
    actor = check_namespace(caller, parsed.owner)
    record, new = container.datasets.add_blob(
        Digest.parse(body.digest), str(parsed), body.target, body.task, actor=actor
    )
    return JSONResponse({**record.to_json(), "new": new}, status_code=201 if new else 200)
