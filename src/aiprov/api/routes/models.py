"""Models: list, search, show, versions, aliases, events and evaluations (`/api/v1/models/…`, `/api/v1/versions/…`).

Shapes mirror `aiprov ls|show|alias|evaluate --json`. A version is named in paths by number
(`/models/{owner}/{name}/versions/{n}`) or, for aliases and digests, by a full reference
(`/versions/{owner}/{name}@{alias}`, `/versions/sha256:{hex prefix}`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import StringConstraints

from aiprov.api.deps import CallerDep, ContainerDep, check_namespace, require_write
from aiprov.api.limits import JsonRoute
from aiprov.api.params import Alias, Name, Number, Owner, SelectorQuery
from aiprov.api.routes.jobs import ACCEPTED, accepted
from aiprov.api.schemas import (
    AliasIn,
    AliasOut,
    EvaluationIn,
    EvaluationOut,
    EventOut,
    ModelOut,
    ReproductionOut,
    VersionDetailOut,
    VersionOut,
)
from aiprov.config import Container
from aiprov.core.names import MAX_REF_LENGTH
from aiprov.errors import InvalidInput
from aiprov.records import JobRecord

router = APIRouter(tags=["models"], route_class=JsonRoute)

METRIC_FILTER = r"^(accuracy|f1_macro|precision_macro|recall_macro|roc_auc|mae|rmse|r2)=-?[0-9]+(\.[0-9]+)?$"

MinFilter = Annotated[str, StringConstraints(pattern=METRIC_FILTER)]


def _detail(c: Container, ref: str) -> dict[str, Any]:
    """`aiprov show --json` of `ref`."""
    model, v = c.registry.show(ref)
    evaluations = c.evaluation.of_version(f"{v.full_name}@{v.number}")
    return {
        **v.to_json(),
        "description": model.description,
        "license": model.license,
        "tags": list(model.tags),
        "versions": model.version_count,
        "evaluations": [e.summary() for e in evaluations],
        "claims": [k.summary() for k in c.claims.of_version(f"{v.full_name}@{v.number}")],
        "author_reputation": c.reputation.of(v.author).score,
    }


@router.get("/models", response_model=list[ModelOut], summary="List and search models")
def list_models(
    container: ContainerDep,
    author: Annotated[str | None, Query(max_length=128, description="Models with a version by this author.")] = None,
    name: Annotated[str | None, Query(max_length=200, description="OWNER/NAME glob, e.g. `alice/*`.")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    search: Annotated[str | None, Query(max_length=200, description="Text in name, description or tags.")] = None,
    min_: Annotated[
        list[MinFilter] | None,
        Query(alias="min", description="METRIC=VALUE: the latest version has an evaluation with METRIC >= VALUE."),
    ] = None,
    format: Annotated[
        str | None, Query(max_length=32, description="Models whose latest version has a file of this format.")
    ] = None,
    sort: Annotated[
        str,
        Query(
            max_length=64,
            description="`name` (default), `updated`, `versions`, `downloads`, `reputation` or `metric:NAME`.",
        ),
    ] = "name",
) -> list[dict[str, Any]]:
    """Models with their latest version, like `aiprov ls --json`."""
    from aiprov.records import ModelFilter, check_format
    from aiprov.services.evaluation import parse_min

    f = ModelFilter(
        author=author,
        name_glob=name,
        tag=tag,
        search=search,
        min_metrics=parse_min(min_ or []),
        format=check_format(format) if format is not None else None,
    )
    return [m.to_json() for m in container.registry.list(f, sort)]


@router.get("/models/{owner}/{name}", response_model=VersionDetailOut, summary="Show a model's latest version")
def show_model(container: ContainerDep, owner: Owner, name: Name) -> dict[str, Any]:
    """The latest version with its model's metadata and evaluations, like `aiprov show OWNER/NAME --json`."""
    return _detail(container, f"{owner}/{name}")


@router.get("/models/{owner}/{name}/versions", response_model=list[VersionOut], summary="List a model's versions")
def list_versions(container: ContainerDep, owner: Owner, name: Name) -> list[dict[str, Any]]:
    """Every version of the model, oldest first."""
    return [v.to_json() for v in container.registry.versions(f"{owner}/{name}")]


@router.get("/models/{owner}/{name}/versions/{number}", response_model=VersionDetailOut, summary="Show a version")
def show_version(container: ContainerDep, owner: Owner, name: Name, number: Number) -> dict[str, Any]:
    """Version `number`, like `aiprov show OWNER/NAME@N --json`."""
    return _detail(container, f"{owner}/{name}@{number}")


@router.get("/versions/{ref:path}", response_model=VersionDetailOut, summary="Resolve a reference")
def show_ref(
    container: ContainerDep,
    ref: Annotated[
        str,
        Path(
            max_length=MAX_REF_LENGTH,
            description="`OWNER/NAME`, `OWNER/NAME@N`, `OWNER/NAME@ALIAS` or `sha256:<hex prefix>`.",
        ),
    ],
) -> dict[str, Any]:
    """Any reference `aiprov show` accepts: an alias, a number or a digest (prefix)."""
    return _detail(container, ref)


@router.put(
    "/models/{owner}/{name}/aliases/{alias}",
    response_model=AliasOut,
    summary="Point an alias at a version",
)
def set_alias(
    container: ContainerDep,
    caller: CallerDep,
    owner: Owner,
    name: Name,
    alias: Alias,
    body: AliasIn,
) -> dict[str, Any]:
    """Move (or create) `alias` to the version `body.version` names. Only the owner or an admin may."""
    actor = check_namespace(caller, owner)
    target = body.version.removeprefix("@")
    if target.lower().startswith("sha256:"):
        _, found = container.registry.show(target)
        if found.full_name != f"{owner}/{name}":
            raise InvalidInput(f"{body.version} is a version of {found.full_name}, not {owner}/{name}")
        target = str(found.number)
    version, previous = container.registry.alias(f"{owner}/{name}@{target}", alias, actor=actor)
    inference = container.running_inference
    if inference is not None:  # predictions by this alias use the new version at once (in this process)
        inference.forget(f"{owner}/{name}")
    return {**version.to_json(), "alias": alias, "previous": previous}


@router.get("/models/{owner}/{name}/events", response_model=list[EventOut], summary="A model's events")
def model_events(
    container: ContainerDep,
    owner: Owner,
    name: Name,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """Every logged event about the model (pushes, aliases, signatures, evaluations, usage), newest first."""
    return [e.to_json() for e in container.registry.usage(f"{owner}/{name}", limit)]


@router.get("/models/{owner}/{name}/evaluations", response_model=list[EvaluationOut], summary="A version's evaluations")
def list_evaluations(
    container: ContainerDep,
    owner: Owner,
    name: Name,
    version: SelectorQuery = None,
) -> list[dict[str, Any]]:
    """Every evaluation of the version, oldest first."""
    ref = f"{owner}/{name}" if version is None else f"{owner}/{name}@{version.removeprefix('@')}"
    return [e.to_json() for e in container.evaluation.of_version(ref)]


@router.post(
    "/models/{owner}/{name}/evaluations",
    response_model=EvaluationOut,
    status_code=status.HTTP_201_CREATED,
    summary="Evaluate a version",
    responses=ACCEPTED,
)
def evaluate(
    container: ContainerDep,
    caller: CallerDep,
    owner: Owner,
    name: Name,
    body: EvaluationIn,
    version: SelectorQuery = None,
) -> Any:
    """Run the version on a benchmark or dataset in a sandboxed worker; record and log the metrics.

    Any user with the write scope may evaluate any model: the caller is recorded as the evaluator. A hub with a
    job queue (AIPROV_JOBS=queue) answers 202 with the job instead, run by `aiprov worker`; see `/jobs/{id}`.
    """
    actor = require_write(caller)
    ref = f"{owner}/{name}" if version is None else f"{owner}/{name}@{version.removeprefix('@')}"
    answer = container.jobs.evaluate(ref, benchmark=body.benchmark, dataset=body.dataset, actor=actor)
    return accepted(answer) if isinstance(answer, JobRecord) else answer.to_json()


@router.post(
    "/evaluations/{evaluation_id}/reproduce",
    response_model=ReproductionOut,
    summary="Re-run an evaluation and compare",
    responses=ACCEPTED,
)
def reproduce_evaluation(
    container: ContainerDep, caller: CallerDep, evaluation_id: Annotated[int, Path(ge=1, le=2**62)]
) -> Any:
    """Run the evaluation again on the hub's workers and compare the metrics bit for bit; nothing is recorded.

    The same bytes, data and split as recorded. It costs the hub a model run, so it needs the write scope. To
    reproduce without trusting the hub, pull the version and the dataset and evaluate them yourself. A hub with
    a job queue answers 202 with the job.
    """
    actor = require_write(caller)
    answer = container.jobs.reproduce(evaluation_id, actor=actor)
    return accepted(answer) if isinstance(answer, JobRecord) else answer.to_json()


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationOut, summary="One evaluation")
def get_evaluation(container: ContainerDep, evaluation_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    """The evaluation with this id, with its attestation when it was signed."""
    return container.evaluation.get(evaluation_id).to_json()
