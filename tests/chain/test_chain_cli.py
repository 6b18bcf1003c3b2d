"""The chain commands end to end, through the real CLI against a real anvil."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from chaintools import (
    ANVIL_CHAIN_ID,
    OPERATOR_KEY,
    OTHER_KEY,
    Anvil,
    run,
    run_json,
)
from sqlalchemy import create_engine, text
from tests.conftest import MakeModel
from tests.support import free_port
from tests.support.cli import one_line_error
from tests.support.tamper import log_entry_bytes, rewrite_history

from aiprov.adapters.chain import Chain, parse_private_key
from aiprov.adapters.db import log
from aiprov.config import Container, Settings
from aiprov.errors import ChainError, MissingExtra, TransactionReverted

Env = dict[str, str | None]


def push(home: Path, env: Env, make_model: MakeModel, name: str = "alice/m", data: bytes = b"weights") -> str:
    doc = run_json(home, env, "push", str(make_model({"w.bin": data})), "--name", name)
    return f"{doc['name']}@{doc['version']}"


def checks(doc: dict[str, object]) -> dict[str, tuple[bool, str]]:
    return {c["check"]: (c["ok"], c["detail"]) for c in doc["checks"]}  # type: ignore[attr-defined, index]


def test_deploy_prints_address_tx_block_and_chain_id_and_records_it(home: Path, env: Env, anvil: Anvil) -> None:
    d = run_json(home, env, "chain", "deploy")
    assert set(d) == {"address", "tx", "block", "chain_id", "token", "staking", "staking_tx"}
    assert len({d["address"], d["token"], d["staking"]}) == 3
    assert d["chain_id"] == ANVIL_CHAIN_ID
    receipt = anvil.w3.eth.get_transaction_receipt(d["tx"])
    assert (
        receipt["status"] == 1 and receipt["contractAddress"] == d["address"] and receipt["blockNumber"] == d["block"]
    )
    events = run_json(home, env, "log", "entry", "0")
    assert events["event"]["action"] == "chain.deploy" and events["event"]["subject"] == d["address"]
    assert (events["event"]["details"]["token"], events["event"]["details"]["staking"]) == (d["token"], d["staking"])


def test_push_anchor_and_verify_chain_pass(home: Path, deployed: Env, make_model: MakeModel) -> None:
    ref = push(home, deployed, make_model)
    anchored = run_json(home, deployed, "anchor")
    assert anchored["sent"] and anchored["tree_size"] == 2  # the deployment and the push
    doc = run_json(home, deployed, "verify", ref, "--chain")
    assert doc["ok"], doc
    found = checks(doc)
    assert found["chain.anchor"][0] and "size 2" in found["chain.anchor"][1]
    assert found["chain.inclusion"] == (True, "entry 1 is in the anchored tree of size 2 (1 hash)")
    assert found["chain.consistency"][0]
    assert found["chain.registration"] == (True, found["chain.registration"][1])
    assert "not registered" in found["chain.registration"][1]


def test_version_logged_after_the_last_anchor_fails_until_anchored(
    home: Path, deployed: Env, make_model: MakeModel
) -> None:
    run_json(home, deployed, "anchor")
    ref = push(home, deployed, make_model)
    code, out, err = run(home, deployed, "verify", ref, "--chain")
    assert code == 6 and "chain.anchor" in err
    assert "newer than the last anchored tree size" in out
    run_json(home, deployed, "anchor")
    assert run_json(home, deployed, "verify", ref, "--chain")["ok"]


def test_anchoring_twice_sends_one_transaction(home: Path, deployed: Env, anvil: Anvil, make_model: MakeModel) -> None:
    for i in range(3):
        push(home, deployed, make_model, data=bytes([i]))
    before = anvil.tx_count(OPERATOR_KEY)
    first = run_json(home, deployed, "anchor")
    code, out, _ = run(home, deployed, "anchor")
    assert code == 0 and "nothing to anchor" in out
    assert run_json(home, deployed, "anchor")["sent"] is False
    assert anvil.tx_count(OPERATOR_KEY) == before + 1
    assert first["sent"] and first["tree_size"] == 4  # one transaction covers all four events
    push(home, deployed, make_model, data=b"more")
    assert run_json(home, deployed, "anchor")["sent"]
    assert anvil.tx_count(OPERATOR_KEY) == before + 2


def test_an_anchor_the_chain_lost_in_a_reorganisation_is_sent_again(
    home: Path, deployed: Env, anvil: Anvil, make_model: MakeModel
) -> None:
    push(home, deployed, make_model)
    snapshot = anvil.rpc("evm_snapshot")
    first = run_json(home, deployed, "anchor")
    anvil.rpc("evm_revert", snapshot)  # the anchor's block is gone; the hub still records it
    again = run_json(home, deployed, "anchor")
    assert first["sent"] and again["sent"] and again["tree_size"] == first["tree_size"] + 1
    assert run_json(home, deployed, "anchor")["sent"] is False


def test_register_records_owner_and_uri_and_verify_reports_it(
    home: Path, deployed: Env, anvil: Anvil, make_model: MakeModel
) -> None:
    ref = push(home, deployed, make_model)
    cid = run_json(home, deployed, "show", ref)["cid_v1"]
    reg = run_json(home, deployed, "chain", "register", ref)
    owner = anvil.w3.eth.account.from_key(OPERATOR_KEY).address
    assert cid.startswith("bafy") and reg["uri"] == f"ipfs://{cid}"  # the version's CIDv1, as ipfs:// expects
    assert reg["sent"] and reg["owner"] == owner
    assert anvil.w3.eth.get_transaction_receipt(reg["tx"])["status"] == 1
    again = run_json(home, deployed, "chain", "register", ref)
    assert again["sent"] is False and again["owner"] == owner
    run_json(home, deployed, "anchor")
    found = checks(run_json(home, deployed, "verify", ref, "--chain"))
    assert found["chain.registration"] == (True, f"owner {owner}, ipfs://{cid}, block {reg['block']}")


def test_push_on_chain_registers_the_new_version(home: Path, deployed: Env, make_model: MakeModel) -> None:
    pushed = run_json(home, deployed, "push", str(make_model()), "--name", "alice/p", "--on-chain")
    assert pushed["on_chain"]["sent"] and pushed["on_chain"]["uri"] == f"ipfs://{pushed['cid_v1']}"
    assert pushed["on_chain"]["digest"] == pushed["digest"]
    # without CIDs (AIPROV_IPFS_CIDS=false) the URI names the version in this hub
    plain = {**deployed, "AIPROV_IPFS_CIDS": "false"}
    pushed = run_json(home, plain, "push", str(make_model({"w": b"other"})), "--name", "alice/q", "--on-chain")
    assert pushed["on_chain"]["uri"] == "aiprov:alice/q@1"


def test_another_account_registering_an_existing_digest_is_refused_in_one_line(
    home: Path, deployed: Env, anvil: Anvil, make_model: MakeModel
) -> None:
    ref = push(home, deployed, make_model)
    run_json(home, deployed, "chain", "register", ref)
    before = anvil.tx_count(OTHER_KEY)
    code, _, err = run(home, {**deployed, "AIPROV_CHAIN_PRIVATE_KEY": OTHER_KEY}, "chain", "register", ref)
    line = one_line_error(err)
    owner = anvil.w3.eth.account.from_key(OPERATOR_KEY).address
    assert code == TransactionReverted.exit_code
    assert f"is already registered on chain by {owner} (AlreadyRegistered)" in line
    assert anvil.tx_count(OTHER_KEY) == before, "a call that would revert is not sent"


def test_only_the_operator_may_anchor(home: Path, deployed: Env, make_model: MakeModel) -> None:
    push(home, deployed, make_model)
    code, _, err = run(home, {**deployed, "AIPROV_CHAIN_PRIVATE_KEY": OTHER_KEY}, "anchor")
    assert code == TransactionReverted.exit_code
    assert "is not the registry's log operator" in one_line_error(err) and "(NotOperator)" in err


def test_key_file_signs_instead_of_the_environment(
    home: Path, deployed: Env, tmp_path: Path, make_model: MakeModel
) -> None:
    key_file = tmp_path / "operator.key"
    key_file.write_text(OPERATOR_KEY + "\n")
    push(home, deployed, make_model)
    doc = run_json(home, {**deployed, "AIPROV_CHAIN_PRIVATE_KEY": None}, "anchor", "--key-file", str(key_file))
    assert doc["sent"]
    key_file.write_text("not a key")
    code, _, err = run(home, deployed, "anchor", "--key-file", str(key_file))
    assert code == 2 and "is not an Ethereum private key" in one_line_error(err) and "not a key" not in err


def test_missing_configuration_is_explained(home: Path, env: Env) -> None:
    code, _, err = run(home, {**env, "AIPROV_CHAIN_RPC": None}, "chain", "deploy")
    assert code == 2 and "AIPROV_CHAIN_RPC" in one_line_error(err)
    code, _, err = run(home, {**env, "AIPROV_CHAIN_PRIVATE_KEY": None}, "chain", "deploy")
    assert code == 2 and "AIPROV_CHAIN_PRIVATE_KEY or pass --key-file" in one_line_error(err)
    code, _, err = run(home, env, "anchor")
    assert code == 2 and "run `aiprov chain deploy`" in one_line_error(err)


def test_without_web3_installed_the_chain_commands_say_which_extra_to_install(
    home: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "aiprov.adapters.chain", raising=False)
    monkeypatch.setitem(sys.modules, "web3", None)  # what `import web3` sees when it is not installed
    code, _, err = run(home, env, "chain", "deploy")
    assert code == MissingExtra.exit_code and "pip install 'aiprov[chain]'" in one_line_error(err)


def test_rpc_down_is_one_line_that_never_shows_the_url_path_with_its_api_key(home: Path, env: Env) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(home, {**env, "AIPROV_CHAIN_RPC": down + "/v2/s3cretApiKey"}, "chain", "deploy")
    assert code == ChainError.exit_code
    assert f"cannot reach the chain RPC at {down}/… (refused)" in one_line_error(err)
    assert "s3cret" not in err


def test_unfunded_key_gets_insufficient_funds(home: Path, env: Env, anvil: Anvil) -> None:
    account = anvil.w3.eth.account.create()
    code, _, err = run(home, {**env, "AIPROV_CHAIN_PRIVATE_KEY": account.key.hex()}, "chain", "deploy")
    line = one_line_error(err)
    assert code == ChainError.exit_code
    assert f"{account.address} has 0 of the chain's coin" in line and "fund the signer's address" in line


def test_rpc_of_another_chain_than_the_recorded_deployment_is_refused(
    home: Path, deployed: Env, anvil: Anvil, make_model: MakeModel
) -> None:
    push(home, deployed, make_model)
    anvil.rpc("anvil_setChainId", 5)
    try:
        code, _, err = run(home, deployed, "anchor")
        before_reset = anvil.tx_count(OPERATOR_KEY)
    finally:
        anvil.rpc("anvil_setChainId", ANVIL_CHAIN_ID)
    line = one_line_error(err)
    assert code == ChainError.exit_code
    assert f"serves chain 5, but the registry {deployed['AIPROV_CHAIN_CONTRACT']} was deployed on chain 31337" in line
    assert anvil.tx_count(OPERATOR_KEY) == before_reset
    code, _, err = run(home, {**deployed, "AIPROV_CHAIN_ID": "1"}, "chain", "deploy")
    assert code == ChainError.exit_code and "serves chain 31337, but expected 1" in one_line_error(err)


def test_history_rewritten_after_anchoring_is_caught_by_verify_chain(
    home: Path, deployed: Env, make_model: MakeModel
) -> None:
    ref = push(home, deployed, make_model)
    run_json(home, deployed, "alias", ref, "prod")
    run_json(home, deployed, "anchor")
    assert run_json(home, deployed, "verify", ref, "--chain")["ok"]
    (home / "trusted-checkpoint").unlink()  # a verifier that never saw this log: only the chain can tell
    alias = run_json(home, deployed, "log", "entry", "2")
    assert alias["event"]["action"] == "alias"
    forged = log_entry_bytes(home, 2).replace(b'"prod"', b'"test"')
    rewrite_history(home, 2, forged)
    code, out, _ = run(home, deployed, "verify", ref, "--chain", "--json")
    assert code == 6
    found = checks(json.loads(out))
    assert found["log.consistency"][0], "without the chain, a first-use client trusts the rewritten log"
    assert not found["chain.inclusion"][0] and "history was rewritten" in found["chain.inclusion"][1]
    assert not found["chain.consistency"][0] and "history was rewritten" in found["chain.consistency"][1]


def test_log_truncated_after_anchoring_is_caught_by_verify_chain(
    home: Path, deployed: Env, make_model: MakeModel
) -> None:
    ref = push(home, deployed, make_model)
    run_json(home, deployed, "alias", ref, "prod")
    run_json(home, deployed, "anchor")  # anchors size 3: deploy, push, alias
    (home / "trusted-checkpoint").unlink(missing_ok=True)
    settings = Settings(home=home)
    engine = create_engine(settings.resolved_database_url)
    with engine.begin() as conn:
        entries = log.entries(conn, 0, 2)  # the operator drops the alias and everything after it
        for table in ("log_bundles", "log_tiles", "log_checkpoints"):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("UPDATE log_state SET size = 0, edge = :e"), {"e": b""})
    engine.dispose()
    hub = Container(settings)
    try:
        with hub.db.unit(write=True) as u:
            log.append(u.conn, entries)
        hub.log.publish()
    finally:
        hub.close()
    code, out, _ = run(home, deployed, "verify", ref, "--chain", "--json")
    found = checks(json.loads(out))
    assert code == 6 and found["log.inclusion"][0] and found["log.consistency"][0]
    assert not found["chain.inclusion"][0] and "history was rewritten" in found["chain.inclusion"][1]
    assert "fewer than the root anchored at size 3" in found["chain.consistency"][1]


def test_a_registration_whose_metadata_is_not_the_push_entry_fails_verify_chain(
    home: Path, deployed: Env, anvil: Anvil, make_model: MakeModel
) -> None:
    """Someone registered the digest first, directly on the contract, pointing at other metadata."""
    ref = push(home, deployed, make_model)
    digest = run_json(home, deployed, "show", ref)["digest"]
    squatter = Chain(anvil.url, account=parse_private_key(OTHER_KEY, "test key"))
    address = str(deployed["AIPROV_CHAIN_CONTRACT"])
    squatter.register(address, bytes.fromhex(digest.removeprefix("sha256:")), b"\x11" * 32, "https://elsewhere")
    run_json(home, deployed, "anchor")
    code, out, _ = run(home, deployed, "verify", ref, "--chain", "--json")
    found = checks(json.loads(out))
    assert code == 6 and [name for name, (ok, _) in found.items() if not ok] == ["chain.registration"]
    owner = squatter.account.address if squatter.account else ""
    assert f"registered on chain by {owner} with metadata digest 1111111111111111…" in found["chain.registration"][1]


def test_status_reports_the_node_then_the_registry_then_how_far_the_log_is_anchored(
    home: Path, env: Env, anvil: Anvil, make_model: MakeModel
) -> None:
    before = run_json(home, env, "chain", "status")
    assert before["chain_id"] == ANVIL_CHAIN_ID and before["contract"] is None and before["anchored_size"] is None
    assert before["block"] == anvil.w3.eth.block_number
    code, out, _ = run(home, env, "chain", "status")
    assert code == 0 and "registry: none yet" in out
    address = run_json(home, env, "chain", "deploy")["address"]
    push(home, env, make_model)
    deployed = run_json(home, env, "chain", "status")
    assert deployed["contract"] == address and deployed["recorded"] and deployed["anchored_size"] == 0
    assert deployed["log_size"] == 2
    run_json(home, env, "anchor")
    anchored = run_json(home, env, "chain", "status")
    assert anchored["anchored_size"] == 2 and anchored["log_size"] == 3  # the anchor is logged after it is sent
    assert anchored["block"] == before["block"] + 4  # deploying registry, token and staking, then the anchor
    code, out, _ = run(home, env, "chain", "status")
    assert code == 0 and f"registry {address}, deployed by this hub" in out and "anchored up to size 2" in out


def test_status_of_a_node_that_does_not_answer_is_one_line_and_non_zero(home: Path, env: Env) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(home, {**env, "AIPROV_CHAIN_RPC": down}, "chain", "status")
    assert code == ChainError.exit_code and out == ""
    assert f"cannot reach the chain RPC at {down} (refused)" in one_line_error(err)
