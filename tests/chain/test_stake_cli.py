"""`aiprov stake …` end to end through the real CLI against a real anvil: the game, its log events, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chaintools import Anvil, run, run_json
from staketools import SPEC, VERSION, player
from tests.support import free_port
from tests.support.cli import one_line_error

from aiprov.adapters.staking import WAD, StakeParams
from aiprov.errors import (
    ChainError,
    Conflict,
    Forbidden,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    TransactionReverted,
)

Env = dict[str, str | None]
NAMES = ("publisher", "challenger", "auditor0", "auditor1", "auditor2")
DEFAULTS = StakeParams()


@pytest.fixture
def game(home: Path, env: Env, anvil: Anvil, tmp_path: Path) -> dict[str, Any]:
    """A hub with the contracts deployed by `chain deploy`; each player funded, a key file each."""
    deployed = run_json(home, env, "chain", "deploy")
    keys: dict[str, Path] = {}
    for name in NAMES:
        account = player(name)
        anvil.rpc("anvil_setBalance", account.address, hex(10**20))
        run_json(home, env, "stake", "mint", account.address, "1000")
        keys[name] = tmp_path / f"{name}.key"
        keys[name].write_text(account.key.hex())
    return {"deployed": deployed, "keys": keys}


def as_(game: dict[str, Any], name: str) -> tuple[str, str]:
    return ("--key-file", str(game["keys"][name]))


def log_events(home: Path, env: Env) -> list[dict[str, Any]]:
    size = run_json(home, env, "log", "checkpoint")["size"]
    return [run_json(home, env, "log", "entry", str(i))["event"] for i in range(size)]


def claim(home: Path, env: Env, game: dict[str, Any], *extra: str) -> dict[str, Any]:
    args = ["stake", "claim", "claim-7", "--version", f"sha256:{VERSION.hex()}", "--spec", f"sha256:{SPEC.hex()}"]
    return run_json(home, env, *args, "--metric", "accuracy=0.99", "--stake", "10", *as_(game, "publisher"), *extra)


def test_a_false_claim_is_challenged_refuted_by_three_auditors_and_every_step_is_logged(
    home: Path, env: Env, anvil: Anvil, game: dict[str, Any], tmp_path: Path
) -> None:
    for name in ("auditor0", "auditor1", "auditor2"):
        run_json(home, env, "stake", "register-auditor", "--approve", *as_(game, name))
    made = claim(home, env, game, "--approve")
    n = str(made["chain_claim"])
    assert made["claim_id"] == "claim-7" and made["publisher"] == player("publisher").address
    challenged = run_json(home, env, "stake", "challenge", n, "--approve", *as_(game, "challenger"))
    assert challenged["bond"] == str(10 * WAD) and challenged["claim_id"] == "claim-7"  # f = 1 by default
    files = []
    for name in ("auditor2", "auditor0", "auditor1"):  # any order: resolve sorts them by signer
        signed = run_json(home, env, "stake", "verdict", n, "--outcome", "refuted", "--measured", "0.90",
                          *as_(game, name))  # fmt: skip
        assert signed["signer"] == player(name).address and signed["round"] == 1
        files.append(tmp_path / f"{name}.verdict.json")
        files[-1].write_text(json.dumps(signed))
    verdicts = [arg for f in files for arg in ("--verdict", str(f))]
    code, _, err = run(home, env, "stake", "resolve", n, "--outcome", "refuted", *verdicts[:4])
    assert code == TransactionReverted.exit_code and "2 verdicts given, 3 needed" in one_line_error(err)
    resolved = run_json(home, env, "stake", "resolve", n, "--outcome", "refuted", *verdicts, *as_(game, "challenger"))
    assert (resolved["outcome"], resolved["slashed"], resolved["claim_id"]) == ("refuted", str(10 * WAD), "claim-7")
    assert resolved["auditors"] == sorted((player(a).address for a in NAMES[2:]), key=lambda a: int(a, 16))
    code, _, err = run(home, env, "stake", "resolve", n, "--outcome", "refuted", *verdicts)
    assert code != 0 and "(NotChallenged)" in one_line_error(err)
    pulled = run_json(home, env, "stake", "withdraw", *as_(game, "challenger"))
    assert pulled["amount"] == str(10 * WAD + 5 * WAD)  # the bond back and half the stake
    status = run_json(home, env, "stake", "status", n, "--account", player("publisher").address)
    assert status["claim"]["status"] == "refuted" and status["balance"] == str(990 * WAD)
    assert status["params"]["quorum"] == DEFAULTS.quorum
    auditor = run_json(home, env, "stake", "status", "--account", player("auditor0").address)
    assert auditor["auditor"] and auditor["credit"] == str(10 * WAD * 4_000 // 10_000 // 3)
    stake_events = [e for e in log_events(home, env) if e["action"].startswith("stake.")]
    assert [e["action"] for e in stake_events] == [
        *["stake.auditor"] * 3, "stake.claim", "stake.challenge", *["stake.verdict"] * 3, "stake.resolve",
        "stake.withdraw",
    ]  # fmt: skip
    resolve = next(e for e in stake_events if e["action"] == "stake.resolve")
    assert resolve["subject"] == "claim-7"
    details = resolve["details"]
    assert (details["outcome"], details["publisher"], details["challenger"]) == (
        "refuted", player("publisher").address, player("challenger").address,
    )  # fmt: skip
    assert details["tx"] == resolved["tx"] and anvil.w3.eth.get_transaction_receipt(details["tx"])["status"] == 1
    assert details["contract"] == game["deployed"]["staking"]
    verified = run_json(home, env, "stake", "verify", n)
    assert verified["ok"] and {"claim.challenge", "stake.resolve.tx"} <= {c["check"] for c in verified["checks"]}


def test_an_honest_claim_passes_its_window_and_its_stake_is_withdrawn(
    home: Path, env: Env, anvil: Anvil, game: dict[str, Any]
) -> None:
    n = str(claim(home, env, game, "--approve")["chain_claim"])
    code, _, err = run(home, env, "stake", "withdraw", n, *as_(game, "publisher"))
    assert code != 0 and "is locked until" in one_line_error(err)
    anvil.rpc("evm_increaseTime", DEFAULTS.challenge_window_s)
    anvil.rpc("evm_mine")
    code, _, err = run(home, env, "stake", "challenge", n, "--approve", *as_(game, "challenger"))
    assert code != 0 and "(WindowClosed)" in one_line_error(err)
    got = run_json(home, env, "stake", "withdraw", n, *as_(game, "publisher"))
    assert got["amount"] == str(10 * WAD) and got["claim_id"] == "claim-7"
    status = run_json(home, env, "stake", "status", n, "--account", player("publisher").address)
    assert status["claim"]["status"] == "withdrawn" and status["balance"] == str(1000 * WAD)


def test_bad_input_is_one_line_non_zero_and_records_nothing(
    home: Path, env: Env, game: dict[str, Any], tmp_path: Path
) -> None:
    size = run_json(home, env, "log", "checkpoint")["size"]
    digest = f"sha256:{VERSION.hex()}"
    base = ["stake", "claim", "c", "--version", digest, "--spec", digest, *as_(game, "publisher")]
    cases: list[tuple[list[str], int, str]] = [
        (["stake", "challenge", "999", "--approve", *as_(game, "challenger")], NotFound.exit_code, "no claim 999"),
        ([*base, "--metric", "accuracy=0.9", "--stake", "5000", "--approve"], InsufficientFunds.exit_code, "needed"),
        ([*base, "--metric", "accuracy=0.9", "--stake", "10"], InvalidInput.exit_code, "may spend 0 of"),
        ([*base, "--metric", "accuracy", "--stake", "10"], InvalidInput.exit_code, "is not NAME=VALUE"),
        ([*base, "--metric", "accuracy=x", "--stake", "10"], InvalidInput.exit_code, "is not a number"),
        ([*base, "--metric", "a=1", "--stake", "10", "--tolerance", "2"], InvalidInput.exit_code, "out of range"),
        ([*base, "--metric", "a=1", "--stake", "0.1e-30"], InvalidInput.exit_code, "multiple of 1e-18"),
        (
            ["stake", "claim", "c", "--version", "sha256:ab", "--spec", digest, "--metric", "a=1", "--stake", "1"],
            InvalidInput.exit_code,
            "is not a sha256 digest",
        ),
        (
            ["stake", "verdict", "999", "--outcome", "refuted", "--measured", "1", *as_(game, "auditor0")],
            NotFound.exit_code,
            "no claim 999",
        ),
    ]
    for args, exit_code, message in cases:
        code, out, err = run(home, env, *args)
        assert (code, out) == (exit_code, ""), (args, err)
        assert message in one_line_error(err), (args, err)
    bad = tmp_path / "bad.json"
    bad.write_text('{"claim_id": 1}')
    code, _, err = run(home, env, "stake", "resolve", "1", "--outcome", "refuted", "--verdict", str(bad))
    assert code == InvalidInput.exit_code and "is not a verdict printed by" in one_line_error(err)
    down = {**env, "AIPROV_CHAIN_RPC": f"http://127.0.0.1:{free_port()}"}
    code, _, err = run(home, down, "stake", "status")
    assert code == ChainError.exit_code and "cannot reach the chain RPC" in one_line_error(err)
    assert run_json(home, env, "log", "checkpoint")["size"] == size  # nothing recorded


def test_stake_before_any_deployment_says_how_to_deploy(home: Path, env: Env) -> None:
    code, _, err = run(home, env, "stake", "status")
    assert code == InvalidInput.exit_code and "no staking contract" in one_line_error(err)


def test_verify_matches_the_chain_against_the_log_and_catches_an_unlogged_step(
    home: Path, env: Env, anvil: Anvil, game: dict[str, Any]
) -> None:
    from aiprov.adapters.chain import Chain
    from aiprov.adapters.staking import Staking
    from aiprov.errors import VerificationError

    n = str(claim(home, env, game, "--approve")["chain_claim"])
    doc = run_json(home, env, "stake", "verify", n)
    assert doc["ok"] and [c["check"] for c in doc["checks"]] == [
        "claim.logged", "claim.content", "claim.stake", "claim.status", "stake.claim.tx",
    ]  # fmt: skip
    behind_its_back = Staking(Chain(anvil.url, account=player("challenger")), game["deployed"]["staking"])
    _, sent = behind_its_back.challenge(int(n), approve=True)  # on chain, never logged
    code, out, err = run(home, env, "stake", "verify", n, "--json")
    assert code == VerificationError.exit_code
    failed = {c["check"]: c["detail"] for c in json.loads(out)["checks"] if not c["ok"]}
    assert (
        set(failed) == {"claim.challenge", "claim.status"} and "chain: challenged; log: open" in failed["claim.status"]
    )
    assert "does not match the log: claim.challenge, claim.status" in err

    # `stake record` logs a mined step from the chain (as the hub would after an outage); once only.
    challenger = {**env, "AIPROV_ACTOR": "challenger"}
    logged = run_json(home, challenger, "stake", "record", sent.tx, *as_(game, "challenger"))
    assert (logged["action"], logged["claim_id"], logged["actor"]) == ("stake.challenge", "claim-7", "challenger")
    assert logged["challenger"] == player("challenger").address and logged["tx"] == sent.tx
    code, _, err = run(home, challenger, "stake", "record", sent.tx, *as_(game, "challenger"))
    assert code == Conflict.exit_code and "already in the log" in one_line_error(err)
    code, _, err = run(home, env, "stake", "record", sent.tx, *as_(game, "publisher"))  # not the publisher's tx
    assert code == Forbidden.exit_code and "sent transaction" in one_line_error(err)
    assert run_json(home, env, "stake", "verify", n)["ok"]
    other, _ = behind_its_back.claim(VERSION, SPEC, "accuracy", WAD, 0, WAD, approve=True)
    code, _, err = run(home, env, "stake", "verify", str(other))
    assert code == VerificationError.exit_code and "claim.logged" in one_line_error(err)


def test_an_auditor_registers_leaves_and_takes_its_stake_back_after_the_exit_delay(
    home: Path, env: Env, anvil: Anvil, game: dict[str, Any]
) -> None:
    key = as_(game, "auditor0")
    address = player("auditor0").address
    joined = run_json(home, env, "stake", "register-auditor", "--approve", *key)
    assert joined["registered"] and joined["claim_id"] is None
    assert run_json(home, env, "stake", "status", "--account", address)["balance"] == str(900 * WAD)
    left = run_json(home, env, "stake", "leave-auditors", *key)
    assert not left["registered"] and left["exit_at"] > 0
    code, _, err = run(home, env, "stake", "withdraw", "--auditor-stake", *key)
    assert code == TransactionReverted.exit_code and "(AuditorStakeLocked)" in one_line_error(err)
    anvil.rpc("evm_increaseTime", DEFAULTS.challenge_window_s + DEFAULTS.resolution_period_s)
    anvil.rpc("evm_mine")
    back = run_json(home, env, "stake", "withdraw", "--auditor-stake", *key)
    assert back["amount"] == str(DEFAULTS.auditor_stake) and back["auditor"]
    status = run_json(home, env, "stake", "status", "--account", address)
    assert status["balance"] == str(1000 * WAD) and status["auditor"] is False
