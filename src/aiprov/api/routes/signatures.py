"""Author signatures over HTTP: a bundle made on the author's machine is verified, recorded and logged.

The private key never travels: `aiprov --server URL sign` signs the manifest it hashed and checked itself, then
sends the OpenSSF model-signing bundle and the public key here. The recorded ones are served with the version's
evidence (`GET …/versions/{n}/evidence`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aiprov.api.deps import CallerDep, ContainerDep, check_namespace
from aiprov.api.limits import JsonRoute
from aiprov.api.params import Name, Number, Owner
from aiprov.api.schemas import SignatureIn, SignedOut

router = APIRouter(tags=["models"], route_class=JsonRoute)


@router.post(
    "/models/{owner}/{name}/versions/{number}/signatures",
    response_model=SignedOut,
    status_code=201,
    summary="Record an author's signature of a version",
    responses={200: {"description": "this key had signed the version already (the earlier signature stays)"}},
)
def add_signature(
    owner: Owner,
    name: Name,
    number: Number,
    body: SignatureIn,
    container: ContainerDep,
    caller: CallerDep,
) -> JSONResponse:
    """A bundle that does not verify against the version's manifest and the key is refused (422), nothing kept.

    Only the owner or an admin may sign under `owner/*`.
    """
    from aiprov import signing

    actor = check_namespace(caller, owner)
    key = signing.public_key_from_pem(body.public_key.encode(), source="the public key sent")
    result = container.signatures.record(f"{owner}/{name}@{number}", body.bundle.encode(), key, actor=actor)
    v = result.version
    document: dict[str, Any] = {
        "name": v.full_name,
        "version": v.number,
        "digest": str(v.manifest.digest),
        "key_fingerprint": result.key_fingerprint,
        "recorded": result.recorded,
    }
    return JSONResponse(document, status_code=201 if result.recorded else 200)
