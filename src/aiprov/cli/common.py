"""What every command shares: the container, error reporting, JSON output and progress bars."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape

from aiprov.adapters.files import Progress, ProgressFactory
from aiprov.errors import AiprovError

if TYPE_CHECKING:
    from aiprov.config import Container

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
    built: Container | None = None
    server: str | None = None
    """The aiprov server to run against (`--server`, AIPROV_SERVER) instead of a local home."""
    token: str | None = None

    def close(self) -> None:
        if self.built is not None:
            self.built.close()


def container(ctx: typer.Context) -> Container:
    """The process's container, wired from the environment and `--home` the first time a command asks.

    With `--server` it is a `RemoteContainer`: the same service methods the commands call, over the server's API
    (a command it cannot serve raises InvalidInput).
    """
    state = ctx.find_root().obj
    assert isinstance(state, CliState), "the root callback sets the CLI state"
    if state.built is None:
        if state.server is not None:
            from aiprov.config import load_settings
            from aiprov.remote import RemoteContainer

            settings = load_settings(state.home)
            remote = RemoteContainer(state.server, state.token, home=settings.home, log_key=settings.log_verifier_key)
            # Duck-typed: it has the attributes the commands use, with the same signatures.
            state.built = cast("Container", remote)
        else:
            from aiprov.config import load_container

            state.built = load_container(state.home)
    return state.built


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an AiprovError into a one-line diagnostic on stderr and the error's exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AiprovError as e:
            # Escaped: a diagnostic may hold brackets (`pip install 'aiprov[chain]'`) that Rich would eat as markup.
            err_console.print(f"[bold red]error:[/] {escape(e.diagnostics())}", markup=True, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; nothing half-written is visible")
            raise typer.Exit(130) from None

    return wrapper


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
