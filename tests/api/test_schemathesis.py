"""Schemathesis against the app's OpenAPI schema: no 5xx, every response conforms to the schema it documents.

Runs in-process (ASGI) over a hub with models, as an anonymous caller and as the admin, whose writes reach the
services (each refused or applied); evaluation and inference run no model here (their inputs are generated).
Every error must also be a problem body that names no server path, and a shorter run goes to a real
`aiprov serve` over one keep-alive connection, which must carry every request (tests/api/test_fuzz_http.py
fuzzes the inputs a schema cannot describe).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from apitools import init_home, push, start_server
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
    SERVER_PATHS.append(str(container.settings.home))
    yield app, admin
    container.close()


EXCLUDED = [ignored_auth, positive_data_acceptance]
"""Reads are open to anonymous callers by design (the token is optional), which `ignored_auth` flags; and a
schema-valid request may still be refused with a 4xx problem for what a schema cannot say (an inclusion index
below the tree size, a digest that names no blob), which `positive_data_acceptance` flags. Every other check runs:
no 5xx, status codes, content types, headers and bodies as documented, schema-invalid requests refused."""


@schemathesis.serializer("application/x-ndjson")
def ndjson(_ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """The Hub's commit body (`HfApi.create_commit`): one JSON value a line."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


SERVER_PATHS: list[str] = [sys.prefix, str(Path(__file__).parents[2])]
"""Strings no answer may hold: the venv, the source tree, and each hub's home (added by the fixtures)."""


@schemathesis.check
def problem_without_server_paths(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """Every 4xx or 5xx is `application/problem+json` with its status; no answer names a server path."""
    if response.status_code >= 400 and response.request.method != "HEAD":
        kind = (response.headers.get("content-type") or [""])[0]
        assert kind.startswith("application/problem+json"), f"an error of type {kind!r}"
        assert response.json()["status"] == response.status_code, "the problem's status is not the response's"
    text = response.content.decode("utf-8", "replace")
    leaked = [p for p in SERVER_PATHS if p in text]
    assert not leaked, f"the answer names the server path {leaked[0]}"
    return None


def _run_all(
    app: object, headers: dict[str, str], examples: int, *, base_url: str | None = None, session: Any = None
) -> list[str]:
    """Generate `examples` cases per operation and validate each response; return the failures.

    In-process over `app`, or against the server at `base_url` through `session` (a `requests.Session`).
    """
    if base_url is None:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    else:
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=base_url,
                session=session,
                headers=headers,
                excluded_checks=EXCLUDED,
                additional_checks=[problem_without_server_paths],
            )

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


@pytest.mark.slow
def test_api_conforms_to_its_schema_over_one_keep_alive_connection(tmp_path: Path) -> None:
    _, admin, container = _app(tmp_path)
    home = container.settings.home
    container.close()
    SERVER_PATHS.append(str(home))
    server = start_server(home, admin)
    try:
        with requests.Session() as session:
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1)
            session.mount("http://", adapter)
            failures = _run_all(
                None, {"Authorization": f"Bearer {admin}"}, 8, base_url=server.base_url, session=session
            )
            assert not failures, "\n\n".join(failures)
            pools = adapter.poolmanager.pools
            opened = [pools[key].num_connections for key in pools.keys()]  # noqa: SIM118 - it has no __iter__
            assert opened == [1], f"connections opened: {opened}; a request cost the client its keep-alive one"
    finally:
        server.stop()
    assert "Traceback" not in server.log_text()
