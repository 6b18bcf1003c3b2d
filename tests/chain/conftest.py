"""One real anvil per test session (per xdist worker), on a free port of 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chaintools import OPERATOR_KEY, Anvil, chain_env, run_json, start_anvil, stop


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    try:
        node = start_anvil()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)  # never skip: a missing anvil is a broken setup
    try:
        yield node
    finally:
        stop(node.process)


@pytest.fixture
def env(anvil: Anvil) -> dict[str, str | None]:
    """CLI environment pointing at anvil, signing with the operator's key."""
    return chain_env(anvil, OPERATOR_KEY)


@pytest.fixture
def deployed(home: Path, env: dict[str, str | None]) -> dict[str, str | None]:
    """A home with a freshly deployed registry (recorded by the hub); returns the env with its address set."""
    d = run_json(home, env, "chain", "deploy")
    return {**env, "AIPROV_CHAIN_CONTRACT": d["address"]}
