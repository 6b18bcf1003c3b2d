"""The `aiprov` entry point: global options and the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiprov import __version__
from aiprov.cli import (
    accounts,
    audits,
    chain,
    doctor,
    evaluate,
    home,
    ipfs,
    jobs,
    log,
    models,
    quickstart,
    scan,
    serve,
    signing,
    stake,
)
from aiprov.cli.common import AiprovGroup, CliState

app = typer.Typer(
    name="aiprov",
    cls=AiprovGroup,
    help="A model hub with provenance you can verify: push, find, pull and check ML models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aiprov {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home_dir: Annotated[
        Path | None,
        typer.Option("--home", help="aiprov home (registry, blobs, keys). Default: $AIPROV_HOME or ~/.aiprov."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="AIPROV_SERVER",
            help="Run against the aiprov server at this URL instead of a local home (push, ls, show, pull, alias, "
            "usage, sign, verify, eval, job, dataset, log, claim, audit, rate, flag, reputation).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="AIPROV_TOKEN", help="API token for --server (writes need one)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Verify every claim: SHA-256 fingerprints, content-addressed storage, an append-only usage log."""
    state = CliState(home_dir, server=server or None, token=token or None)
    ctx.obj = state
    ctx.call_on_close(state.close)


home.register(app)
models.register(app)
signing.register(app)
log.register(app)
quickstart.register(app)
evaluate.register(app)
jobs.register(app)
audits.register(app)
scan.register(app)
accounts.register(app)
serve.register(app)
chain.register(app)
stake.register(app)
ipfs.register(app)
doctor.register(app)


def main() -> None:
    app()
