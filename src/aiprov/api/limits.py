"""What a request may carry: a body size limit (413 beyond it), and JSON bodies under the core's rules (422).

`BodyLimit` checks the size before a route reads the body. `JsonRoute`, the route class of every router, parses
a JSON body with `core.jsonvalues.loads` (valid UTF-8, finite numbers, safe integers, bounded depth) before FastAPI
validates it against the route's schema, so no route ever sees NaN, a lone surrogate or a 900-level document.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiprov.api.errors import PROBLEM_TYPE
from aiprov.core.jsonvalues import loads


class JsonRequest(Request):
    """A request whose `json()` applies the core's JSON rules (FastAPI reads bodies through it)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would read a body of this type as JSON (no type, `application/json` or `*/*+json`)."""
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class JsonRoute(APIRoute):
    """A route that parses its JSON body under the core's rules; a broken rule is a 422 problem saying which."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle

        async def strict(request: Request) -> Response:
            checked = JsonRequest(request.scope, request.receive)
            # Parsed here, not inside FastAPI (which turns any parse error into a bare 400): an InvalidInput
            # raised now reaches the problem handlers with its message.
            if _is_json(request.headers.get("content-type")) and await checked.body():
                await checked.json()
            return await handle(checked)

        return strict


class BodyLimit:
    """Pure ASGI middleware: refuse a body over `max_bytes`, by its Content-Length or while it streams in.

    Paths starting with one of `unlimited` are passed through (streaming uploads enforce their own limits).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, unlimited: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.unlimited = unlimited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.unlimited or ("\0",)):
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # the problem handler turns this into a 413 body
                    raise HTTPException(413, f"the request body is over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "payload too large",
                "status": 413,
                "detail": f"the request body is over the limit of {self.max_bytes} bytes",
                "code": "too_large",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", PROBLEM_TYPE.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
