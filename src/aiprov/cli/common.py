"""What every command shares: the container, error reporting, JSON output and progress bars."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from aiprov.adapters.files import Progress, ProgressFactory
from aiprov.errors import AiprovError
from aiprov.extras import extra_of, missing

if TYPE_CHECKING:
    from aiprov.config import Container
    from aiprov.interface import HubServices

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False, soft_wrap=True)

PROGRESS_THRESHOLD = 100 * 1024 * 1024
"""Show a progress bar only for work over this many bytes, and only on a terminal."""


@dataclass
class CliState:
    """What the root callback knows; the container is built on first use, so `hash` never loads settings."""

    home: Path | None
    built: HubServices | None = None
    server: str | None = None
    """The aiprov server to run against (`--server`, AIPROV_SERVER) instead of a local home."""
    token: str | None = None

    def close(self) -> None:
        if self.built is not None:
            self.built.close()


def container(ctx: typer.Context) -> HubServices:
    """The process's hub, wired from the environment and `--home` the first time a command asks.

    A `Container` for a home, or with `--server` a `RemoteContainer`: the same service methods over the server's
    API. Both satisfy `HubServices`; what only a home can do is `local_container`.
    """
    state = ctx.find_root().obj
    assert isinstance(state, CliState), "the root callback sets the CLI state"
    if state.built is None:
        if state.server is not None:
            from aiprov.config import load_settings
            from aiprov.remote import RemoteContainer

            settings = load_settings(state.home)
            key = settings.log_verifier_key
            state.built = RemoteContainer(state.server, state.token, home=settings.home, log_key=key)
        else:
            from aiprov.config import load_container

            state.built = load_container(state.home)
    return state.built


def local_container(ctx: typer.Context) -> Container:
    """The home's container, for a command only a home can run. Raises NotOnServer (naming it) under `--server`."""
    return container(ctx).local(f"`{ctx.command_path}`")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an AiprovError into a one-line diagnostic on stderr and the error's exit code, never a traceback.

    Under the command's `--json` the error is a JSON problem object on one line of stderr instead. A missing
    optional module (an extra not installed) is the same one-line error, naming the extra to install.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("json"))
        try:
            return fn(*args, **kwargs)
        except AiprovError as e:
            fail(e, as_json)
        except ModuleNotFoundError as e:
            if e.name is None or extra_of(e.name) is None:
                raise
            context = kwargs.get("ctx")
            subject = context.command_path if isinstance(context, typer.Context) else f"aiprov {fn.__name__}"
            fail(missing(subject, e, e.name), as_json)
        except KeyboardInterrupt:
            report(INTERRUPTED, "interrupted; nothing half-written is visible", as_json)
            raise typer.Exit(130) from None

    return wrapper


INTERRUPTED = {
    "type": "https://aiprov.dev/problems/interrupted",
    "title": "interrupted",
    "detail": "interrupted; nothing half-written is visible",
    "code": "interrupted",
    "exit_code": 130,
}


def report(problem: dict[str, object], line: str, as_json: bool) -> None:
    """Print an error on stderr: the problem object as one JSON line under `--json`, else `error: LINE`."""
    if as_json:
        # ASCII: no control or bidi character of a hostile name reaches the terminal raw.
        sys.stderr.write(json.dumps(problem) + "\n")
        sys.stderr.flush()
        return
    # Escaped: a diagnostic may hold brackets (`pip install 'aiprov[chain]'`) that Rich would eat as markup.
    err_console.print(f"[bold red]error:[/] {escape(line)}", markup=True, soft_wrap=True)


def fail(error: AiprovError, as_json: bool) -> NoReturn:
    """Report `error` (see `report`) and exit with its exit code."""
    report(error.problem(), error.diagnostics(), as_json)
    raise typer.Exit(error.exit_code) from None


class AiprovGroup(TyperGroup):
    """The root command: a usage error (unknown option, missing argument) is one line too, or JSON under --json."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv
        try:
            result = super().main(argv, prog_name, complete_var, False, windows_expand_args, **extra)
            code = result if isinstance(result, int) else 0
        except typer.TyperException as e:  # the base of the (vendored) click usage errors
            context = getattr(e, "ctx", None)
            hint = f"see `{context.command_path} --help`" if context is not None else "see `aiprov --help`"
            message = str(getattr(e, "format_message", e.__str__)())
            exit_code = int(getattr(e, "exit_code", 2))
            problem = {
                "type": "https://aiprov.dev/problems/usage-error",
                "title": "usage error",
                "detail": message,
                "code": "usage_error",
                "exit_code": exit_code,
                "hint": hint,
            }
            if message.strip():  # empty when a group given no command printed its help (`aiprov log`)
                report(problem, f"{message} ({hint})", as_json)
            code = exit_code
        except typer.Abort:
            report(INTERRUPTED, "interrupted; nothing half-written is visible", as_json)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressFactory]:
    """A progress factory for services: a Rich bar on a terminal when the work is large, else nothing."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    bar: RichProgress | None = None

    def factory(total: int) -> Progress | None:
        nonlocal bar
        if total < PROGRESS_THRESHOLD or not err_console.is_terminal:
            return None
        bar = RichProgress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        )
        bar.start()
        task = bar.add_task(description, total=total)
        active = bar

        def advance(n: int) -> None:
            active.advance(task, n)

        return advance

    try:
        yield factory
    finally:
        if bar is not None:
            bar.stop()
