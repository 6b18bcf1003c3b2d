"""`aiprov init`."""

from __future__ import annotations

from typing import Annotated

import typer

from aiprov.cli.common import container, handle_errors, out_console, print_json


def register(app: typer.Typer) -> None:
    app.command()(init)


@handle_errors
def init(ctx: typer.Context, json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Create the aiprov home (SQLite registry, blob folder), or upgrade its schema. Safe to run again."""
    c = container(ctx)
    before = c.init()
    from aiprov.adapters.db.engine import SCHEMA_HEAD

    result = {
        "home": str(c.settings.home),
        "database": (c.settings.database_url and "(from AIPROV_DATABASE_URL)") or c.settings.resolved_database_url,
        "schema": SCHEMA_HEAD,
        "created": before is None,
        "upgraded_from": before if before not in (None, SCHEMA_HEAD) else None,
    }
    if json:
        print_json(result)
        return
    verb = "created" if before is None else "upgraded" if before != SCHEMA_HEAD else "already up to date:"
    out_console.print(f"aiprov home {verb} {c.settings.home} (schema {SCHEMA_HEAD})")
