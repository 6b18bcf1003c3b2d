"""The Hugging Face Hub download protocol, so `huggingface_hub` and `transformers` read from this hub.

    HEAD|GET /{owner}/{name}/resolve/{revision}/{path}        a file (`Range` continues a cut download)
    GET /api/models/{owner}/{name}[/revision/{revision}]      `sha` (the commit id) and `siblings`
    GET /api/models/{owner}/{name}/tree/{revision}[/{path}]   `?recursive=`, paged with `Link: <…>; rel="next"`

Set `HF_ENDPOINT` to the hub's URL and `HF_TOKEN` to an aiprov API token. Revisions are resolved by
`services.hf.HfRepos` (`main`, a version number, an alias, or the 40-hex commit id of `core.hf`). Every file is
answered as the Hub answers a Git LFS file: `ETag` is its SHA-256, with `X-Repo-Commit` and `X-Linked-Size`. The
bytes are those of `/api/v1/models/.../files/...`: verified on the way out, and each download a usage event.

An error carries `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo: no token where one is
needed) and `X-Error-Message`, which the client turns into its exception classes.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from aiprov.api.deps import CallerDep, ContainerDep
from aiprov.api.errors import error_response
from aiprov.api.routes.uploads import download_response, uploads
from aiprov.core.hf import TreeItem, commit_id, lfs_pointer, pointer_oid
from aiprov.core.manifest import MAX_PATH_BYTES, ManifestEntry
from aiprov.errors import AiprovError, HfNotFound, InvalidInput, Unauthorized
from aiprov.records import ModelRecord, VersionRecord, iso
from aiprov.services.hf import HfRepos

TREE_PAGE = 1000
"""Items per page of a tree listing, as the Hub pages them."""
GATED = "GatedRepo"
BAD_TOKEN = "Invalid credentials in Authorization header"
"""The Hub's message for a token it does not know: its clients then raise an HTTP error, not RepoNotFound."""


def _header_text(text: str, limit: int = 500) -> str:
    """`text` as an HTTP header value: ASCII, control and other characters escaped, at most `limit` long."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


class HfRoute(APIRoute):
    """A route whose errors also carry the Hub's `X-Error-Code`/`X-Error-Message` (and `X-Repo-Commit`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def with_hub_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except AiprovError as exc:
                response = error_response(exc)
                headers = response.headers
                headers["X-Error-Message"] = _header_text(exc.diagnostics())
                if isinstance(exc, HfNotFound):
                    headers["X-Error-Code"] = exc.hf_code
                    if exc.commit is not None:
                        headers["X-Repo-Commit"] = exc.commit
                elif isinstance(exc, Unauthorized):
                    if request.headers.get("authorization") is None:
                        headers["X-Error-Code"] = GATED  # the hub needs a token to read anything
                    else:
                        headers["X-Error-Message"] = BAD_TOKEN
                return response

        return with_hub_errors


router = APIRouter(tags=["hugging face hub"], route_class=HfRoute)

HfOwner = Annotated[str, Path(max_length=96, description="The namespace: a user name.")]
HfName = Annotated[str, Path(max_length=160, description="The model's name.")]
Revision = Annotated[
    str, Path(max_length=96, description="`main` (the latest), a version number, an alias or a 40-hex commit id.")
]
FilePath = Annotated[str, Path(max_length=MAX_PATH_BYTES, description="A file's path in the model.")]


def _repos(container: ContainerDep) -> HfRepos:
    return HfRepos(container.registry)


def _file_headers(record: VersionRecord, entry: ManifestEntry) -> dict[str, str]:
    etag = f'"{entry.sha256.hex}"'
    return {
        "X-Repo-Commit": commit_id(record.manifest.digest),
        "ETag": etag,
        "X-Linked-Etag": etag,
        "X-Linked-Size": str(entry.size),
        "Accept-Ranges": "bytes",
    }


@router.head("/{owner}/{name}/resolve/{revision}/{path:file_path}", summary="A file's metadata (Hub protocol)")
@router.get(
    "/{owner}/{name}/resolve/{revision}/{path:file_path}",
    summary="Download a file (Hub protocol; verified on the way out, recorded as a download)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "the requested range"}},
)
def resolve(
    request: Request,
    container: ContainerDep,
    caller: CallerDep,
    owner: HfOwner,
    name: HfName,
    revision: Revision,
    path: FilePath,
) -> Response:
    """The file `path` of the version `revision` names, as `huggingface_hub.hf_hub_download` fetches it.

    HEAD answers the headers only (`X-Repo-Commit`, `ETag` = the file's sha256, `X-Linked-Size`). GET streams the
    bytes, verified against the manifest on the way out; `Range: bytes=S-` continues a cut download (206). The
    request that sends a file's last byte records the `download` usage event first.
    """
    from aiprov.api.routes.inference import download_recorder

    repos = _repos(container)
    _, record = repos.resolve(owner, name, revision)
    entry = repos.entry(record, path)
    headers = _file_headers(record, entry)
    if request.method == "HEAD":
        headers["Content-Length"] = str(entry.size)
        return Response(media_type="application/octet-stream", headers=headers)
    on_complete = download_recorder(
        request, caller, record, {"version": record.number, "files": 1, "path": entry.path, "api": "hf"}
    )
    service = uploads(container)
    response = download_response(
        entry.sha256,
        entry.size,
        request.headers.get("range"),
        lambda start, stop: service.read_verified(entry.sha256, on_complete, start=start, end=stop),
    )
    response.headers.update(headers)
    return response


def _lfs(entry: ManifestEntry) -> dict[str, Any]:
    return {
        "oid": entry.sha256.hex,
        "sha256": entry.sha256.hex,
        "size": entry.size,
        "pointerSize": len(lfs_pointer(entry.sha256, entry.size)),
    }


def _model_info(model: ModelRecord, record: VersionRecord, private: bool) -> dict[str, Any]:
    siblings = [
        {"rfilename": e.path, "size": e.size, "blobId": pointer_oid(e), "lfs": _lfs(e)} for e in record.manifest.entries
    ]
    return {
        "_id": record.full_name,
        "id": record.full_name,
        "modelId": record.full_name,
        "author": record.owner,
        "sha": commit_id(record.manifest.digest),
        "lastModified": iso(record.created_at),
        "createdAt": iso(model.created_at),
        "private": private,
        "gated": False,
        "disabled": False,
        "tags": list(model.tags),
        "cardData": {"license": model.license} if model.license else {},
        "siblings": siblings,
        "aiprov": {"version": record.number, "digest": str(record.manifest.digest), "aliases": list(record.aliases)},
    }


@router.get("/api/models/{owner}/{name}", summary="A model's latest version (Hub protocol)")
def model_info(container: ContainerDep, owner: HfOwner, name: HfName) -> JSONResponse:
    """`HfApi.model_info`: `sha` is the latest version's commit id, `siblings` its files."""
    model, record = _repos(container).resolve(owner, name, "main")
    return JSONResponse(_model_info(model, record, not container.settings.anonymous_reads))


@router.get("/api/models/{owner}/{name}/revision/{revision}", summary="A model at a revision (Hub protocol)")
def model_info_at(container: ContainerDep, owner: HfOwner, name: HfName, revision: Revision) -> JSONResponse:
    """`HfApi.model_info(revision=...)`, which `snapshot_download` asks first: `sha` is the commit id."""
    model, record = _repos(container).resolve(owner, name, revision)
    return JSONResponse(_model_info(model, record, not container.settings.anonymous_reads))


def _tree_item(item: TreeItem, record: VersionRecord, expand: bool) -> dict[str, Any]:
    out: dict[str, Any]
    if item.entry is None:
        out = {"type": "directory", "oid": item.oid, "size": 0, "path": item.path}
    else:
        out = {"type": "file", "oid": item.oid, "size": item.entry.size, "path": item.path, "lfs": _lfs(item.entry)}
    if expand:
        commit = commit_id(record.manifest.digest)
        out["lastCommit"] = {"id": commit, "title": f"version {record.number}", "date": iso(record.created_at)}
    return out


Recursive = Annotated[bool, Query(description="List everything below the directory, not only its children.")]
Expand = Annotated[bool, Query(description="Add each item's `lastCommit`.")]
Cursor = Annotated[str | None, Query(max_length=20, pattern="^[0-9]+$", description="Where the page starts.")]
Limit = Annotated[int, Query(ge=1, le=TREE_PAGE, description="Items per page.")]


def _tree(
    request: Request,
    container: ContainerDep,
    owner: str,
    name: str,
    revision: str,
    path: str,
    recursive: bool,
    expand: bool,
    cursor: str | None,
    limit: int,
) -> JSONResponse:
    repos = _repos(container)
    _, record = repos.resolve(owner, name, revision)
    items = repos.tree(record, path, recursive=recursive)
    start = int(cursor) if cursor is not None else 0
    if start > len(items):
        raise InvalidInput(f"cursor {start} is past the {len(items)} items of the listing")
    page = items[start : start + limit]
    headers = {"X-Repo-Commit": commit_id(record.manifest.digest)}
    if start + limit < len(items):
        following = request.url.include_query_params(cursor=str(start + limit), limit=str(limit))
        headers["Link"] = f'<{following}>; rel="next"'
    return JSONResponse([_tree_item(i, record, expand) for i in page], headers=headers)


@router.get("/api/models/{owner}/{name}/tree/{revision}", summary="A model's files at a revision (Hub protocol)")
def tree_root(
    request: Request,
    container: ContainerDep,
    owner: HfOwner,
    name: HfName,
    revision: Revision,
    recursive: Recursive = False,
    expand: Expand = False,
    cursor: Cursor = None,
    limit: Limit = TREE_PAGE,
) -> JSONResponse:
    """`HfApi.list_repo_tree`: the top directory's items (`recursive`: every file and directory), in pages."""
    return _tree(request, container, owner, name, revision, "", recursive, expand, cursor, limit)


@router.get(
    "/api/models/{owner}/{name}/tree/{revision}/{path:file_path}",
    summary="A directory's files at a revision (Hub protocol)",
)
def tree_under(
    request: Request,
    container: ContainerDep,
    owner: HfOwner,
    name: HfName,
    revision: Revision,
    path: FilePath,
    recursive: Recursive = False,
    expand: Expand = False,
    cursor: Cursor = None,
    limit: Limit = TREE_PAGE,
) -> JSONResponse:
    """As the top listing, for the directory `path` (EntryNotFound if the version has none)."""
    return _tree(request, container, owner, name, revision, path, recursive, expand, cursor, limit)
