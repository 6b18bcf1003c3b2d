"""The inference routes, served ahead of the framework: the same route code, fewer layers.

A prediction of one row costs the API process about 0.8 ms of CPU on the benchmark machine, and a third of it
went to the layers every request crosses (FastAPI's native-telemetry check, which reads three environment
variables per request; Starlette's error and exception middleware, body limit and exit-stack middleware, the
router's match over every route, FastAPI's request handler), measured with `py-spy --gil` under
`benchmarks/bench_serving.py`. The two prediction routes need none of them: they authenticate themselves and
read their body raw. So the app (`app._HubApp.__call__`) first asks `InferenceFastPath.match` whether a request
is a `POST` to one of those paths (the app's self-authenticated routes, `app.SELF_AUTHENTICATED`, at the paths
the app mounts them), and if so sends it straight to its route function, behind the same `BodyLimit`, turning
errors into the same problem bodies with the app's own exception handlers. The routes stay mounted on the app
too (OpenAPI documents them, and a request the fast path does not take still reaches them).

The price: FastAPI's native OpenTelemetry and any middleware added to the app do not see predictions. Each one
is still a usage event in the log, with its latency.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from aiprov.api.limits import BodyLimit

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

Handler = Callable[[Request], Awaitable[Response]]


class InferenceFastPath:
    """The POST routes of `routers`, matched and served without the framework (see the module's docstring).

    Each router's routes are matched at its prefix, as the app mounts them. Only routes that authenticate
    themselves and take nothing but the request belong in `routers`: the fast path solves no dependencies and
    validates no parameters.
    """

    def __init__(self, app: FastAPI, routers: Sequence[tuple[APIRouter, str]], *, max_bytes: int) -> None:
        self.app = app
        self.routes: list[tuple[re.Pattern[str], ASGIApp]] = [
            (
                compile_path(prefix + route.path)[0],
                BodyLimit(functools.partial(self._serve, route.endpoint), max_bytes=max_bytes),
            )
            for router, prefix in routers
            for route in router.routes
            if isinstance(route, APIRoute) and "POST" in (route.methods or ())
        ]

    def match(self, scope: Scope) -> ASGIApp | None:
        """The ASGI app to serve `scope` with (its path parameters now set), or None if it is not for the routes."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for pattern, limited in self.routes:
            if match := pattern.match(path):
                scope["path_params"] = match.groupdict()  # every parameter of these routes is a plain str
                return limited
        return None

    async def _serve(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
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
