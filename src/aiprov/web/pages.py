"""The hub's pages: models, a model, the log, an account, login; each a few service calls and a template.

Paths stay clear of the Hugging Face routes (`/{owner}/{name}/resolve/...` has five segments or more, a page at
most four) and of the API (`/api/...`). Static files are under `/-/static/`: `-` is never an owner name, so no
Hub path falls under it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from aiprov.api.deps import Caller, ContainerDep, require_write
from aiprov.api.params import Name, Owner
from aiprov.config import Container
from aiprov.core.names import MAX_REF_LENGTH
from aiprov.errors import AiprovError, InvalidInput, Unauthorized
from aiprov.records import METRIC_SORT, ModelFilter, VersionRecord, check_format
from aiprov.services.evaluation import METRICS, parse_min
from aiprov.services.model_page import ModelPageData
from aiprov.services.usage import UsageQueries
from aiprov.web import session, views
from aiprov.web.card import MAX_CARD_BYTES, card_entry, render_card

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PATH = "/-/static"
PAGE_SIZE = 20
SCAN_VERDICTS = ("safe", "unsupported")
"""The verdicts a registered version can have (an `unsafe` push is refused, never registered)."""
FORMATS = ("safetensors", "onnx", "zip", "pickle", "joblib", "npy", "hdf5", "json", "text")
"""Formats the list page suggests (the scanner's names; the filter takes any)."""
SORT_CHOICES = (
    ("name", "name"),
    ("updated", "recently updated"),
    ("versions", "most versions"),
    ("downloads", "most downloads"),
    ("reputation", "author reputation"),
    *((f"{METRIC_SORT}{m}", f"best {m}") for m in METRICS),
)
MAX_PAGE = 10_000
VERSIONS_SHOWN = 20
CHART_VERSIONS = 20
LOG_ENTRIES_SHOWN = 50
MODEL_EVENTS_SHOWN = 30
USAGE_EVENTS_READ = 10_000

# Pages load nothing from another origin and run only the hub's own script; forms post only here.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True), auto_reload=False
)
_env.globals.update(static=STATIC_PATH, size=views.size, csrf_field=session.CSRF_FIELD)


class PageRoute(APIRoute):
    """A route whose hub errors are an HTML page with the error's status, not a problem document."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except AiprovError as e:
                page = render(request, None, "error.html", status=e.http_status, error=e)
                if isinstance(e, Unauthorized):
                    session.log_out(page)
                return page

        return handle


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def render(request: Request, reader: Caller | None, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page `template` with `context`, the reader and a CSRF token for its forms, with the pages' headers."""
    html = _env.get_template(template).render(
        request=request, reader=reader, csrf=session.csrf_token(request), path=request.url.path, **context
    )
    response = HTMLResponse(html, status_code=status, headers=HEADERS)
    session.remember_csrf(request, response)
    return response


def _redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303, headers=HEADERS)


def _local(target: str | None) -> str:
    """`target` if it is a path on this hub (a login's `next`), else `/models`: never a redirect off the hub."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/models"


# models ------------------------------------------------------------------------------------------------------


Text = Annotated[str, Query(max_length=200)]


@router.get("/", response_class=HTMLResponse)
@router.get("/models", response_class=HTMLResponse)
def models(
    request: Request,
    container: ContainerDep,
    q: Text = "",
    owner: Text = "",
    tag: Text = "",
    license: Text = "",
    min: Text = "",
    scan: Text = "",
    format: Text = "",
    sort: Text = "name",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    """Models matching the search and filters, a page at a time, with how many match in all."""
    reader = session.reader(request, container)
    if scan and scan not in SCAN_VERDICTS:
        raise InvalidInput(f"no scan verdict {scan!r}", hint=f"one of {', '.join(SCAN_VERDICTS)}")
    f = ModelFilter(
        search=q or None,
        owner=owner or None,
        tag=tag or None,
        license=license or None,
        min_metrics=parse_min([min] if min else []),
        scan=scan or None,
        format=check_format(format) if format else None,
    )
    listing = container.registry.page(f, sort=sort, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    query = {
        "q": q,
        "owner": owner,
        "tag": tag,
        "license": license,
        "min": min,
        "scan": scan,
        "format": format,
        "sort": sort,
    }
    pages = max(1, -(-listing.total // PAGE_SIZE))

    def link(n: int) -> str:
        return "/models?" + urlencode({**{k: v for k, v in query.items() if v}, "page": n})

    return render(
        request,
        reader,
        "models.html",
        listing=listing,
        query=query,
        page=page,
        pages=pages,
        link=link,
        sorts=SORT_CHOICES,
        verdicts=SCAN_VERDICTS,
        formats=FORMATS,
    )


def _version_ref(owner: str, name: str, v: int | None) -> str:
    return f"{owner}/{name}" if v is None else f"{owner}/{name}@{v}"


def _card(container: Container, version: VersionRecord) -> Any:
    entry = card_entry(version.manifest.entries)
    if entry is None:
        return None
    data = b"".join(container.blobs.read_range(entry.sha256, 0, min(entry.size, MAX_CARD_BYTES)))
    return render_card(data)


def _lineage(data: ModelPageData) -> views.Lineage:
    version = data.evidence.record
    parents = [
        (digest[:19] + "…", None) if parent is None else (parent.ref, f"/models/{parent.full_name}?v={parent.number}")
        for digest, parent in data.parents
    ]
    children = [(f"{name}@{number}", f"/models/{name}?v={number}") for name, number in data.children]
    datasets = [d if len(d) <= 30 else d[:29] + "…" for d in version.lineage.datasets]
    return views.lineage(version.ref, parents, datasets, children)


def _model_page(
    request: Request, container: Container, owner: str, name: str, v: int | None, **extra: Any
) -> HTMLResponse:
    reader = session.reader(request, container)
    data = container.model_pages.gather(
        _version_ref(owner, name, v), versions=VERSIONS_SHOWN, events=MODEL_EVENTS_SHOWN, usage=USAGE_EVENTS_READ
    )
    evidence = data.evidence
    model, version = evidence.model, evidence.record
    charted = {v.number for v in data.versions[-CHART_VERSIONS:]}
    return render(
        request,
        reader,
        "model.html",
        model=model,
        version=version,
        versions=list(reversed(data.versions)),
        version_count=model.version_count,
        evidence=evidence,
        scan=evidence.event.details.get("scan"),
        file_scans=views.file_scans(version.manifest, evidence.event.details),
        evaluations=[e for e in data.evaluations if e.version == version.number],
        series=views.metric_series(e for e in data.evaluations if e.version in charted),
        usage=views.usage_per_day(data.usage),
        events=data.events,
        lineage=_lineage(data),
        card=_card(container, version),
        **extra,
    )


Version = Annotated[int | None, Query(ge=1, le=2**31)]


@router.get("/models/{owner}/{name}", response_class=HTMLResponse)
def model(request: Request, container: ContainerDep, owner: Owner, name: Name, v: Version = None) -> HTMLResponse:
    """A version (the latest by default): card, files, signatures, evaluations, usage, lineage, log entries."""
    return _model_page(request, container, owner, name, v)


@router.post("/models/{owner}/{name}/try", response_class=HTMLResponse)
async def try_it(
    request: Request,
    container: ContainerDep,
    owner: Owner,
    name: Name,
    rows: Annotated[str, Form(max_length=1_000_000)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    v: Annotated[int | None, Form(ge=1, le=2**31)] = None,
) -> HTMLResponse:
    """Run the version on the rows given (JSON, as the predict route takes them) and show the answer.

    The same service the predict route calls, as the logged-in reader (write scope), logged as their usage.
    """
    session.check_csrf(request, csrf)
    reader = await run_in_threadpool(session.reader, request, container)
    actor = require_write(reader, "trying a model")
    try:
        parsed = json.loads(rows)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"the rows are not JSON: {e}", hint="e.g. [[5.1, 3.5, 1.4, 0.2]]") from e
    body = parsed if isinstance(parsed, dict) else {"inputs": parsed}
    result = await container.inference.predict_async(_version_ref(owner, name, v), body, actor=actor)
    answer = json.dumps(result.to_json(), indent=2)
    return await run_in_threadpool(_model_page, request, container, owner, name, v, answer=answer, rows=rows)


# log and accounts --------------------------------------------------------------------------------------------


@router.get("/log", response_class=HTMLResponse)
def log_page(
    request: Request, container: ContainerDep, index: Annotated[int | None, Query(ge=0, le=2**62)] = None
) -> HTMLResponse:
    """The latest checkpoint, the newest entries, and one entry with its inclusion proof (`?index=N`)."""
    reader = session.reader(request, container)
    latest = container.log.latest()
    size = latest.checkpoint.size
    newest = range(size - 1, max(-1, size - 1 - LOG_ENTRIES_SHOWN), -1)
    entries = [(i, container.log.entry(i)[2]) for i in newest]
    chosen = None
    if index is not None:
        data, leaf, event = container.log.entry(index)
        chosen = (index, data.decode(), leaf.hex(), event, container.log.inclusion(index, size))
    return render(
        request,
        reader,
        "log.html",
        note=latest.note,
        checkpoint=latest.checkpoint,
        root=latest.checkpoint.root_hash.hex(),
        entries=entries,
        chosen=chosen,
    )


@router.get("/accounts/{user}", response_class=HTMLResponse)
def account(request: Request, container: ContainerDep, user: Owner) -> HTMLResponse:
    """An owner's models and the signatures they made."""
    reader = session.reader(request, container)
    listing = container.registry.page(ModelFilter(owner=user), sort="updated", offset=0, limit=100)
    signed = UsageQueries(container.checked_db).of_user(user, actions=("sign",), limit=100)
    return render(request, reader, "account.html", user=user, listing=listing, signed=signed)


# login -------------------------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: Annotated[str, Query(max_length=MAX_REF_LENGTH)] = "") -> HTMLResponse:
    """The login form: an API token, kept in an HttpOnly cookie."""
    return render(request, None, "login.html", next=_local(next))


@router.post("/login")
def login(
    request: Request,
    container: ContainerDep,
    token: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=MAX_REF_LENGTH)] = "",
) -> Response:
    """Check the token and keep it in the reader's cookie; back to `next`. A bad token shows the form again."""
    session.check_csrf(request, csrf)
    response = _redirect(_local(next))
    try:
        session.log_in(container, token, response, secure=request.url.scheme == "https")
    except Unauthorized as e:
        return render(request, None, "login.html", status=401, next=_local(next), error=e)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Forget the reader's token cookie."""
    session.check_csrf(request, csrf)
    response = _redirect("/models")
    session.log_out(response)
    return response
