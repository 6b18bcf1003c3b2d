"""`create_app(container)`: the FastAPI app over the container's services, and `app_from_env` for workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from starlette.types import Receive, Scope, Send

from aiprov import __version__
from aiprov.api import errors
from aiprov.api.deps import get_caller
from aiprov.api.fastpath import InferenceFastPath
from aiprov.api.limits import BodyLimit
from aiprov.api.routes import (
    accounts,
    audits,
    datasets,
    gateway,
    health,
    hf,
    hf_lfs,
    hf_upload,
    hf_xet,
    inference,
    jobs,
    log,
    models,
    pins,
    signatures,
    stake,
    tiles,
    uploads,
)
from aiprov.config import Container

API_PREFIX = "/api/v1"

# The routers the app serves, with the prefix each is mounted under. Add yours here, one line each, e.g.
#     (uploads.router, API_PREFIX),
#     (inference.router, API_PREFIX),
# Every router runs `get_caller` (a bad token is a 401 everywhere; anonymous reads can be switched off).
ROUTERS: list[tuple[APIRouter, str]] = [
    (models.router, API_PREFIX),
    (accounts.router, API_PREFIX),
    (log.router, API_PREFIX),
    (tiles.router, ""),
    (uploads.router, API_PREFIX),
    (inference.router, API_PREFIX),
    (datasets.router, API_PREFIX),
    (audits.router, API_PREFIX),
    (stake.router, API_PREFIX),
    (jobs.router, API_PREFIX),
    (signatures.router, API_PREFIX),
    (pins.router, API_PREFIX),
    (gateway.router, ""),
    (health.router, ""),
    (hf_lfs.router, ""),
    (hf_xet.router, ""),
    (hf_upload.router, ""),
    (hf.router, ""),  # last: its `/{owner}/{name}/resolve/...` must not shadow any route above
]

# Routers whose routes authenticate the request themselves (`deps.authenticate`): the inference hot path, where
# FastAPI's per-request dependency solving cost more CPU than the rest of the request.
SELF_AUTHENTICATED: list[tuple[APIRouter, str]] = [
    (inference.predict_router, API_PREFIX),
    (inference.infer_router, ""),
]

# Path prefixes whose request bodies may exceed `Settings.max_body_mb` (streamed uploads check their own limits).
UNLIMITED_BODY_PATHS: list[str] = [f"{API_PREFIX}/blobs/", hf_lfs.UPLOAD_PREFIX, hf_xet.CAS_PREFIX + "/"]

DESCRIPTION = """A model hub with provenance you can verify. Reads are open unless the hub switches anonymous
reads off; writes need `Authorization: Bearer <token>` (`aiprov user add`). Errors are RFC 9457 problem bodies.
The transparency log also serves the C2SP tlog-tiles paths (`/checkpoint`, `/tile/...`) at the root."""


class _HubApp(FastAPI):
    """FastAPI that serves the inference routes itself, ahead of the framework (see `api/fastpath.py`)."""

    fast_path: InferenceFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is None:
            self.fast_path = InferenceFastPath(self, SELF_AUTHENTICATED, max_bytes=self.state.max_body_bytes)
        serve = self.fast_path.match(scope)
        if serve is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # as Starlette sets it: `request.app` is how a route reaches the container
        await serve(scope, receive, send)


def create_app(container: Container) -> FastAPI:
    """The API over `container` (kept in `app.state.container`, closed at shutdown).

    `app.state.on_startup` and `app.state.on_shutdown` are lists of callables run by the lifespan, in order at
    startup and in reverse order at shutdown, before the container closes (e.g. a usage batcher's flush).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for start in list(app.state.on_startup):
            start()
        try:
            yield
        finally:
            try:
                for stop in reversed(list(app.state.on_shutdown)):
                    stop()
            finally:
                container.close()

    app = _HubApp(
        title="aiprov",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.on_startup = []
    app.state.on_shutdown = []
    app.state.max_body_bytes = container.settings.max_body_mb * 2**20
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=app.state.max_body_bytes, unlimited=tuple(UNLIMITED_BODY_PATHS))
    app.add_middleware(errors.CatchAll)  # added last: the outermost of ours, so it sees every route's exception
    for router, prefix in SELF_AUTHENTICATED:  # first: a request is matched against the routes in order
        app.include_router(router, prefix=prefix, responses=errors.PROBLEM_RESPONSES)
    app.include_router(health.probes, responses=errors.PROBLEM_RESPONSES)  # no token: a probe has none
    # no token either: huggingface_hub PUTs an LFS object to its upload URL without one (the URL is the credential)
    app.include_router(hf_lfs.capability_router, responses=errors.PROBLEM_RESPONSES)
    # nor the Xet CAS routes: hf_xet sends the Xet token there, not the API token (`services.hf_xet` checks it)
    app.include_router(hf_xet.cas_router, responses=errors.PROBLEM_RESPONSES)
    for router, prefix in ROUTERS:
        if router is hf.router:  # the pages' paths have at most four segments; the Hub's resolve route has five
            _include_pages(app)
        app.include_router(
            router, prefix=prefix, dependencies=[Depends(get_caller)], responses=errors.PROBLEM_RESPONSES
        )
    return app


def _include_pages(app: FastAPI) -> None:
    """The web pages and their static files; the pages read the reader's token from a cookie (`web.session`)."""
    from starlette.staticfiles import StaticFiles

    from aiprov.web import pages

    app.mount(pages.STATIC_PATH, StaticFiles(directory=pages.STATIC_DIR), name="static")
    app.include_router(pages.router)


def app_from_env() -> FastAPI:
    """The app over a container wired from the environment (`AIPROV_*`).

    The factory that `uvicorn --factory` and each worker of `aiprov serve --workers N` call. Raises InvalidInput
    for a bad configuration.
    """
    from aiprov.config import load_container

    return create_app(load_container())
