"""The Hugging Face Hub's Xet upload routes: the write token, and a CAS server for xorbs and shards on this hub.

    GET  /api/models/{owner}/{name}/xet-write-token/{revision}   a CAS URL (this server) and a short-lived token
    GET  /api/xet/cas/v1/chunks/{prefix}/{hash}                  global dedupe: always 404 (nothing to share)
    POST /api/xet/cas/v1/xorbs/{prefix}/{hash}                   a xorb, kept for the token's caller and model
    POST /api/xet/cas/v1/shards                                  a shard: its files rebuilt, stored, received

huggingface_hub (with `hf_xet` installed) asks the token route for `X-Xet-Cas-Url`, `X-Xet-Access-Token` and
`X-Xet-Token-Expiration` (the body carries `casUrl`, `accessToken` and `exp` too), then sends the CAS requests
with `Authorization: Bearer <that token>`, not the API token: so the CAS routes run without `get_caller` and
authenticate the Xet token themselves (`services.hf_xet`). Routes the client probes and this hub does not offer
(`/v1/xorb-grants/...`, `/v2/shards`) are 404, on which hf_xet falls back to the v1 routes above. Files are then
committed by sha256 (`lfsFile`) exactly as after an LFS upload, and scanned and registered there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from aiprov.api.deps import CallerDep, ContainerDep, check_namespace
from aiprov.api.routes.hf import HfName, HfOwner, HfRoute, Revision
from aiprov.config import Container
from aiprov.core.names import ModelName
from aiprov.core.xet import XORB_MAX_BYTES
from aiprov.errors import InvalidInput, NotFound, TooLarge
from aiprov.services.hf_xet import SHARD_MAX_BYTES, XetUploads

router = APIRouter(tags=["hugging face hub"], route_class=HfRoute)
cas_router = APIRouter(tags=["hugging face hub"])
"""The CAS routes: authenticated by the Xet token, not the API token (mounted without `get_caller`)."""

CAS_PREFIX = "/api/xet/cas"

HashPart = Annotated[str, Path(max_length=64, description="A Xet hash: 64 lowercase hex digits.")]
Prefix = Annotated[str, Path(max_length=32, description="`default` (xorbs) or `default-merkledb` (chunks).")]


def xet_uploads(container: Container) -> XetUploads:
    """The Xet uploads of the container's hub, with its token TTL, grant TTL and blob size limit."""
    settings = container.settings
    return XetUploads(
        container.checked_db,
        container.blobs,
        clock=container.clock,
        token_ttl_s=settings.hf_xet_token_ttl_s,
        ttl_s=settings.hf_lfs_ttl_s,
        max_blob_bytes=settings.max_blob_mb * 2**20,
    )


@router.get(
    "/api/models/{owner}/{name}/xet-write-token/{revision}",
    summary="A Xet write token and this hub's CAS URL (Hub protocol)",
)
def xet_write_token(
    request: Request, container: ContainerDep, caller: CallerDep, owner: HfOwner, name: HfName, revision: Revision
) -> JSONResponse:
    """A token for the CAS routes, bound to the caller and this model; raises Unauthorized, Forbidden."""
    actor = check_namespace(caller, owner)
    model = str(ModelName.parse(f"{owner}/{name}"))
    issued = xet_uploads(container).issue(actor, model)
    cas_url = str(request.base_url).rstrip("/") + CAS_PREFIX
    exp = int(issued.expires_at.timestamp())
    headers = {"X-Xet-Cas-Url": cas_url, "X-Xet-Access-Token": issued.token, "X-Xet-Token-Expiration": str(exp)}
    return JSONResponse({"casUrl": cas_url, "accessToken": issued.token, "exp": exp}, headers=headers)


@cas_router.get(CAS_PREFIX + "/v1/chunks/{prefix}/{chunk}", summary="Xet global dedupe: always not found")
def xet_chunk(request: Request, container: ContainerDep, prefix: Prefix, chunk: HashPart) -> JSONResponse:
    """Always a 404 for a valid token (this hub shares no chunks between uploads); raises Unauthorized."""
    xet_uploads(container).session(request.headers.get("authorization"))
    raise NotFound("this hub offers no global deduplication")


@cas_router.post(
    CAS_PREFIX + "/v1/xorbs/{prefix}/{xorb}",
    summary="Upload a Xet xorb (kept for the token's caller and model)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {}}}},
)
async def xet_xorb(request: Request, container: ContainerDep, prefix: Prefix, xorb: HashPart) -> JSONResponse:
    """`{"was_inserted": bool}`; raises Unauthorized, InvalidInput (not a well-formed xorb), TooLarge (64 MiB)."""
    uploads = xet_uploads(container)
    session = await run_in_threadpool(uploads.session, request.headers.get("authorization"))
    data = await _body(request, XORB_MAX_BYTES)
    inserted = await run_in_threadpool(uploads.put_xorb, session, prefix, xorb, data)
    return JSONResponse({"was_inserted": inserted})


@cas_router.post(
    CAS_PREFIX + "/v1/shards",
    summary="Upload a Xet shard: its files are rebuilt from the caller's xorbs and stored",
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {}}}},
)
async def xet_shard(request: Request, container: ContainerDep) -> JSONResponse:
    """`{"result": 1}` once every file is stored and may be committed by its sha256.

    Raises Unauthorized, InvalidInput (not a shard, a xorb the caller did not send, a SHA-256 that does not
    match), TooLarge.
    """
    uploads = xet_uploads(container)
    session = await run_in_threadpool(uploads.session, request.headers.get("authorization"))
    data = await _body(request, SHARD_MAX_BYTES)
    await run_in_threadpool(uploads.put_shard, session, data)
    return JSONResponse({"result": 1})


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused past `limit` bytes without reading the rest. Raises TooLarge, InvalidInput."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"a body of {declared} bytes is over the limit of {limit}")
    buffer = bytearray()
    try:
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) > limit:
                raise TooLarge(f"the body is over the limit of {limit} bytes")
    except ClientDisconnect:
        raise InvalidInput("the client disconnected before the body was complete") from None
    return bytes(buffer)
