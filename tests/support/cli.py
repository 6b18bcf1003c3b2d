"""The one way tests drive the CLI: `aiprov ARGS…` in-process through Typer's runner, as a user would type it.

    cli(home, "push", str(model), "--name", "alice/m")       # aiprov --home HOME … as alice -> Ran
    cli_json(home, "show", "alice/m")                        # … --json: asserts success, returns the document
    remote(served, token, "ls")                              # aiprov --server URL --token T … (a Served hub)
    ran.error()                                              # the one-line diagnostic of a failed command

`Ran` is a named tuple, so `code, out, err = cli(…)` works too. `env` adds to (None: removes from) the
environment the command sees; it never inherits AIPROV_TOKEN from the machine running the tests.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from typer.testing import CliRunner

from aiprov.cli.main import app

runner = CliRunner()

ACTOR = "alice"
"""Who local commands act as (AIPROV_ACTOR), unless `env` says otherwise."""


class Ran(NamedTuple):
    """What a command did: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The `--json` document of a command that succeeded (asserts it did)."""
        assert self.code == 0, self.err
        return json.loads(self.out)

    def error(self) -> str:
        """The diagnostic of a command that failed: exactly one line starting with `error:`, never a traceback."""
        assert self.code != 0, self.out
        return one_line_error(self.err)


def one_line_error(err: str) -> str:
    """The CLI's diagnostic in `err`: exactly one line starting with `error:`, never a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    return lines[0]


def run(*args: str, env: Mapping[str, str | None] | None = None) -> Ran:
    """`aiprov ARGS…` with `env` over a clean AIPROV_TOKEN; every other driver here goes through this one."""
    result = runner.invoke(app, list(args), env={"AIPROV_TOKEN": None, **(env or {})})
    return Ran(result.exit_code, result.stdout, result.stderr)


def cli(home: Path, *args: str, env: Mapping[str, str | None] | None = None) -> Ran:
    """`aiprov --home HOME ARGS…`, acting as alice unless `env` names another AIPROV_ACTOR."""
    return run("--home", str(home), *args, env={"AIPROV_ACTOR": ACTOR, **(env or {})})


def cli_json(home: Path, *args: str, env: Mapping[str, str | None] | None = None) -> Any:
    """Run a local command with `--json`, assert it succeeded, return the parsed document."""
    return cli(home, *args, "--json", env=env).json()


class Served(Protocol):
    """A hub the CLI can reach with `--server`: a real `aiprov serve` (apitools.Server) or an in-process one."""

    @property
    def base_url(self) -> str: ...

    @property
    def home(self) -> Path: ...


def client_home(served: Served) -> Path:
    """The client's own home (where it pins each server's log key and last verified checkpoint)."""
    return served.home.parent / "client-home"


def remote(served: Served, token: str | None, *args: str, env: Mapping[str, str | None] | None = None) -> Ran:
    """`aiprov --server URL [--token T] ARGS…`, with the client's own home."""
    auth = ["--token", token] if token else []
    environment = {"AIPROV_HOME": str(client_home(served)), **(env or {})}
    return run("--server", served.base_url, *auth, *args, env=environment)


def remote_json(served: Served, token: str | None, *args: str) -> Any:
    """Run a command against the server with `--json`, assert it succeeded, return the parsed document."""
    return remote(served, token, *args, "--json").json()


def at_once_json(command: Sequence[str], env: Mapping[str, str], n: int, timeout: float = 120) -> list[Any]:
    """Run `n` processes of `command` (given `--json`) at the same time; assert each succeeded; their documents.

    The one driver of real `aiprov` processes racing each other (in-process runs would share one interpreter).
    """
    procs = [
        subprocess.Popen([*command, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(n)
    ]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    return [json.loads(out) for out, _ in outputs]
