"""`aiprov doctor`: which protections confine the model workers on this machine, checked in a real worker."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aiprov.cli.common import CliState, handle_errors, out_console, print_json

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (a stable shape scripts can rely on).")]


def register(app: typer.Typer) -> None:
    app.command(name="doctor")(doctor)


@handle_errors
def doctor(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Start one probe worker and report each protection of the model sandbox as active or missing, with why.

    The protections: environment, network and IPC namespaces, no_new_privs, Landlock, seccomp, resource limits.
    Exits 0 when every protection is active; 1 when one is missing (AIPROV_SANDBOX=strict would refuse to run
    models here). Needs no home: it loads no model.
    """
    from aiprov.config import load_settings
    from aiprov.sandbox import WorkerPool

    state = ctx.find_root().obj
    assert isinstance(state, CliState), "the root callback sets the CLI state"
    settings = load_settings(state.home)
    with WorkerPool(1, settings.worker_limits, sandbox=settings.sandbox) as pool:
        report = pool.probe()
    if json:
        print_json(report.to_json())
    else:
        table = Table(box=None)
        table.add_column("protection", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for p in report.protections:
            table.add_row(p.name, "[green]active[/]" if p.active else "[bold red]missing[/]", p.detail)
        out_console.print(table)
        if report.complete:
            out_console.print(f"sandbox complete (AIPROV_SANDBOX={settings.sandbox})")
        else:
            names = ", ".join(p.name for p in report.missing)
            out_console.print(f"[bold red]sandbox incomplete[/]: {names} missing; AIPROV_SANDBOX=strict would refuse")
    if not report.complete:
        raise typer.Exit(1)
