"""The transparency log over HTTP (`/api/v1/log/…`) and per-version verification; JSON as `aiprov log … --json`."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from aiprov.api.deps import ContainerDep
from aiprov.api.limits import JsonRoute
from aiprov.api.params import Name, Number, Owner
from aiprov.api.schemas import ConsistencyOut, EntryOut, EvidenceOut, InclusionOut, VerifyOut

router = APIRouter(tags=["log"], route_class=JsonRoute)

NOTE = {"content": {"text/plain": {"schema": {"type": "string"}}}}
Size = Annotated[int, Query(ge=1, le=2**62, description="Tree size; default the latest checkpoint's.")]


@router.get("/log/checkpoint", response_class=PlainTextResponse, responses={200: NOTE}, summary="Signed checkpoint")
def checkpoint(container: ContainerDep) -> PlainTextResponse:
    """The latest checkpoint: a C2SP signed note, byte for byte as signed (verify it with `/log/key`)."""
    return PlainTextResponse(container.log.latest().note, headers={"Cache-Control": "no-cache"})


@router.get("/log/key", response_class=PlainTextResponse, responses={200: NOTE}, summary="Log verifier key")
def key(container: ContainerDep) -> PlainTextResponse:
    """The log's verifier key in note format (`name+hexid+base64`). Pin it out of band; do not trust it from here."""
    return PlainTextResponse(str(container.log.verifier) + "\n")


@router.get("/log/entries/{index}", response_model=EntryOut, summary="One log entry")
def entry(container: ContainerDep, index: Annotated[int, Path(ge=0, le=2**62)]) -> dict[str, Any]:
    """The event at leaf `index` and its RFC 9162 leaf hash, like `aiprov log entry --json`."""
    data, leaf, _ = container.log.entry(index)
    return {"index": index, "leaf_hash": leaf.hex(), "event": json.loads(data)}


@router.get("/log/proof/inclusion", response_model=InclusionOut, summary="Inclusion proof")
def inclusion(
    container: ContainerDep,
    index: Annotated[int, Query(ge=0, le=2**62, description="Leaf index to prove.")],
    size: Size | None = None,
) -> dict[str, Any]:
    """Proof that entry `index` is in the tree of `size` entries, like `aiprov log proof --json`."""
    return container.log.inclusion(index, size).to_json()


@router.get("/log/proof/consistency", response_model=ConsistencyOut, summary="Consistency proof")
def consistency(
    container: ContainerDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=2**62, description="The older tree size.")],
    to: Size | None = None,
) -> dict[str, Any]:
    """Proof that the tree of `from` entries is a prefix of the tree of `to`, like `aiprov log consistency --json`."""
    return container.log.consistency(from_, to).to_json()


@router.get(
    "/models/{owner}/{name}/versions/{number}/verify",
    response_model=VerifyOut,
    summary="Verify a version",
    tags=["models"],
)
def verify(
    container: ContainerDep,
    owner: Owner,
    name: Name,
    number: Number,
) -> dict[str, Any]:
    """The server's own checks of the version, like `aiprov verify --json`.

    Manifest digest, stored bytes (rehashed), recorded signatures, log entry, checkpoint, inclusion and
    consistency. A client that trusts nothing re-checks the proofs itself with `/log/…`.
    """
    return container.verification.verify(f"{owner}/{name}@{number}").to_json()


@router.get(
    "/models/{owner}/{name}/versions/{number}/evidence",
    response_model=EvidenceOut,
    summary="What a client needs to verify a version itself",
    tags=["models"],
)
def evidence(
    container: ContainerDep,
    owner: Owner,
    name: Name,
    number: Number,
) -> dict[str, Any]:
    """The recorded signatures (bundles and public keys) and the registration event with its log index.

    `aiprov --server URL verify` checks the signatures against the manifest it hashed itself, then proves the
    event in the log against a checkpoint signed by the log key it pinned — trusting nothing the server says.
    """
    return container.verification.evidence(f"{owner}/{name}@{number}").to_json()
