"""The Hugging Face Hub upload protocol: `HfApi().create_repo`, `upload_file`, `upload_folder`, `create_commit`.

    POST /api/repos/create                                   checks the namespace (a model exists from its first commit)
    POST /api/models/{owner}/{name}/preupload/{revision}     `lfs` above `lfs_threshold`, else `regular` (inline)
    POST /api/models/{owner}/{name}/commit/{revision}        NDJSON: a new version, scanned like `aiprov push`
    POST /api/validate-yaml                                  a warning: model card metadata is not checked

A commit applies its added and deleted files to the latest version and registers the result through
`RegistryService.commit`, the path of `aiprov push` over the API: scanned (an unsafe file refuses the whole
commit, with the reason in `X-Error-Message`, which the client shows), registered and logged. Only the owner of
the namespace or an admin may write. Small files travel base64 inside the commit (`regular`), at most the body
limit (`AIPROV_MAX_BODY_MB`) together, which preupload checks before any byte is sent; larger ones (`lfs`) are
uploaded first through Xet (`hf_xet`) or the LFS batch API (`hf_lfs`) and named in the commit by sha256
(`lfsFile`), then scanned from the stored bytes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from aiprov.api.deps import CallerDep, ContainerDep, check_namespace
from aiprov.api.errors import problem
from aiprov.api.routes.hf import HfName, HfOwner, HfRoute, Revision
from aiprov.api.routes.hf_lfs import lfs_uploads
from aiprov.core.hf import commit_id
from aiprov.core.names import ModelName
from aiprov.errors import Conflict, InvalidInput, NotFound, TooLarge
from aiprov.services.hf import HfCommit, HfRepos, commit
from aiprov.services.hf_lfs import lfs_threshold

router = APIRouter(tags=["hugging face hub"], route_class=HfRoute)

BASE64_RATIO = 4 / 3
"""How much larger a file is once base64-encoded inside a commit."""


class RepoCreate(BaseModel):
    model_config = ConfigDict(extra="allow")  # visibility, private, sdk…: accepted, nothing to set here

    name: Annotated[str, Field(min_length=1, max_length=128)]
    organization: Annotated[str | None, Field(max_length=64)] = None
    type: Annotated[str | None, Field(max_length=16)] = None


@router.post("/api/repos/create", summary="Create a repo (Hub protocol)")
def create_repo(request: Request, container: ContainerDep, caller: CallerDep, body: RepoCreate) -> JSONResponse:
    """`HfApi.create_repo`: 200 with the repo's `url` if the caller may write there, 409 if the model exists.

    aiprov has no empty models: the model is registered by its first commit.
    """
    if body.type not in (None, "model"):
        raise InvalidInput(f"this hub holds models, not {body.type}s")
    owner = body.organization or caller.name or ""
    check_namespace(caller, owner)
    full = str(ModelName.parse(f"{owner}/{body.name}"))
    url = f"{str(request.base_url).rstrip('/')}/{full}"
    try:
        container.registry.show(full)
    except NotFound:
        return JSONResponse({"url": url, "name": full})
    message = f"You already created this model repo: {full}"  # the client's `exist_ok` reads `url` from the 409
    return problem(409, "conflict", message, headers={"X-Error-Message": message}, url=url, code=Conflict.code)


CreatePr = Annotated[str | None, Query(max_length=8, description="Refused: this hub has no pull requests.")]


def _no_pull_request(create_pr: str | None) -> None:
    if create_pr not in (None, "", "0", "false"):
        raise InvalidInput("this hub has no pull requests: a commit goes to main", hint="commit without create_pr")


class YamlCheck(BaseModel):
    model_config = ConfigDict(extra="allow")

    content: Annotated[str, Field(max_length=1_000_000)] = ""


@router.post("/api/validate-yaml", summary="Model card metadata: not checked here (Hub protocol)")
def validate_yaml(caller: CallerDep, body: YamlCheck) -> dict[str, Any]:
    """What the client asks before it uploads a README.md: this hub does not check model cards, and says so."""
    return {"errors": [], "warnings": [{"message": "this hub does not validate model card metadata"}]}


class PreuploadFile(BaseModel):
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    size: Annotated[int, Field(ge=0)]
    sample: Annotated[str, Field(max_length=1024)] = ""


class Preupload(BaseModel):
    model_config = ConfigDict(extra="allow")  # gitIgnore: nothing is ignored here

    files: Annotated[list[PreuploadFile], Field(max_length=10_000)]


@router.post("/api/models/{owner}/{name}/preupload/{revision}", summary="Plan an upload (Hub protocol)")
def preupload(
    container: ContainerDep,
    caller: CallerDep,
    owner: HfOwner,
    name: HfName,
    revision: Revision,
    body: Preupload,
    create_pr: CreatePr = None,
) -> dict[str, Any]:
    """`lfs` for a file above `lfs_threshold` (uploaded through the LFS batch API), else `regular` (inline).

    The regular files must fit in one commit body once encoded, else a 413 before any byte is sent.
    """
    check_namespace(caller, owner)
    _no_pull_request(create_pr)
    limit = container.settings.max_body_mb * 2**20
    threshold = lfs_threshold(limit)
    modes = {f.path: "lfs" if f.size > threshold else "regular" for f in body.files}
    total = sum(f.size for f in body.files if modes[f.path] == "regular") * BASE64_RATIO
    if total > limit:
        raise TooLarge(
            f"these files make a commit of {total / 2**20:.1f} MiB once encoded; this hub takes at most "
            f"{container.settings.max_body_mb} MiB per commit",
            hint="commit them in smaller groups, or push with `aiprov push` (no size limit, resumable)",
        )
    return {"files": [{"path": f.path, "uploadMode": modes[f.path], "shouldIgnore": False} for f in body.files]}


_NDJSON = {
    "type": "array",
    "description": "One JSON object a line: a `header` ({summary, description, parentCommit?}), then `file` "
    "({path, content: base64, encoding: base64}), `lfsFile` ({path, algo: sha256, oid, size}: uploaded before "
    "through the LFS batch API), `deletedFile` and `deletedFolder` ({path}) operations.",
    "items": {
        "type": "object",
        "required": ["key", "value"],
        "properties": {
            "key": {"type": "string", "enum": ["header", "file", "lfsFile", "deletedFile", "deletedFolder"]},
            "value": {"type": "object"},
        },
    },
}


@router.post(
    "/api/models/{owner}/{name}/commit/{revision}",
    summary="Commit files as a new version (Hub protocol; scanned as `aiprov push` scans)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/x-ndjson": {"schema": _NDJSON}}}},
)
async def commit_files(
    request: Request,
    container: ContainerDep,
    caller: CallerDep,
    owner: HfOwner,
    name: HfName,
    revision: Revision,
    create_pr: CreatePr = None,
) -> JSONResponse:
    """`HfApi.create_commit`: the latest version with these files added and deleted becomes a new version.

    Answers `commitOid` (the new version's commit id). Raises Unauthorized, Forbidden (another owner's namespace),
    InvalidInput (also an `lfsFile` the caller did not upload), Conflict (a stale `parentCommit`),
    UnsafeModelError (422, nothing registered).
    """
    actor = check_namespace(caller, owner)
    _no_pull_request(create_pr)
    change = HfCommit.parse(await request.body())
    repos = HfRepos(container.registry)
    lfs = lfs_uploads(container)
    result = await run_in_threadpool(commit, repos, container.blobs, lfs, owner, name, revision, change, actor)
    oid = commit_id(result.version.manifest.digest)
    url = f"{str(request.base_url).rstrip('/')}/{owner}/{name}/commit/{oid}"
    return JSONResponse(
        {"success": True, "commitOid": oid, "commitUrl": url, "hookOutput": "", "aiprov": result.to_json()}
    )
