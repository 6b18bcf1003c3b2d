"""Shared fixtures: model factories, homes and registries on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text

from aiprov.config import Container, Settings

# Speed is measured in benchmarks/, not asserted by tests: no Hypothesis deadlines (a loaded 2-core CI machine
# would turn them into random failures).
settings.register_profile("aiprov", deadline=None)
settings.load_profile("aiprov")

POSTGRES_URL = os.environ.get("AIPROV_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

MakeModel = Callable[..., Path]


@pytest.fixture
def make_model(tmp_path: Path) -> MakeModel:
    """Factory: `make_model({"a.bin": b"...", "sub/b.txt": b""})` writes a model directory and returns it."""
    counter = iter(range(10**6))

    def make(files: dict[str, bytes] | None = None, name: str | None = None) -> Path:
        root = tmp_path / (name or f"model-{next(counter)}")
        root.mkdir(parents=True)
        for rel, data in (files or {"model.bin": b"weights"}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return root

    return make


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The real PostgreSQL server; a test that needs it fails (not skips) when it is down."""
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:  # pragma: no cover - the setup is broken, say so loudly
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {e}; run .ci/run or start it", pytrace=False)
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty schema on the real PostgreSQL for one test, dropped afterwards."""
    schema = f"aiprov_t_{secrets.token_hex(6)}"
    admin = create_engine(postgres_admin_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_admin_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Each registry contract test runs on SQLite (the default) and on the real PostgreSQL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def make_container(tmp_path: Path) -> Iterator[Callable[..., Container]]:
    made: list[Container] = []

    def make(database_url: str | None = None, actor: str = "alice", home: Path | None = None) -> Container:
        settings = Settings(home=home or tmp_path / "home", database_url=database_url, actor=actor)
        c = Container(settings)
        c.init()
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home made by `aiprov init`, for CLI tests."""
    from tests.support.cli import cli

    h = tmp_path / "home"
    assert cli(h, "init")[0] == 0
    return h


@pytest.fixture
def hub(make_container: Callable[..., Container], database_url: str | None) -> Container:
    """An initialised hub on the parametrised database."""
    return make_container(database_url)
