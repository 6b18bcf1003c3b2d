"""`aiprov init`, `gc`, `backup` and `restore`: making the home, keeping it tidy, and keeping it safe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiprov.cli.common import err_console, handle_errors, local_container, out_console, print_json


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(gc)
    app.command()(backup)
    app.command()(restore)


@handle_errors
def backup(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Argument(help="A new directory to write the backup to.")],
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Back up the hub: its database, every blob it holds and its log key, as one consistent snapshot.

    The backup holds the log's signing key: keep it as safe as the key itself. Writers may go on meanwhile.
    """
    with err_console.status("backing up") as status:
        report = local_container(ctx).backup(dest, lambda what: status.update(f"backing up: {what}"))
    if json:
        print_json(report.to_json())
        return
    rows = sum(report.tables.values())
    out_console.print(
        f"backed up to {dest}: {rows} rows in {len(report.tables)} tables, {report.blobs} blobs "
        f"({report.blob_bytes} bytes), the log at size {report.tree_size}"
    )


@handle_errors
def restore(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(help="A directory written by `aiprov backup`.")],
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Restore a backup into this home, whose database must be empty (a new home, or a new AIPROV_DATABASE_URL).

    Every file of the backup is checked against its sha256 first, every blob against its digest, and the restored
    log against the backup's signed checkpoint. Then run `aiprov verify` on what matters to you.
    """
    with err_console.status("restoring") as status:
        report = local_container(ctx).restore(src, lambda what: status.update(f"restoring: {what}"))
    if json:
        print_json(report.to_json())
        return
    out_console.print(
        f"restored {sum(report.tables.values())} rows and {report.blobs} blobs; the log at size {report.tree_size} "
        f"has the backup's signed root {report.root_hash.hex()[:16]}…"
    )


@handle_errors
def init(ctx: typer.Context, json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Create the aiprov home (SQLite registry, blob folder), or upgrade its schema. Safe to run again."""
    c = local_container(ctx)
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


@handle_errors
def gc(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Keep blobs younger than this (30m, 24h, 7d): an upload may await its commit."
        ),
    ] = "24h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Remove stored blobs that no version or dataset holds (uploaded but never committed), past a grace period.

    The quarantine (refused uploads kept as evidence) is never touched. A run that removes anything is logged.
    """
    from aiprov.services.gc import parse_age

    report = local_container(ctx).gc.collect(older_than_s=parse_age(older_than), dry_run=dry_run)
    if json:
        print_json(report.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    out_console.print(
        f"{verb} {len(report.removed)} unreferenced blob(s), {report.removed_bytes} bytes; kept "
        f"{report.kept_in_use} in use and {report.kept_young} younger than {older_than}"
    )
