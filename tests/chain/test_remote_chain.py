"""`aiprov --server URL verify REF --chain`: a client without the hub's database reads the anchored roots from the
chain itself and proves the hub's log against them, so a hub that rewrote its history after an anchor is caught
even by a client that never saw its log before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaintools import Anvil, chain_env, run_json
from tests.api.apitools import Server, start_server
from tests.conftest import MakeModel
from tests.support.cli import run
from tests.support.tamper import log_entry_bytes, rewrite_history


@pytest.fixture
def served(home: Path, deployed: dict[str, str | None]) -> Iterator[Server]:
    server = start_server(
        home, admin_token="unused", env={"AIPROV_CHAIN_CONTRACT": str(deployed["AIPROV_CHAIN_CONTRACT"])}
    )
    try:
        yield server
    finally:
        server.stop()


def client_verify(server: Server, client_home: Path, env: dict[str, str | None], ref: str) -> tuple[int, Any]:
    """A fresh client (its own home: no pinned key, no trusted checkpoint yet) verifying against the chain."""
    client_env = {**env, "AIPROV_HOME": str(client_home), "AIPROV_CHAIN_PRIVATE_KEY": None, "AIPROV_TOKEN": None}
    result = run("--server", server.base_url, "verify", ref, "--chain", "--json", env=client_env)
    assert result.out, result.err
    return result.code, {c["check"]: (c["ok"], c["detail"]) for c in json.loads(result.out)["checks"]}


def test_remote_verify_reads_the_chain_itself_and_catches_a_rewritten_history(
    home: Path, deployed: dict[str, str | None], anvil: Anvil, make_model: MakeModel, served: Server, tmp_path: Path
) -> None:
    pushed = run_json(home, deployed, "push", str(make_model({"w.bin": b"weights"})), "--name", "alice/m")
    ref = f"alice/m@{pushed['version']}"
    run_json(home, deployed, "alias", ref, "prod")
    run_json(home, deployed, "anchor")
    client = chain_env(anvil, None, AIPROV_CHAIN_CONTRACT=str(deployed["AIPROV_CHAIN_CONTRACT"]))

    code, found = client_verify(served, tmp_path / "first-client", client, ref)
    assert code == 0, found
    assert found["chain.anchor"][0] and found["chain.inclusion"][0] and found["chain.consistency"][0]

    alias = run_json(home, deployed, "log", "entry", "2")
    assert alias["event"]["action"] == "alias"
    rewrite_history(home, 2, log_entry_bytes(home, 2).replace(b'"prod"', b'"test"'))
    code, found = client_verify(served, tmp_path / "new-client", client, ref)
    assert code == 6
    assert found["log.consistency"][0], "a first-use client alone would trust the rewritten log"
    assert not found["chain.consistency"][0] and "history was rewritten" in found["chain.consistency"][1]

    # without the registry's address a remote client cannot know which chain to trust: said in one line
    result = run(
        "--server",
        served.base_url,
        "verify",
        ref,
        "--chain",
        env={**client, "AIPROV_CHAIN_CONTRACT": None, "AIPROV_HOME": str(tmp_path / "c3")},
    )
    assert result.code == 2 and "AIPROV_CHAIN_CONTRACT" in result.error()
