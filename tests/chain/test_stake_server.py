"""The staking game against a real `aiprov serve` on a real anvil: every player on its own home with `--server`.

Each player signs and sends its own transactions (its key never reaches the hub); the hub logs each step only
after reading it back from the chain, as the account whose proof the sender signed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaintools import OPERATOR_KEY, Anvil, chain_env, run_json
from eth_account.messages import encode_defunct
from staketools import player
from tests.api.apitools import Server, assert_problem, init_home, start_server
from tests.support.audits import iris_model
from tests.support.cli import Ran, run

AUDITORS = ("auditor0", "auditor1", "auditor2")
PLAYERS = ("publisher", "challenger", "honest", "mallory", *AUDITORS)
WAD = 10**18


@dataclass
class Table:
    """The hub's server, and for each player a token, a client home and a chain key file."""

    server: Server
    anvil: Anvil
    tokens: dict[str, str]
    homes: dict[str, Path]
    keys: dict[str, Path]

    def run(self, name: str, *args: str) -> Ran:
        env = {
            "AIPROV_HOME": str(self.homes[name]),
            "AIPROV_CHAIN_RPC": self.anvil.url,
            "AIPROV_CHAIN_PRIVATE_KEY": None,
            "AIPROV_ACTOR": None,
        }
        return run("--server", self.server.base_url, "--token", self.tokens[name], *args, env=env)

    def stake(self, name: str, *args: str) -> Ran:
        return self.run(name, "stake", *args, "--key-file", str(self.keys[name]), "--json")

    def ok(self, name: str, *args: str) -> Any:
        ran = self.stake(name, *args)
        assert ran.code == 0, ran.err
        return json.loads(ran.out)

    def call(self, name: str, *args: str, code: int = 0) -> Any:
        ran = self.run(name, *args, "--json")
        assert ran.code == code, ran.err
        return json.loads(ran.out)

    def http(self, name: str) -> httpx.Client:
        return self.server.client(self.tokens[name])

    def travel(self, seconds: int) -> None:
        self.anvil.rpc("evm_increaseTime", seconds)
        self.anvil.rpc("evm_mine")

    def proof(self, name: str, origin: str, what: str, account: str) -> str:
        from aiprov.services.staking import proof_message

        message = proof_message(origin, self.anvil.w3.eth.chain_id, what, account)
        return "0x" + bytes(player(name).sign_message(encode_defunct(primitive=message)).signature).hex()


@pytest.fixture
def table(tmp_path: Path, anvil: Anvil) -> Iterator[Table]:
    home = tmp_path / "hub"
    container, admin = init_home(home)
    tokens = {name: container.accounts.add_user(name).token for name in PLAYERS}
    container.close()
    operator = chain_env(anvil, OPERATOR_KEY)
    run_json(home, operator, "chain", "deploy")
    keys = {}
    for name in PLAYERS:
        account = player(name)
        anvil.rpc("anvil_setBalance", account.address, hex(10**20))
        run_json(home, operator, "stake", "mint", account.address, "1000")
        keys[name] = tmp_path / f"{name}.key"
        keys[name].write_text(account.key.hex())
    server = start_server(home, admin, env={"AIPROV_CHAIN_RPC": anvil.url})
    try:
        yield Table(server, anvil, tokens, {n: tmp_path / f"{n}-home" for n in PLAYERS}, keys)
    finally:
        server.stop()


def test_the_whole_game_against_a_server_a_false_claim_slashed_an_honest_one_withdrawn(
    table: Table, tmp_path: Path
) -> None:
    t = table
    t.call("publisher", "push", str(iris_model(tmp_path / "poor", good=False)), "--name", "publisher/iris")
    claimed = t.call("publisher", "claim", "publisher/iris", "--benchmark", "iris", "--metric", "accuracy=0.99")
    for name in AUDITORS:
        registered = t.ok(name, "register-auditor", "--approve")
        assert registered["actor"] == name and registered["auditor"] == player(name).address

    staked = t.ok("publisher", "claim", str(claimed["id"]), "--stake", "10", "--approve")
    assert staked["subject"] == str(claimed["id"]) and staked["actor"] == "publisher"
    assert (staked["version"], staked["metric"], staked["value"]) == (
        claimed["digest"],
        "accuracy",
        str(99 * WAD // 100),
    )
    n = str(staked["chain_claim"])
    challenged = t.ok("challenger", "challenge", n, "--approve")
    assert challenged["claim_id"] == str(claimed["id"]) and challenged["challenger"] == player("challenger").address

    verdicts = []
    for name in AUDITORS:  # each on its own home: fetches by digest, evaluates here, submits the result
        audit = t.call(name, "audit", str(claimed["id"]), code=6)
        assert audit["verdict"] == "refuted" and audit["auditor"] == name
        signed = t.ok(name, "verdict", n, "--outcome", "refuted", "--measured", repr(audit["metrics"]["accuracy"]))
        (tmp_path / f"{name}.json").write_text(json.dumps(signed))
        verdicts += ["--verdict", str(tmp_path / f"{name}.json")]
    resolved = t.ok("challenger", "resolve", n, "--outcome", "refuted", *verdicts)
    assert resolved["outcome"] == "refuted" and resolved["claim_id"] == str(claimed["id"])
    assert resolved["auditors"] == sorted((player(a).address for a in AUDITORS), key=lambda a: int(a, 16))

    status = t.ok("publisher", "status", n, "--account", player("publisher").address)
    assert status["claim"]["status"] == "refuted" and status["balance"] == str(990 * WAD)
    checks = t.call("mallory", "stake", "verify", n)
    assert checks["ok"], checks

    # Reputation: identical from the hub's API and recomputed by a client from the log's tiles.
    hub = t.call("mallory", "reputation")
    assert hub == t.call("mallory", "reputation", "--from-log")
    by = {r["account"]: r for r in hub}
    assert by["publisher"]["score"] == -20 - 10 and by["publisher"]["slashed"] == 1
    assert by["challenger"]["score"] == 5
    assert all(by[a]["score"] == 3 and by[a]["audits"]["agreed"] == 1 for a in AUDITORS)

    # An honest claim passes its window unchallenged and its stake comes back.
    t.call("honest", "push", str(iris_model(tmp_path / "good", good=True)), "--name", "honest/iris")
    measured = t.call("honest", "eval", "honest/iris", "--benchmark", "iris")["metrics"]["accuracy"]
    fair = t.call("honest", "claim", "honest/iris", "--benchmark", "iris", "--metric", f"accuracy={measured!r}")
    honest = t.ok("honest", "claim", str(fair["id"]), "--stake", "10", "--approve")
    assert t.ok("honest", "status")["balance"] == str(990 * WAD)
    refused = t.stake("honest", "withdraw", str(honest["chain_claim"]))
    assert refused.code != 0 and "locked until" in refused.err
    t.travel(3 * 86_400 + 1)
    withdrawn = t.ok("honest", "withdraw", str(honest["chain_claim"]))
    assert withdrawn["amount"] == str(10 * WAD) and withdrawn["claim_id"] == str(fair["id"])
    assert t.ok("honest", "status", str(honest["chain_claim"]))["claim"]["status"] == "withdrawn"
    assert t.ok("honest", "status")["balance"] == str(1000 * WAD)


def test_the_server_logs_only_what_the_chain_says_once_as_the_sender_s_own_account(
    table: Table, tmp_path: Path
) -> None:
    t = table
    registered = t.ok("auditor0", "register-auditor", "--approve")
    tx = registered["tx"]
    info = t.http("mallory").get("/api/v1/stake").json()
    origin = info["origin"]

    # The same transaction twice: logged once.
    again = t.http("auditor0").post(
        "/api/v1/stake/steps", json={"tx": tx, "proof": t.proof("auditor0", origin, tx, "auditor0")}
    )
    assert_problem(again, 409)
    # mallory reporting auditor0's registration as hers: her key did not send it.
    stolen = t.http("mallory").post(
        "/api/v1/stake/steps", json={"tx": tx, "proof": t.proof("mallory", origin, tx, "mallory")}
    )
    assert "sent transaction" in assert_problem(stolen, 403)["detail"]
    # auditor0's own proof, replayed by mallory: it names auditor0's account, so it does not verify for mallory.
    replayed = t.http("mallory").post(
        "/api/v1/stake/steps", json={"tx": tx, "proof": t.proof("auditor0", origin, tx, "auditor0")}
    )
    assert_problem(replayed, 403)
    # a hash that was never mined, a malformed one, a malformed proof, no token
    unmined = "0x" + "ab" * 32
    body = {"tx": unmined, "proof": t.proof("mallory", origin, unmined, "mallory")}
    assert "not mined" in assert_problem(t.http("mallory").post("/api/v1/stake/steps", json=body), 404)["detail"]
    assert_problem(t.http("mallory").post("/api/v1/stake/steps", json={**body, "tx": "0x12"}), 422)
    assert_problem(t.http("mallory").post("/api/v1/stake/steps", json={**body, "proof": "0x00"}), 422)
    assert_problem(t.server.client().post("/api/v1/stake/steps", json=body), 401)

    # Nobody stakes another's log claim: refused before anything is sent.
    t.call("publisher", "push", str(iris_model(tmp_path / "m", good=True)), "--name", "publisher/iris")
    claimed = t.call("publisher", "claim", "publisher/iris", "--benchmark", "iris", "--metric", "accuracy=0.9")
    balance = t.ok("mallory", "status")["balance"]
    taken = t.stake("mallory", "claim", str(claimed["id"]), "--stake", "10", "--approve")
    assert taken.code != 0 and "only its publisher may stake it" in taken.err
    assert t.ok("mallory", "status")["balance"] == balance
    # nor with terms other than the claim's, nor a metric it does not claim
    wrong = t.stake("publisher", "claim", str(claimed["id"]), "--stake", "10", "--spec", "sha256:" + "00" * 32)
    assert wrong.code == 2 and "its terms come from it" in wrong.err
    unknown = t.stake("publisher", "claim", str(claimed["id"]), "--stake", "10", "--metric", "f1")
    assert unknown.code == 2 and "claims no 'f1'" in unknown.err

    steps = t.http("mallory").get(
        "/api/v1/stake/steps", params={"contract": info["deployments"][0]["staking"], "chain_claim": 1}
    )
    assert steps.status_code == 200 and steps.json() == []  # no claim was staked: nothing logged for one
