"""An IPFS Trustless Gateway (`GET|HEAD /ipfs/{cid}`) for the models this hub holds.

Per the Trustless Gateway spec: `Accept: application/vnd.ipld.raw` (or `?format=raw`) returns the single block
whose hash is in the CID; `application/vnd.ipld.car` (or `?format=car`) a CARv1 of the whole DAG, streamed, each
block once (`dups=n`), children before parents (`order=unk`). No deserialized responses: a request asking for
neither is a 400. A client verifies every block against its CID, so it need not trust this hub.

CIDs are found in the registry: a version's (its file, or its directory), one of its files', or any block of a
stored file's DAG (where it comes from is recorded at push). Blocks are rebuilt from the blobs on request, never
stored twice, and checked against their CID before they are sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from aiprov.api.deps import Caller, CallerDep, ContainerDep
from aiprov.api.errors import problem
from aiprov.api.limits import JsonRoute
from aiprov.core.unixfs import Cid
from aiprov.errors import InvalidInput
from aiprov.services.ipfs import Located

log = logging.getLogger(__name__)

router = APIRouter(tags=["ipfs"], route_class=JsonRoute)

RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"
IMMUTABLE = "public, max-age=29030400, immutable"
FORMATS = {"raw": RAW, "car": CAR}
PIECE = 1 << 20
RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {
            RAW: {"schema": {"type": "string", "format": "binary"}},
            CAR: {"schema": {"type": "string", "format": "binary"}},
        }
    },
    304: {"description": "the ETag matched (If-None-Match)"},
    400: {"description": "malformed CID, a path, or no verifiable format asked for"},
}


def _wanted(format: str | None, accept: str | None) -> str | None:
    """The response type asked for: `format` wins over `Accept` (spec: format SHOULD take precedence)."""
    if format is not None:
        return FORMATS.get(format)
    for item in (accept or "").split(","):
        media = item.split(";")[0].strip().lower()
        if media in (RAW, CAR):
            return media
    return None


def _bad(detail: str) -> Response:
    return problem(400, "bad request", detail)


@router.head("/ipfs/{cid}", response_class=Response, responses=RESPONSES, summary="IPFS Trustless Gateway (HEAD)")
@router.get(
    "/ipfs/{cid}",
    response_class=Response,
    responses=RESPONSES,
    summary="IPFS Trustless Gateway: a block or a CAR of a model's DAG, by CID",
)
def ipfs(
    request: Request,
    container: ContainerDep,
    caller: CallerDep,
    cid: Annotated[str, Path(max_length=128, description="A CIDv0 (Qm…) or CIDv1 (bafy…/bafk…).")],
    format: Annotated[str | None, Query(max_length=16, description="`raw` or `car` (overrides Accept).")] = None,
    dag_scope: Annotated[
        str | None, Query(alias="dag-scope", max_length=16, description="`all` (default), `entity` or `block`.")
    ] = None,
) -> Response:
    """A raw block (`application/vnd.ipld.raw`) or a CARv1 (`application/vnd.ipld.car`) for `cid`.

    400 for a malformed CID or neither format asked for, 404 for a CID this hub holds no model for.
    """
    try:
        parsed = Cid.parse(cid)
    except InvalidInput as e:
        return _bad(e.diagnostics())
    wanted = _wanted(format, request.headers.get("accept"))
    if wanted is None:
        return _bad("ask for a verifiable response: ?format=raw|car or Accept: application/vnd.ipld.raw|car")
    scope = dag_scope or "all"
    if scope not in ("all", "entity", "block"):
        return _bad(f"dag-scope must be all, entity or block, not {scope!r}")
    text = str(parsed)
    headers = {
        "Cache-Control": IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        "X-Ipfs-Path": f"/ipfs/{cid}",
        "Vary": "Accept",
    }
    if wanted == RAW:
        etag = f'"{text}.raw"'
        if _matches(request, etag):
            return Response(status_code=304, headers={**headers, "Etag": etag})
        data = container.ipfs.block(parsed)
        headers.update(
            {
                "Etag": etag,
                "Content-Disposition": f'attachment; filename="{text}.bin"',
                "Content-Length": str(len(data)),
            }
        )
        return Response(b"" if request.method == "HEAD" else data, media_type=RAW, headers=headers)
    etag = f'W/"{text}.car.{scope}.unk.n"'
    if _matches(request, etag):
        return Response(status_code=304, headers={**headers, "Etag": etag})
    located = container.ipfs.locate(parsed)  # 404 before any byte when the hub has no model with this CID
    headers.update({"Etag": etag, "Content-Disposition": f'attachment; filename="{text}.car"', "Accept-Ranges": "none"})
    media = f"{CAR}; version=1; order=unk; dups=n"
    if request.method == "HEAD":
        return Response(media_type=media, headers=headers)
    stream = container.ipfs.car(parsed, located, scope)
    on_complete = _download_recorder(request, caller, located)
    return StreamingResponse(
        iterate_in_threadpool(_coalesced(stream, text, on_complete)), media_type=media, headers=headers
    )


def _matches(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    return wanted is not None and (wanted.strip() == "*" or etag in [t.strip() for t in wanted.split(",")])


def _download_recorder(request: Request, caller: Caller, located: Located) -> Callable[[], None]:
    """Log a `download` usage event before the last piece of a version's or file's CAR goes out.

    A CAR of an inner block records nothing.
    """
    from aiprov.api.routes.inference import download_recorder

    record = located.record
    if record is None:
        return lambda: None
    details: dict[str, object] = {
        "version": record.number,
        "files": 1 if located.path else len(record.manifest.entries),
    }
    if located.path is not None:
        details["path"] = located.path
    details["cid"] = str(located.cid)
    return download_recorder(request, caller, record, details)


def _coalesced(stream: Iterator[bytes | memoryview], cid: str, on_complete: Callable[[], None]) -> Iterator[bytes]:
    """The CAR in ~1 MiB pieces (one thread hop each, not one per block part); log a failure before the cut.

    Each piece is held until the next is full, so `on_complete` runs before the last one goes out.
    """
    buffer = bytearray()
    full: bytes | None = None
    try:
        for part in stream:
            buffer += part
            if len(buffer) >= PIECE:
                if full is not None:
                    yield full
                full = bytes(buffer)
                buffer.clear()
    except Exception:
        log.exception("CAR of %s aborted", cid)
        raise
    on_complete()  # before the last piece: a CAR that arrives whole is in the log
    if full is not None:
        yield full
    if buffer:
        yield bytes(buffer)
