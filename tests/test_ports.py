"""The ports (`aiprov.ports`): the database adapter implements them, and services depend on nothing else of it.

mypy checks the assignments in `_the_database_is_every_port` (this file is given to mypy below); the import test
reads each service module's imports, so an arrow from `services/` into `adapters/db` fails here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from aiprov.adapters.db.registry import SqlRegistry, SqlRegistryUnit
from aiprov.config import Container
from aiprov.core.names import ModelName, Ref
from aiprov.errors import NotFound
from aiprov.ports import EventStore, LogStore, LogUnit, RegistryStore, RegistryUnit

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "src" / "aiprov" / "services"


def _the_database_is_every_port(db: SqlRegistry, unit: SqlRegistryUnit) -> tuple[object, ...]:
    """What mypy checks: the SQL registry and its unit satisfy every database port, signature by signature."""
    registry: RegistryStore = db
    log: LogStore = db
    events: EventStore = db
    reads: RegistryUnit = unit
    log_reads: LogUnit = unit
    return registry, log, events, reads, log_reads


def test_mypy_checks_the_database_adapter_against_the_ports() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", "/dev/null", "--follow-imports", "silent", __file__],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in SERVICES.glob("*.py")))
def test_no_service_imports_the_database_adapter(module: str) -> None:
    """Services see the database only through `aiprov.ports` and the records it returns, never its rows."""
    assert not {m for m in imported_modules(SERVICES / module) if m.startswith("aiprov.adapters.db")}


def test_a_handle_from_elsewhere_is_refused_by_the_adapter(hub: Container) -> None:
    """A unit takes back only the handles it handed out: anything else is a TypeError, never a silent misuse."""
    from dataclasses import dataclass

    from aiprov.records import IpfsCids

    @dataclass
    class Lookalike:  # every attribute of a VersionHandle, but not a row of this database
        id: int = 1
        model_id: int = 1
        number: int = 1
        digest: str = "sha256:" + "0" * 64

    with hub.db.unit(write=True) as u:
        model = u.upsert_model(ModelName.parse("alice/m"), None, None, (), hub.clock())
        assert u.require_model(ModelName.parse("alice/m")).full_name == model.full_name == "alice/m"
        with pytest.raises(TypeError, match="handed out by the registry"):
            u.set_cids(Lookalike(), IpfsCids(None, None, {}))
    with hub.db.unit() as u, pytest.raises(NotFound, match="alice/m"):
        u.resolve(Ref.parse("alice/m"))  # no version yet
