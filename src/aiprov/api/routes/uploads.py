"""Blob uploads (streaming, resumable), version commits, and downloads verified on the way out.

    HEAD /api/v1/blobs/sha256:<hex>            200 + Content-Length when stored; 404 + Upload-Offset otherwise
    GET  /api/v1/blobs/sha256:<hex>/status     {"digest", "stored", "size", "offset"} (offset: your kept bytes)
    PUT  /api/v1/blobs/sha256:<hex>            the bytes; `Content-Range: bytes S-E/T` or `?offset=S` continues
    GET  /api/v1/blobs/sha256:<hex>            the bytes of a blob a registered version or dataset holds
    POST /api/v1/models/{owner}/{name}/versions             commit a manifest of uploaded blobs (scanned)
    GET  /api/v1/models/{owner}/{name}/versions/{n}/files/{path}   one file of a version (a `download` event)

A PUT answers 201 (stored), 200 (was already stored; the body is not read), 202 (`Content-Range` announced more
bytes than came: kept, continue at `offset`), 422 (the bytes do not hash to the URL's digest; nothing kept). A PUT
of a blob that another request of the same uploader is writing waits for it (up to UPLOAD_WAIT_S, then 409).
A request body is never held in memory: it is written to the upload's file in 1 MiB pieces on a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect

from aiprov.api.deps import CallerDep, ContainerDep, check_namespace, require_write
from aiprov.api.limits import JsonRoute
from aiprov.api.params import Name, Owner, Selector
from aiprov.config import Container
from aiprov.core.digest import Digest
from aiprov.core.manifest import MAX_PATH_BYTES, Manifest, ManifestEntry
from aiprov.errors import Busy, InvalidInput, NotFound, RangeNotSatisfiable
from aiprov.services.registry import PushRequest
from aiprov.services.uploads import BlobUpload, UploadResult, UploadService

router = APIRouter(tags=["uploads and downloads"], route_class=JsonRoute)
log = logging.getLogger("aiprov.api.uploads")

WRITE_CHUNK = 1024 * 1024
"""Request bytes are gathered to this size before a worker thread writes and hashes them."""
UPLOAD_WAIT_S = 30.0
"""How long a PUT waits for another request of the same uploader writing the same blob (the same model pushed
twice at once, or a retry that overtook the request the server has not yet seen cut) before it is a 409. Once
that request is done, the waiting one finds the blob stored (200) or continues the bytes it kept."""

# ASCII digits only (`\d` would take any script's digits); `_position` reads them.
_CONTENT_RANGE = re.compile(r"bytes +([0-9]+)-([0-9]+)/([0-9]+|\*)")
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")

BEYOND = 2**63
"""Where a byte position of more than 18 digits is taken to be: past the end of any blob (and of `int()`'s
4,300-digit limit), so `bytes=<huge>-` is a 416 and `bytes=-<huge>` the whole blob, as RFC 9110 reads them."""


async def stream_into(request: Request, write: Callable[[bytes], object], pending: bytearray) -> None:
    """Hand the request body to `write` in pieces of WRITE_CHUNK bytes, each in a thread (writes block).

    `pending` holds what arrived but was not written yet: a caller keeps it when the client disconnects.
    """
    async for chunk in request.stream():
        pending += chunk
        if len(pending) >= WRITE_CHUNK:
            data = bytes(pending)
            pending.clear()
            await run_in_threadpool(write, data)
    if pending:
        data = bytes(pending)
        pending.clear()
        await run_in_threadpool(write, data)


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else BEYOND


DigestPath = Annotated[str, "sha256:<64 hex digits>"]


class _FilePath(Convertor[str]):
    r"""Starlette's `path` convertor, but matching any character.

    `path` is `.*`, and `.` matches no newline: a file recorded before the path rules (`a\nb.json`, requested as
    `a%0Ab.json`) matched no route, so it could never be downloaded. Control characters in a new path are
    refused at commit (`core.manifest.check_file_path`); an old one is served under its percent-encoded name.
    """

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("file_path", _FilePath())


class FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="POSIX relative path inside the model")
    size: int = Field(ge=0)
    sha256: str = Field(description="64 hex digits (or sha256:<hex>) of an uploaded blob")


class VersionCreate(BaseModel):
    """A manifest of uploaded blobs and what the author says about the model (as `aiprov push` options)."""

    model_config = ConfigDict(extra="forbid")

    files: list[FileIn] = Field(min_length=1)
    description: str | None = None
    license: str | None = None
    tags: list[str] = Field(default_factory=list)
    parents: list[str] = Field(default_factory=list)
    datasets: list[str] = Field(default_factory=list)
    code_revision: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    single_file: bool = Field(default=False, description="a one-file model pushed as a file, not a directory")

    def manifest(self) -> Manifest:
        """The manifest these files make. Raises InvalidInput."""
        return Manifest.build(
            ManifestEntry(f.path, f.size, Digest.parse(f.sha256) if ":" in f.sha256 else Digest(f.sha256.lower()))
            for f in self.files
        )


def uploads(container: Container) -> UploadService:
    return UploadService(container.blobs, max_blob_bytes=container.settings.max_blob_mb * 2**20)


def _digest_headers(digest: Digest, size: int) -> dict[str, str]:
    sha = base64.b64encode(digest.raw).decode()
    return {
        "Content-Length": str(size),
        "Repr-Digest": f"sha-256=:{sha}:",
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
    }


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a `Range: bytes=S-E`, `bytes=S-` or `bytes=-N` header; None to send the whole.

    Several ranges are answered with the whole representation (RFC 9110 lets a server ignore Range). Raises
    RangeNotSatisfiable for a range that starts past the end.
    """
    if header is None:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        return None
    first, last = m[1], m[2]
    if first == "":
        if not last or _position(last) == 0:
            raise RangeNotSatisfiable(f"range {_shown(header)} selects no bytes", size=size)
        return max(size - _position(last), 0), size - 1
    start = _position(first)
    stop = size - 1 if last == "" else min(_position(last), size - 1)
    if start >= size or stop < start:
        raise RangeNotSatisfiable(f"range {_shown(header)} is outside the {size}-byte representation", size=size)
    return start, stop


def _shown(header: str) -> str:
    """A header as a message quotes it: repr (control characters escaped), cut to 80 characters."""
    return repr(header) if len(header) <= 80 else f"{header[:80]!r}…"


def download_response(
    digest: Digest, size: int, range_header: str | None, stream: Callable[[int, int | None], Iterator[bytes]]
) -> StreamingResponse:
    """A 200 of the whole blob, or a 206 of the requested range; both verified on the way out by `stream`.

    `stream(start, stop)` yields the bytes `start`..`stop` (inclusive; None: to the end). Raises
    RangeNotSatisfiable for a range past the end.
    """
    headers = _digest_headers(digest, size)
    chosen = byte_range(range_header, size)
    if chosen is None:
        return StreamingResponse(
            _logged(stream(0, None), digest), media_type="application/octet-stream", headers=headers
        )
    start, stop = chosen
    headers["Content-Length"] = str(stop - start + 1)
    headers["Content-Range"] = f"bytes {start}-{stop}/{size}"
    return StreamingResponse(
        _logged(stream(start, stop), digest), status_code=206, media_type="application/octet-stream", headers=headers
    )


def parse_range(header: str | None, offset: int | None) -> tuple[int, int | None]:
    """(start, total) of a PUT: from `Content-Range: bytes S-E/T` (T may be `*`), else `?offset=`, else (0, None).

    Raises InvalidInput for a malformed range.
    """
    if header is None:
        return (offset or 0), None
    m = _CONTENT_RANGE.fullmatch(header.strip())
    if m is None:
        raise InvalidInput(f"Content-Range {_shown(header)} is not `bytes START-END/TOTAL`")
    start, end = _position(m[1]), _position(m[2])
    total = None if m[3] == "*" else _position(m[3])
    if end < start or (total is not None and end >= total) or (offset is not None and offset != start):
        raise InvalidInput(f"Content-Range {_shown(header)} is inconsistent")
    return start, total


@router.head("/blobs/{digest}", summary="Is a blob stored? (else how much of your upload is kept)")
def head_blob(digest: DigestPath, container: ContainerDep, caller: CallerDep) -> Response:
    """200 with Content-Length when stored; else 404 with `Upload-Offset`: the bytes of your upload kept."""
    d = Digest.parse(digest)
    status = uploads(container).status(d, caller.name)
    if status.stored:
        return Response(status_code=200, headers=_digest_headers(d, status.size or 0))
    return Response(status_code=404, headers={"Upload-Offset": str(status.offset)})


@router.get("/blobs/{digest}/status", summary="Upload status: stored, size, and the offset to resume at")
def blob_status(digest: DigestPath, container: ContainerDep, caller: CallerDep) -> dict[str, Any]:
    """`offset` is how many bytes of the caller's interrupted upload are kept (continue there). Needs a token."""
    return uploads(container).status(Digest.parse(digest), require_write(caller)).to_json()


@router.put(
    "/blobs/{digest}",
    status_code=201,
    summary="Upload a blob, streamed and verified against the digest; resumable",
    responses={200: {"description": "already stored"}, 202: {"description": "part kept; continue at offset"}},
)
async def put_blob(
    digest: DigestPath,
    request: Request,
    container: ContainerDep,
    caller: CallerDep,
    offset: Annotated[int | None, Query(ge=0, le=BEYOND, description="continue a kept upload at this byte")] = None,
) -> JSONResponse:
    """Stream the body into the store, hashing as it comes; publish it only if it hashes to `digest`.

    Raises Unauthorized/Forbidden (no write token), InvalidInput (bad digest or range, bytes that do not match:
    nothing kept), TooLarge, Conflict (offset beyond the kept bytes), Busy (409: another request of the caller
    still writes the same blob after UPLOAD_WAIT_S).
    """
    uploader = require_write(caller)
    d = Digest.parse(digest)
    start, total = parse_range(request.headers.get("content-range"), offset)
    upload = await _begin_when_free(uploads(container), d, uploader, start, total)
    if isinstance(upload, UploadResult):  # stored already, or meanwhile by the request this one waited for
        return JSONResponse(upload.to_json(), status_code=200)
    buffer = bytearray()
    try:
        await stream_into(request, upload.write, buffer)
    except ClientDisconnect:
        await run_in_threadpool(_keep, upload, bytes(buffer))
        log.info("upload of %s by %s cut at byte %d; kept for a retry", d, uploader, upload.offset)
        return JSONResponse({"detail": "client disconnected"}, status_code=400)
    except BaseException:
        upload.suspend()  # a no-op once a refused write discarded the upload
        raise
    result = await run_in_threadpool(upload.finish)
    status = 202 if not result.complete else 201 if result.new else 200
    return JSONResponse(result.to_json(), status_code=status)


@router.get(
    "/blobs/{digest}",
    summary="Download a blob by digest (verified on the way out)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_blob(digest: DigestPath, request: Request, container: ContainerDep, caller: CallerDep) -> StreamingResponse:
    """The bytes of a blob that a registered version or dataset holds; the stream is cut if they were altered.

    `Range: bytes=S-E` (or `S-`, `-N`) answers 206 with those bytes, verified like the whole. Raises NotFound
    (also for a blob uploaded but never committed), RangeNotSatisfiable (416).
    """
    d = Digest.parse(digest)
    if not container.blobs.exists(d) or not container.registry.blob_in_use(d):
        raise NotFound(f"no registered model or dataset holds blob {d}")
    service = uploads(container)
    return download_response(
        d,
        container.blobs.size(d),
        request.headers.get("range"),
        lambda start, stop: service.read_verified(d, start=start, end=stop),
    )


@router.post(
    "/models/{owner}/{name}/versions",
    status_code=201,
    summary="Commit a version from uploaded blobs (scanned as `aiprov push` scans; unsafe is refused)",
    responses={200: {"description": "the same bytes were already this model's version (deduplicated)"}},
)
def commit_version(
    owner: Owner, name: Name, body: VersionCreate, container: ContainerDep, caller: CallerDep
) -> JSONResponse:
    """Register the manifest as a new version of OWNER/NAME; the `aiprov push --json` document.

    Raises Unauthorized, Forbidden (another owner's namespace), InvalidInput (a blob not uploaded, a wrong size,
    bad metadata), NotFound (unknown parent), UnsafeModelError (422 with `findings`; the files are quarantined).
    """
    actor = check_namespace(caller, owner)
    request = PushRequest(
        name=f"{owner}/{name}",
        description=body.description,
        license=body.license,
        tags=body.tags,
        parents=body.parents,
        datasets=body.datasets,
        code_revision=body.code_revision,
        params=body.params,
        metadata=body.metadata,
    )
    result = container.registry.commit(body.manifest(), request, single_file=body.single_file, actor=actor)
    return JSONResponse(result.to_json(), status_code=200 if result.deduplicated else 201)


@router.get(
    "/models/{owner}/{name}/versions/{version}/files/{path:file_path}",
    summary="Download one file of a version (verified on the way out; recorded as a download)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_file(
    owner: Owner,
    name: Name,
    version: Selector,
    path: Annotated[str, Path(max_length=MAX_PATH_BYTES)],
    request: Request,
    container: ContainerDep,
    caller: CallerDep,
) -> StreamingResponse:
    """`version` is a number or an alias. The download is a usage event, committed before the last byte is sent.

    `Range: bytes=S-` continues a cut download (206; the bytes are verified like the whole file, and the usage
    event is recorded by the request that sends the file's last byte).

    Raises NotFound (model, version or path), InvalidInput.
    """
    from aiprov.api.routes.inference import download_recorder

    _, record = container.registry.show(f"{owner}/{name}@{version}")
    entry = next((e for e in record.manifest.entries if e.path == path), None)
    if entry is None:
        raise NotFound(f"{record.ref} has no file {path!r}")
    on_complete = download_recorder(request, caller, record, {"version": record.number, "files": 1, "path": entry.path})
    service = uploads(container)
    return download_response(
        entry.sha256,
        entry.size,
        request.headers.get("range"),
        lambda start, stop: service.read_verified(entry.sha256, on_complete, start=start, end=stop),
    )


async def _begin_when_free(
    service: UploadService, digest: Digest, uploader: str, start: int, total: int | None
) -> BlobUpload | UploadResult:
    """`service.begin`, waiting up to UPLOAD_WAIT_S while another request of the uploader writes the same blob.

    Polled with asyncio sleeps, so a waiting request holds no worker thread: the request it waits for needs
    them to write. Raises Busy (409) past the bound, and what `begin` raises.
    """
    deadline = time.monotonic() + UPLOAD_WAIT_S
    pause = 0.005
    while True:
        try:
            return await run_in_threadpool(lambda: service.begin(digest, uploader, start=start, total=total))
        except Busy:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Busy(
                    f"blob {digest} is still being uploaded by another request of yours after {UPLOAD_WAIT_S:g} s",
                    hint="retry once that upload finished",
                ) from None
        await asyncio.sleep(min(pause, left))
        pause = min(2 * pause, 0.25)


def _keep(upload: BlobUpload, received: bytes) -> None:
    """Write what arrived before the cut, and keep the upload for a retry."""
    if received:
        upload.write(received)
    upload.suspend()


def _logged(stream: Iterator[bytes], digest: Digest) -> Iterator[bytes]:
    """Pass the stream through; if it fails mid-way (altered bytes), say so in the log before the cut."""
    try:
        yield from stream
    except Exception:
        log.exception("download of %s aborted", digest)
        raise
