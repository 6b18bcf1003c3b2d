"""Inference and usage over HTTP: predict, the seed's `/infer/{digest}`, and usage per model and per user.

Endpoints: `POST /api/v1/models/{owner}/{name}/predict`, `POST /infer/{digest}`,
`POST /api/v1/models/{owner}/{name}/load`, `GET /api/v1/models/{owner}/{name}/usage`, `GET /api/v1/users/{user}/usage`.

A version is picked by `?version=N|alias` or in the path (`/models/alice/iris@prod/predict`); the latest by
default. The body is read raw and parsed once by the service (no Pydantic pass over a large array; the schema
below is for the docs), the request awaits the sandboxed worker's answer on the event loop (no thread hop), and
the answer is encoded with orjson when it is installed. Every prediction is a usage event whose actor is the
caller's user name, answered only once the event is committed to the log (`services.usage`: group commit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from aiprov.api.deps import Caller, CallerDep, ContainerDep, authenticate, require_write
from aiprov.api.schemas import Problem, VersionOut
from aiprov.config import Container
from aiprov.errors import InvalidInput
from aiprov.records import VersionRecord
from aiprov.services.usage import DOWNLOAD, USAGE_ACTIONS, Usage, UsageQueries

try:
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - orjson is optional

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


router = APIRouter(tags=["inference"], responses={404: {"model": Problem}, 422: {"model": Problem}})
predict_router = APIRouter(tags=["inference"], responses={404: {"model": Problem}, 422: {"model": Problem}})
"""The hot path: its routes take only the request and authenticate it themselves (`deps.authenticate`), so a
prediction pays for no dependency solving or parameter models (measured: ~0.15 ms of CPU per request)."""
infer_router = APIRouter(tags=["inference"], responses={404: {"model": Problem}, 422: {"model": Problem}})


@dataclass(frozen=True, slots=True)
class _TextParam:
    """A text path or query parameter, declared once.

    Its OpenAPI entry, its FastAPI declaration and the hot path's own check all come from here, so the three
    cannot disagree on its limits.
    """

    name: str
    source: str  # "path" or "query"
    min_length: int
    max_length: int
    description: str

    def openapi(self) -> dict[str, Any]:
        """The parameter's OpenAPI entry (the hot-path routes declare theirs by hand, see `predict_router`)."""
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.min_length:
            schema["minLength"] = self.min_length
        required = self.source == "path"
        return {
            "name": self.name,
            "in": self.source,
            "required": required,
            "schema": schema,
            "description": self.description,
        }

    def declared(self) -> Any:
        """The FastAPI `Path` or `Query` declaring this parameter (for routes that let FastAPI check it)."""
        kind = Path if self.source == "path" else Query
        min_length = self.min_length or None
        return kind(min_length=min_length, max_length=self.max_length, description=self.description)

    def read(self, request: Request) -> str | None:
        """The parameter's value, checked as FastAPI would check it. Raises InvalidInput (422)."""
        value = request.path_params.get(self.name) if self.source == "path" else _query(request, self.name)
        if value is not None and not self.min_length <= len(value) <= self.max_length:
            raise InvalidInput(
                f"{self.source}.{self.name}: between {self.min_length} and {self.max_length} characters, "
                f"not {len(value)}"
            )
        return value


_OWNER = _TextParam("owner", "path", 1, 64, "The namespace: a user name.")
_NAME = _TextParam("name", "path", 1, 200, "The model's name, optionally with `@N` or `@alias`.")
_VERSION = _TextParam("version", "query", 0, 64, "Number or alias; default the latest.")
_DIGEST = _TextParam("digest", "path", 4, 71, "`sha256:<hex>` or a hex prefix.")

Owner = Annotated[str, _OWNER.declared()]
Name = Annotated[str, _NAME.declared()]
Version = Annotated[str | None, _VERSION.declared()]
Proba = Annotated[bool, Query(description='Also return class probabilities (as does `"proba": true`).')]
Limit = Annotated[int, Query(ge=1, le=10_000)]
Action = Annotated[str | None, Query(pattern="^(inference|download)$", description="Only this kind of use.")]


class PredictIn(BaseModel):
    """Rows in the model's feature order (`inputs`), or named values (`records`); exactly one of them."""

    inputs: list[list[float | int | str | bool | None]] | None = Field(default=None, examples=[[[5.1, 3.5, 1.4, 0.2]]])
    records: list[dict[str, float | int | str | bool | None]] | None = None
    proba: bool = False


class ModelRefOut(BaseModel):
    name: str
    version: int
    digest: str


class PredictOut(BaseModel):
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None
    model: ModelRefOut


class UsageOut(BaseModel):
    id: int
    time: str
    actor: str
    action: str
    model: str | None
    digest: str = Field(description="The manifest digest of the version used.")
    leaf_index: int | None = Field(description="The event's index in the transparency log (for an inclusion proof).")
    details: dict[str, Any] = Field(description="version, rows, input_digest, latency_us (inference), files (download)")


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictIn.model_json_schema(ref_template="#/components/schemas/{model}")}
        },
    }
}
_PROBA_PARAM = {
    "name": "proba",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": 'Also return class probabilities (as does `"proba": true`).',
}
_PREDICT_PARAMS = [_OWNER.openapi(), _NAME.openapi(), _VERSION.openapi(), _PROBA_PARAM]
_INFER_PARAMS = [_DIGEST.openapi(), _PROBA_PARAM]
_PREDICT: dict[str, Any] = {
    "response_model": PredictOut,
    "responses": {
        404: {"model": Problem},
        413: {"model": Problem},
        422: {"model": Problem, "description": "Bad body or rows; or the model failed, timed out or hit a limit"},
        503: {"model": Problem},
    },
}


def download_recorder(
    request: Request, caller: Caller, record: VersionRecord, details: dict[str, Any]
) -> Callable[[], None]:
    """A callback that logs a `download` usage event of `record` by the caller, returning once it is committed.

    A route calls it before it sends the last byte (file downloads, gateway CARs), so a download that completes
    is in the log; the event's time is the request's. The callback raises as `UsageRecorder.record`.
    """
    container: Container = request.app.state.container
    recorder = container.usage_recorder
    usage = Usage(
        actor=caller.name or "anonymous",
        action=DOWNLOAD,
        digest=str(record.manifest.digest),
        model=record.full_name,
        time=container.clock(),
        details=details,
    )
    return lambda: recorder.record(usage)


async def _body(request: Request) -> bytes:
    """The whole request body, as `request.body()` reads it, without its async generator (a hot path).

    Raises ClientDisconnect if the caller goes away first.
    """
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _predict(request: Request, ref: str, actor: str, proba: bool) -> Response:
    try:
        body = await _body(request)
    except ClientDisconnect:  # the caller is gone: nothing to run, nobody to answer
        return Response(status_code=400)
    container: Container = request.app.state.container
    result = await container.inference.predict_async(ref, body, actor=actor, proba=proba)
    return Response(_dumps(result.to_json()), media_type="application/json")


def _ref(owner: str, name: str, version: str | None) -> str:
    base, at, selector = name.partition("@")
    if version is not None:
        selector = version.removeprefix("@")
    return f"{owner}/{base}@{selector}" if (at or version is not None) and selector else f"{owner}/{base}"


def _query(request: Request, name: str) -> str | None:
    """A query parameter; an empty query string is not parsed (a few microseconds per request on the hot path)."""
    return request.query_params.get(name) if request.scope["query_string"] else None


def _proba(request: Request) -> bool:
    value = _query(request, "proba")
    if value is None:
        return False
    flag = value.strip().lower()
    if flag in ("true", "1", "yes", "on"):
        return True
    if flag in ("false", "0", "no", "off"):
        return False
    raise InvalidInput(f"query.proba: {value!r} is not a boolean")


@predict_router.post(
    "/models/{owner}/{name}/predict",
    summary="Predict with a model",
    openapi_extra={**_BODY, "parameters": _PREDICT_PARAMS},
    **_PREDICT,
)
async def predict(request: Request) -> Response:
    """Run the model on the body's rows in a sandboxed worker that keeps it loaded; the call is logged as usage.

    Needs a token with the write scope (401 without one, 403 for a read-only token): every call is logged under
    the caller's name.

    Body: `{"inputs": [[5.1, 3.5, 1.4, 0.2]]}` or `{"records": [{"sepal length (cm)": 5.1, ...}]}`, and
    `"proba": true` for class probabilities. Answer: `{"predictions": [...], "probabilities"?: [[...]],
    "classes"?: [...], "model": {"name", "version", "digest"}}`.
    """
    owner = _OWNER.read(request) or ""
    name = _NAME.read(request) or ""
    version = _VERSION.read(request)
    proba = _proba(request)
    caller = await authenticate(request, request.app.state.container)
    return await _predict(request, _ref(owner, name, version), require_write(caller, "predicting"), proba)


@infer_router.post(
    "/infer/{digest}",
    summary="Predict with a version named by digest",
    openapi_extra={**_BODY, "parameters": _INFER_PARAMS},
    **_PREDICT,
)
async def infer(request: Request) -> Response:
    """The seed's endpoint: as `/api/v1/models/{owner}/{name}/predict`, the version named by its manifest digest."""
    digest = _DIGEST.read(request) or ""
    proba = _proba(request)
    caller = await authenticate(request, request.app.state.container)
    ref = digest if digest.lower().startswith("sha256:") else f"sha256:{digest}"
    return await _predict(request, ref, require_write(caller, "predicting"), proba)


@router.post(
    "/models/{owner}/{name}/load",
    response_model=VersionOut,
    summary="Load a model in a worker",
    responses={403: {"model": Problem}},
)
def load_model(
    container: ContainerDep, caller: CallerDep, owner: Owner, name: Name, version: Version = None
) -> dict[str, Any]:
    """Scan the version and load it in a sandboxed worker now, as `aiprov.Hub(server=...).load` does first.

    An unsafe version is refused (422, its findings) and no worker is started for it; a model that fails to load
    is a 422 too. Needs a token with the write scope, as predicting does. Answers the version that was loaded.
    """
    require_write(caller, "loading a model")
    return container.inference.load(_ref(owner, name, version)).to_json()


def _queries(container: Container) -> UsageQueries:
    return UsageQueries(container.checked_db)


def _usage_json(events: list[Any]) -> list[dict[str, Any]]:
    return [{**e.to_json(), "digest": e.subject, "leaf_index": e.leaf_index} for e in events]


@router.get("/models/{owner}/{name}/usage", response_model=list[UsageOut], summary="A model's usage")
def model_usage(
    container: ContainerDep,
    owner: Owner,
    name: Name,
    version: Version = None,
    action: Action = None,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    """Inferences and downloads of the model (or of one version), newest first; each is an entry of the log.

    Usage is written in batches a fraction of a second after it happens.
    """
    actions = USAGE_ACTIONS if action is None else (action,)
    events = _queries(container).of_model(_ref(owner, name, version), actions=actions, limit=limit)
    return _usage_json(events)


@router.get("/users/{user}/usage", response_model=list[UsageOut], summary="A user's usage")
def user_usage(
    container: ContainerDep,
    user: Annotated[str, Path(min_length=1, max_length=128, description="A user name, or `anonymous`.")],
    action: Action = None,
    limit: Limit = 100,
) -> list[dict[str, Any]]:
    """Inferences and downloads by `user`, any model, newest first."""
    actions = USAGE_ACTIONS if action is None else (action,)
    return _usage_json(_queries(container).of_user(user, actions=actions, limit=limit))
