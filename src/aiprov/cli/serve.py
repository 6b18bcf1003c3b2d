"""`aiprov serve`: the HTTP API (uvicorn) over this home's registry."""

from __future__ import annotations

import json as jsonlib
import os
import sys
from typing import Annotated

import typer

from aiprov.cli.common import err_console, handle_errors, local_container
from aiprov.extras import require

KEEP_ALIVE_S = 5
"""Seconds an idle kept-alive connection stays open (uvicorn's default, stated here because docs/api.md says it)."""


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)


@handle_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes (each with its own pool).")] = 1,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = True,
    proxy_headers: Annotated[
        bool, typer.Option("--proxy-headers", help="Trust X-Forwarded-* from --forwarded-allow-ips (behind a proxy).")
    ] = False,
    forwarded_allow_ips: Annotated[
        str, typer.Option("--forwarded-allow-ips", help="Proxies whose X-Forwarded-* headers are trusted.")
    ] = "127.0.0.1",
    json: Annotated[
        bool, typer.Option("--json", help="Print one JSON line with the URL at start (the server logs go to stderr).")
    ] = False,
) -> None:
    """Serve the API (OpenAPI docs at /docs) until interrupted; a clean stop flushes what is pending."""
    require("aiprov serve", "fastapi", "uvicorn", "orjson", "prometheus_client")
    import uvicorn

    from aiprov.api.connections import EnvHeadDeadlineProtocol, with_header_timeout

    c = local_container(ctx)
    c.checked_db  # noqa: B018 - a missing home or an old schema is a one-line error here, not a crash in a worker
    c.log_signer  # noqa: B018 - likewise a missing log key
    if c.settings.jobs == "queue":
        c.job_queue  # noqa: B018 - AIPROV_JOBS=queue on SQLite (or without procrastinate) is refused at start
    options = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": forwarded_allow_ips,
        "timeout_graceful_shutdown": 30,
        # docs/api.md, "Timeouts": an idle kept-alive connection is closed after KEEP_ALIVE_S, and one whose
        # request head is not complete within AIPROV_HEADER_TIMEOUT_S (uvicorn has no such timeout) too.
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
    url = f"http://{host}:{port}"
    if json:
        sys.stdout.write(jsonlib.dumps({"url": url, "docs": f"{url}/docs", "workers": workers}) + "\n")
        sys.stdout.flush()
    else:
        err_console.print(f"aiprov API on {url} (docs at /docs), {workers} worker(s)")
    if workers == 1:
        from aiprov.api import create_app

        http = with_header_timeout(c.settings.header_timeout_s)
        uvicorn.run(create_app(c), http=http, **options)  # type: ignore[arg-type]
        return
    # Each worker process builds its own container from the environment: pass it this command's settings.
    os.environ["AIPROV_HOME"] = str(c.settings.home)
    os.environ["AIPROV_HEADER_TIMEOUT_S"] = repr(c.settings.header_timeout_s)
    c.close()
    uvicorn.run(
        "aiprov.api.app:app_from_env",
        factory=True,
        workers=workers,
        http=EnvHeadDeadlineProtocol,
        **options,  # type: ignore[arg-type]
    )
