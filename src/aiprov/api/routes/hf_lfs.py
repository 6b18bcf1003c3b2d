"""The Hugging Face Hub's Git LFS upload routes, which `huggingface_hub` uses for files preupload marks `lfs`.

    POST /{owner}/{name}.git/info/lfs/objects/batch     grants (token, namespace checked): per object an upload
                                                        URL, or no action when the object is stored already
    PUT  /api/lfs/uploads/{capability}                  the object's bytes (no token: the URL is the credential)
    POST /{owner}/{name}.git/info/lfs/objects/verify    the client's check after its PUT (token)

The batch answers the `basic` transfer of the Git LFS batch API. The upload URL's last segment is a capability
(`services.hf_lfs`): a random secret id stored as its SHA-256 in the database with the caller, the model, the
object's sha256 and size and an expiry, so any server process on the database accepts it without a shared
signing secret. The PUT streams into the blob store, hashing as it writes; nothing is registered until a commit
(`hf_upload`) names the object, and then it is scanned from the stored bytes like every pushed file.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from aiprov.api.deps import CallerDep, ContainerDep, check_namespace
from aiprov.api.routes.hf import HfName, HfOwner, HfRoute
from aiprov.api.routes.uploads import stream_into
from aiprov.config import Container
from aiprov.core.names import ModelName
from aiprov.errors import InvalidInput
from aiprov.services.hf_lfs import LfsUploads

router = APIRouter(tags=["hugging face hub"], route_class=HfRoute)
capability_router = APIRouter(tags=["hugging face hub"], route_class=HfRoute)
"""Routes without a token: the upload URL is the credential (mounted without `get_caller`)."""

UPLOAD_PREFIX = "/api/lfs/uploads/"
LFS_JSON = "application/vnd.git-lfs+json"


def lfs_uploads(container: Container) -> LfsUploads:
    """The LFS grants of the container's hub, with its TTL and blob size limit."""
    settings = container.settings
    return LfsUploads(
        container.checked_db,
        container.blobs,
        clock=container.clock,
        ttl_s=settings.hf_lfs_ttl_s,
        max_blob_bytes=settings.max_blob_mb * 2**20,
    )


class LfsObject(BaseModel):
    model_config = ConfigDict(extra="allow")

    oid: Annotated[str, Field(max_length=128)]
    size: Annotated[int, Field(ge=0)]


class LfsBatch(BaseModel):
    model_config = ConfigDict(extra="allow")  # ref, hash_algo: one branch and one algorithm here

    operation: Annotated[str, Field(max_length=16)]
    transfers: Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=16)] = ["basic"]
    objects: Annotated[list[LfsObject], Field(max_length=10_000)]


def _repo(owner: str, name: str) -> str:
    return str(ModelName.parse(f"{owner}/{name}"))


@router.post(
    "/{owner}/{name}.git/info/lfs/objects/batch",
    summary="Git LFS batch: upload URLs for the objects of a commit (Hub protocol)",
)
def lfs_batch(
    request: Request, container: ContainerDep, caller: CallerDep, owner: HfOwner, name: HfName, body: LfsBatch
) -> JSONResponse:
    """Per object: `actions.upload` (a single-use capability URL) and `actions.verify`, none if already stored.

    Raises Unauthorized, Forbidden (another owner's namespace), InvalidInput (a download batch, no `basic`
    transfer). A malformed or too large object is an `error` entry of its own, which the client reports.
    """
    actor = check_namespace(caller, owner)
    if body.operation != "upload":
        raise InvalidInput(
            f"this hub's LFS batch API takes uploads, not {body.operation!r}",
            hint="files are downloaded from /{owner}/{name}/resolve/{revision}/{path}",
        )
    if "basic" not in body.transfers:
        raise InvalidInput("this hub offers the `basic` LFS transfer only")
    full = _repo(owner, name)
    answers = lfs_uploads(container).batch(actor, full, [(o.oid, o.size) for o in body.objects])
    base = str(request.base_url).rstrip("/")
    objects: list[dict[str, Any]] = []
    for a in answers:
        item: dict[str, Any] = {"oid": a.oid, "size": a.size}
        if a.error is not None:
            item["error"] = {"code": a.error[0], "message": a.error[1]}
        elif a.capability is not None and a.expires_at is not None:
            item["authenticated"] = True
            item["actions"] = {
                "upload": {"href": f"{base}{UPLOAD_PREFIX}{a.capability}", "expires_at": a.expires_at.isoformat()},
                "verify": {"href": f"{base}/{full}.git/info/lfs/objects/verify"},
            }
        objects.append(item)
    return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, media_type=LFS_JSON)


class LfsVerify(BaseModel):
    model_config = ConfigDict(extra="allow")

    oid: Annotated[str, Field(max_length=128)]
    size: Annotated[int, Field(ge=0)]


@router.post(
    "/{owner}/{name}.git/info/lfs/objects/verify",
    summary="Git LFS verify: the object was received (Hub protocol)",
)
def lfs_verify(
    container: ContainerDep, caller: CallerDep, owner: HfOwner, name: HfName, body: LfsVerify
) -> JSONResponse:
    """200 if the caller's upload of the object into this model was received with this size; else 404."""
    actor = check_namespace(caller, owner)
    lfs_uploads(container).verify(actor, _repo(owner, name), body.oid, body.size)
    return JSONResponse({"oid": body.oid, "size": body.size}, media_type=LFS_JSON)


Capability = Annotated[str, Path(max_length=64, description="The upload URL's secret id.")]


@capability_router.put(
    UPLOAD_PREFIX + "{capability}",
    summary="Upload an LFS object to its capability URL (Hub protocol; no token)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {}}}},
)
async def lfs_put(request: Request, container: ContainerDep, capability: Capability) -> JSONResponse:
    """Stream the body into the blob store; 200 once it is exactly the announced size and sha256.

    Single use: a second PUT after a success is a 410, so is one after the URL expired; an unknown URL is a
    404. A body of the wrong size or digest is a 422 and stores nothing (the URL may be retried until it expires).
    """
    receiver = await run_in_threadpool(lfs_uploads(container).receive, capability)
    try:
        await stream_into(request, receiver.write, bytearray())
    except ClientDisconnect:
        await run_in_threadpool(receiver.abort)
        return JSONResponse({"detail": "client disconnected"}, status_code=400)
    except InvalidInput:
        raise  # `write` discarded the bytes and gave the URL back
    except BaseException:
        await run_in_threadpool(receiver.abort)
        raise
    digest = await run_in_threadpool(receiver.finish)
    return JSONResponse({"oid": digest.hex, "size": receiver.received})
