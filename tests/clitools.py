"""Driving the CLI in tests: the same invocation everywhere, as a user would type it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from aiprov.cli.main import app

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    """Run `aiprov --home HOME ARGS…` as alice; return (exit code, stdout, stderr)."""
    result = runner.invoke(app, ["--home", str(home), *args], env={"AIPROV_ACTOR": "alice"})
    return result.exit_code, result.stdout, result.stderr


def cli_json(home: Path, *args: str) -> Any:
    """Run a command with `--json`, assert it succeeded, return the parsed document."""
    code, out, err = cli(home, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def at_once_json(command: Sequence[str], env: Mapping[str, str], n: int, timeout: float = 120) -> list[Any]:
    """Run `n` processes of `command` (given `--json`) at the same time; assert each succeeded; their documents."""
    procs = [
        subprocess.Popen([*command, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(n)
    ]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    return [json.loads(out) for out, _ in outputs]
