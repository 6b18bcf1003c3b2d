"""Schemathesis against the app's OpenAPI schema: no 5xx, every response conforms to the schema it documents.

Runs in-process (ASGI) over a hub with models, as an anonymous caller and as the admin, whose writes reach the
services (each refused or applied); evaluation and inference run no model here (their inputs are generated).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from apitools import init_home, push
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from aiprov.api import create_app
from aiprov.config import Container


def _app(tmp_path: Path) -> tuple[object, str, Container]:
    container, admin = init_home(tmp_path / "home")
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights")
    push(container, model, "alice/m")
    return create_app(container), admin, container


@pytest.fixture(scope="module")
def hub_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    app, admin, container = _app(tmp_path_factory.mktemp("schemathesis"))
    yield app, admin
    container.close()


EXCLUDED = [ignored_auth, positive_data_acceptance]
"""Reads are open to anonymous callers by design (the token is optional), which `ignored_auth` flags; and a
schema-valid request may still be refused with a 4xx problem for what a schema cannot say (an inclusion index
below the tree size, a digest that names no blob), which `positive_data_acceptance` flags. Every other check runs:
no 5xx, status codes, content types, headers and bodies as documented, schema-invalid requests refused."""


def _run_all(app: object, headers: dict[str, str], examples: int) -> list[str]:
    """Generate `examples` cases per operation and validate each response; return the failures."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, excluded_checks=EXCLUDED)

        try:
            check()
        except (Exception, BaseExceptionGroup) as e:  # schemathesis raises a BaseExceptionGroup of failures
            failures.append(f"{operation.label}: {e!r}"[:600])
    return failures


@pytest.mark.slow
def test_api_conforms_to_its_schema_anonymously(hub_app: tuple[object, str]) -> None:
    failures = _run_all(hub_app[0], {}, examples=30)
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_api_conforms_to_its_schema_as_admin(hub_app: tuple[object, str]) -> None:
    failures = _run_all(hub_app[0], {"Authorization": f"Bearer {hub_app[1]}"}, examples=30)
    assert not failures, "\n\n".join(failures)
