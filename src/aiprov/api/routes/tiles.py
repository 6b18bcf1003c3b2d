"""The log as C2SP tlog-tiles at the root (`/checkpoint`, `/tile/<L>/<N>[.p/<W>]`, `/tile/entries/<N>[.p/<W>]`).

Any tiles client can follow the log from here. Tiles and entry bundles never change once they exist (a partial
one's width is in its path), so they are cacheable forever; the checkpoint is not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.responses import PlainTextResponse

from aiprov.api.deps import ContainerDep
from aiprov.api.limits import JsonRoute

router = APIRouter(tags=["tlog-tiles"], route_class=JsonRoute)

IMMUTABLE = "public, max-age=31536000, immutable"
BINARY = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="tlog-tiles checkpoint",
)
def checkpoint(container: ContainerDep) -> PlainTextResponse:
    """The latest signed checkpoint (same as `/api/v1/log/checkpoint`)."""
    return PlainTextResponse(container.log.latest().note, headers={"Cache-Control": "no-cache"})


@router.get("/tile/{path:path}", response_class=Response, responses={200: BINARY}, summary="tlog-tiles tile")
def tile(
    container: ContainerDep,
    path: Annotated[str, Path(max_length=200, description="`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.")],
) -> Response:
    """A hash tile or an entry bundle; a non-canonical path is a 422 problem, a tile the tree lacks a 404."""
    data = container.log.tile(f"tile/{path}")
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})
