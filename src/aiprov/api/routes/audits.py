"""Claims, audits, ratings, flags and reputation (`/api/v1/claims`, `/audits`, `/ratings`, `/flags`, `/reputation`).

Shapes mirror `aiprov claim|audit|rate|flag|reputation --json`. A claim or audit is built, run and signed by the
client (`aiprov --server URL claim|audit`) and checked again here before it is logged: it must be the caller's
own (a token speaks only for its account), an audit never of the caller's own claim, its numbers must lead to
its verdict, and a signature must verify.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, status

from aiprov.api.deps import CallerDep, ContainerDep, require_write
from aiprov.api.limits import JsonRoute
from aiprov.api.schemas import AuditSubmit, ClaimSubmit, FlagIn, RatingIn
from aiprov.core.names import MAX_REF_LENGTH
from aiprov.errors import BackendError, Forbidden, InvalidInput
from aiprov.records import AuditRecord, ClaimRecord

router = APIRouter(tags=["audits"], route_class=JsonRoute)

R = TypeVar("R")

LogIndex = Annotated[int, Path(ge=0, le=2**62, description="A log index (a claim's or audit's id).")]


def _document(reader: Callable[[dict[str, Any]], R], value: dict[str, Any], what: str) -> R:
    try:
        return reader(value)
    except BackendError as e:  # the records' reader speaks of "the server"; here the document is the client's
        raise InvalidInput(f"malformed {what}: {e.message.split(': ', 1)[-1]}") from e


@router.get("/claims", summary="A version's claims")
def list_claims(
    container: ContainerDep, ref: Annotated[str, Query(max_length=MAX_REF_LENGTH, description="The version.")]
) -> list[dict[str, Any]]:
    return [c.to_json() for c in container.claims.of_version(ref)]


@router.get("/claims/{claim_id}", summary="One claim")
def show_claim(container: ContainerDep, claim_id: LogIndex) -> dict[str, Any]:
    return container.claims.get(claim_id).to_json()


@router.post("/claims", status_code=status.HTTP_201_CREATED, summary="Record a claim")
def add_claim(body: ClaimSubmit, container: ContainerDep, caller: CallerDep) -> dict[str, Any]:
    """Log the caller's claim after checking it against this hub's version and data (and its signature)."""
    name = require_write(caller, "claiming")
    made = _document(ClaimRecord.from_json, {"id": 0, **body.claim}, "claim")
    if made.publisher != name:
        raise Forbidden(f"{name} may not claim as {made.publisher}", hint="a token speaks only for its own account")
    return container.claims.record(made).to_json()


@router.get("/claims/{claim_id}/audits", summary="A claim's audits")
def list_audits(container: ContainerDep, claim_id: LogIndex) -> list[dict[str, Any]]:
    return [a.to_json() for a in container.audits.of_claim(claim_id)]


@router.get("/audits/{audit_id}", summary="One audit")
def show_audit(container: ContainerDep, audit_id: LogIndex) -> dict[str, Any]:
    return container.audits.get(audit_id).to_json()


@router.post("/audits", status_code=status.HTTP_201_CREATED, summary="Record an audit")
def add_audit(body: AuditSubmit, container: ContainerDep, caller: CallerDep) -> dict[str, Any]:
    """Log the caller's audit: its own, not of its own claim, its verdict following from its numbers, signed right."""
    name = require_write(caller, "auditing")
    document = {"id": 0, "target_leaf": 0, **body.audit}
    made = _document(AuditRecord.from_json, document, "audit")
    if made.auditor != name:
        raise Forbidden(f"{name} may not submit an audit by {made.auditor}", hint="an account signs only its audits")
    return container.audits.record(made).to_json()


@router.post("/ratings", status_code=status.HTTP_201_CREATED, summary="Rate a version (1 to 5 stars)")
def rate(body: RatingIn, container: ContainerDep, caller: CallerDep) -> dict[str, Any]:
    return container.claims.rate(body.ref, body.stars, actor=require_write(caller, "rating")).to_json()


@router.post("/flags", status_code=status.HTTP_201_CREATED, summary="Flag a version")
def flag(body: FlagIn, container: ContainerDep, caller: CallerDep) -> dict[str, Any]:
    return container.claims.flag(body.ref, body.reason, actor=require_write(caller, "flagging")).to_json()


@router.get("/reputation", summary="Every account's reputation, best first")
def reputations(container: ContainerDep) -> list[dict[str, Any]]:
    return [r.to_json() for r in container.reputation.all()]


@router.get("/reputation/{account}", summary="An account's reputation")
def reputation(container: ContainerDep, account: Annotated[str, Path(max_length=128)]) -> dict[str, Any]:
    return container.reputation.of(account).to_json()
