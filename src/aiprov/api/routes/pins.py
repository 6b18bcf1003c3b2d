"""Pinning a version on the hub's IPFS endpoint: `POST /api/v1/models/{owner}/{name}/versions/{number}/pin`.

The hub pins with its own settings (`AIPROV_IPFS_API`, a Kubo RPC URL, or `AIPROV_IPFS_PINNING_URL` and its
token), as `aiprov ipfs pin` does on the hub's machine; the caller needs no IPFS endpoint or credential. Only the
owner or an admin may pin under `owner/*`: a pin uses the hub's node or its paid pinning service. The pin is an
`ipfs.pin` event in the log, with the caller as its actor.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from aiprov.api.deps import CallerDep, ContainerDep, check_namespace
from aiprov.api.limits import JsonRoute
from aiprov.api.params import Name, Number, Owner
from aiprov.api.schemas import PinOut

router = APIRouter(tags=["ipfs"], route_class=JsonRoute)

CidVersion = Annotated[int, Query(ge=0, le=1, description="Pin the CIDv0 DAG (Kubo's default) or the CIDv1 one.")]


@router.post(
    "/models/{owner}/{name}/versions/{number}/pin",
    response_model=PinOut,
    summary="Pin a version on the hub's IPFS node or pinning service",
    responses={503: {"description": "the IPFS endpoint is down or refused the pin (after retries)"}},
)
def pin(
    owner: Owner, name: Name, number: Number, container: ContainerDep, caller: CallerDep, cid_version: CidVersion = 0
) -> dict[str, Any]:
    """Pin the version with the hub's IPFS endpoint, and wait until it is pinned.

    To a Kubo node the hub sends the version's DAG as a CAR import that pins its root; a pinning service is asked
    to pin the root CID. 422 when the hub has no IPFS endpoint configured.
    """
    actor = check_namespace(caller, owner)
    return container.ipfs.pin(f"{owner}/{name}@{number}", cid_version, actor=actor).to_json()
