"""Every error as an RFC 9457 problem body (`application/problem+json`: type, title, status, detail).

An `AiprovError` keeps its `http_status` and `title`; its `diagnostics()` is the detail. Bad input is never a 500:
request validation is a 422 problem, Starlette's HTTP errors (404 route, 405 method) keep their status, and only an
unexpected exception is a 500, with a generic detail (the traceback goes to the server log, not the client).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiprov.errors import AiprovError, InvalidInput, RangeNotSatisfiable, Unauthorized

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger("aiprov.api")

_TITLES = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "payload too large",
    422: "invalid input",
    500: "internal error",
}


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem response; `extra` members (e.g. `errors`, `findings`) are added to the body."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `hint` says what to do next, `errors` lists invalid fields.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "hint": {"type": "string"},
        "code": {"type": "string", "description": "the error's stable code (docs/cli.md), as the CLI's --json errors"},
    },
    "required": ["type", "title", "status", "detail"],
}
_PROBLEM = {"content": {PROBLEM_TYPE: {"schema": PROBLEM_SCHEMA}}}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "The request was refused (see `detail`): 400/401/403/404/409/413/416/422.", **_PROBLEM},
    "5XX": {"description": "The server or one of its backends failed.", **_PROBLEM},
}
"""The error responses every route documents (in OpenAPI); `create_app` adds them to every router."""


def _slug(title: str) -> str:
    return title.replace(" ", "-")


async def _aiprov_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AiprovError)
    return error_response(exc)


def error_response(exc: AiprovError) -> JSONResponse:
    """The problem response of `exc`, as every route answers it (for routers that add headers of their own)."""
    extra: dict[str, Any] = {"type": f"https://aiprov.dev/problems/{_slug(exc.title)}", "code": exc.code}
    if exc.hint is not None:
        extra["hint"] = exc.hint
    findings = getattr(exc, "findings", None)
    if findings:
        extra["findings"] = findings
    headers = {"WWW-Authenticate": 'Bearer realm="aiprov"'} if isinstance(exc, Unauthorized) else None
    if isinstance(exc, RangeNotSatisfiable):
        headers = {"Content-Range": f"bytes */{exc.size}"}
    if exc.http_status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.diagnostics())
    return problem(exc.http_status, exc.title, exc.message, headers=headers, **extra)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "the request is not valid"
    return problem(422, "invalid input", detail, errors=errors, code=InvalidInput.code)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = _TITLES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(exc.status_code, title, detail, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal error", "the server failed unexpectedly; the error is in its log")


class CatchAll:
    """Pure ASGI middleware: an unexpected exception is a 500 problem, and the client's connection lives on.

    Starlette's outermost middleware answers an exception with the `Exception` handler and then re-raises it, and
    uvicorn closes the connection of an app that raised: a client's keep-alive connection was reset after a bug.
    Here the exception ends with the problem body. One raised after the response started (a download cut
    because its bytes were altered) is re-raised: cutting the connection is then the only honest answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = await _unexpected(Request(scope), exc)
            await response(scope, receive, send)


def _document_problems(app: FastAPI) -> None:
    """Make the OpenAPI schema say what the handlers send: every 4xx/5xx body is `application/problem+json`.

    A route may document an error with `{"model": Problem}`, which FastAPI files under `application/json`.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operation in (op for item in schema.get("paths", {}).values() for op in item.values()):
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(status)[:1] in "45" and "application/json" in content:
                        content.setdefault(PROBLEM_TYPE, content.pop("application/json"))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the problem handlers on `app`, and document them in its OpenAPI schema."""
    _document_problems(app)
    app.add_exception_handler(AiprovError, _aiprov_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)  # what `CatchAll` and the inference fast path answer
