"""The inference routes, served ahead of the framework's middleware and router: the same code, fewer layers.

A prediction of one row costs the API process about 0.8 ms of CPU on the benchmark machine, and a third of it
went to the layers every request crosses (Starlette's error and exception middleware, FastAPI's telemetry, body
limit and exit-stack middleware, the router's match over every route, FastAPI's request handler), measured
with `py-spy --gil` under `benchmarks/bench_serving.py`. The two prediction routes need none of them: they
authenticate themselves and read their body raw. So the outermost layer of the app sends `POST` requests for
those two paths straight to the route functions of `routes/inference.py`, behind the same `BodyLimit`, and
turns errors into the same problem bodies with the app's own exception handlers. The routes stay declared on
the app too (OpenAPI documents them, and a request the fast path does not take still reaches them).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from aiprov.api.limits import BodyLimit
from aiprov.api.routes import inference

if TYPE_CHECKING:
    from fastapi import FastAPI

Handler = Callable[[Request], Awaitable[Response]]

_ROUTES: tuple[tuple[re.Pattern[str], Handler], ...] = (
    (re.compile(r"/api/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predict"), inference.predict),
    (re.compile(r"/infer/(?P<digest>[^/]+)"), inference.infer),
)
"""The paths of the two routes as Starlette's router matches them (a path parameter is one segment)."""


class InferenceFastPath:
    """Outermost ASGI layer of the app: prediction requests to their routes directly, the rest to `inner`."""

    def __init__(self, inner: ASGIApp, app: FastAPI, *, max_bytes: int) -> None:
        self.inner = inner
        self.app = app
        self.limited = BodyLimit(self._serve, max_bytes=max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            for pattern, handler in _ROUTES:
                if match := pattern.fullmatch(path):
                    scope["path_params"] = match.groupdict()
                    scope["fast_handler"] = handler
                    await self.limited(scope, receive, send)
                    return
        await self.inner(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler: Handler = scope["fast_handler"]
        try:
            response = await handler(request)
        except Exception as e:  # every error gets the problem body the app's handlers give it elsewhere
            response = await self._problem(request, e)
        await response(scope, receive, send)

    async def _problem(self, request: Request, exc: Exception) -> Response:
        for cls in type(exc).__mro__:
            handler = self.app.exception_handlers.get(cls)
            if handler is not None:
                response = handler(request, exc)
                return await response if isinstance(response, Awaitable) else response
        raise exc  # pragma: no cover - errors.install registers a handler for Exception
