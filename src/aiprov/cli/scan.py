"""The scan commands: is a model safe to load, judged from its bytes alone; and a refused push judged again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aiprov.cli.common import fail, handle_errors, local_container, out_console, print_json
from aiprov.errors import AiprovError, UnsafeModelError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (a stable shape scripts can rely on).")]

_STYLE = {"safe": "green", "unsafe": "bold red", "unsupported": "yellow"}


def register(app: typer.Typer) -> None:
    app.command(name="scan")(scan)
    app.command(name="rescan")(rescan)


@handle_errors
def scan(
    path: Annotated[Path, typer.Argument(help="A model file, or a directory whose every file is scanned.")],
    json: JsonOpt = False,
) -> None:
    """Scan a model without loading it: format by content, pickles by allow-list.

    Exits 0 only when every file is safe; 7 (as a refused push) when a file is unsafe; 1 when a file cannot be
    checked (unsupported).
    """
    from aiprov.config import load_settings
    from aiprov.scanning import scan_path

    report = scan_path(path, load_settings().scan_limits)
    if json:
        print_json(report.to_json())
    else:
        table = Table(box=None)
        # The path keeps room to be read whole (up to 40 characters) at 80 columns; findings wrap beside it.
        longest = max((len(f.path) for f in report.files), default=4)
        table.add_column("path", overflow="fold", min_width=min(longest, 40))
        table.add_column("format", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        table.add_column("findings", overflow="fold", min_width=12)
        for f in report.files:
            findings = "\n".join(f"{x.reason}: {x.detail}" for x in f.findings) or "-"
            table.add_row(f.path, f.format, f"[{_STYLE[f.verdict]}]{f.verdict}[/]", findings)
        out_console.print(table, soft_wrap=False)
        out_console.print(f"verdict: [{_STYLE[report.verdict]}]{report.verdict}[/] ({len(report.files)} file(s))")
    _exit_for(report.verdict, json)


@handle_errors
def rescan(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="A refused push: its manifest digest (`flagged` event subject) or OWNER/NAME.")
    ],
    json: JsonOpt = False,
) -> None:
    """Judge a refused push again with the current scanner and limits; log `cleared` or `confirmed`.

    Cleared files become a new version of the model (exit 0, or 1 if a file is unsupported); confirmed ones stay
    in quarantine (exit 7).
    """
    result = local_container(ctx).registry.rescan(target)
    if json:
        print_json(result.to_json())
    elif result.version is not None:
        out_console.print(f"cleared {result.evidence}: registered as {result.version.ref} ({result.scan.verdict})")
    else:
        first = result.scan.findings[0]
        out_console.print(
            f"confirmed {result.evidence}: still unsafe, {first['path']}: {first['detail']}", soft_wrap=True
        )
    _exit_for(result.scan.verdict, json)


def _exit_for(verdict: str, json: bool) -> None:
    """Exit with the verdict's code; under --json a non-safe verdict is also a problem object on stderr."""
    if verdict == "safe":
        return
    error = UnsafeModelError("the scan found unsafe files") if verdict == "unsafe" else Unsupported()
    if json:
        fail(error, json)
    raise typer.Exit(error.exit_code)


class Unsupported(AiprovError):
    """A file's format cannot be checked: not an error of the input, but not a `safe` verdict either."""

    title = "unsupported"
    code = "unsupported"

    def __init__(self) -> None:
        super().__init__("the scan found files of a format aiprov cannot check (unsupported)")
