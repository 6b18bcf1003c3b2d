"""The whole game on a real anvil: a false claim staked, challenged, audited, resolved; reputation follows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaintools import Anvil, run, run_json
from staketools import player
from tests.support.audits import iris_model

Env = dict[str, str | None]
AUDITORS = ("auditor0", "auditor1", "auditor2")


def test_a_slashed_false_claim_lowers_the_publisher_and_raises_the_auditors_identically_from_the_log(
    home: Path, env: Env, anvil: Anvil, tmp_path: Path
) -> None:
    def as_(name: str, *args: str) -> Any:
        return run_json(home, {**env, "AIPROV_ACTOR": name}, *args)

    run_json(home, env, "chain", "deploy")
    keys = {}
    for name in ("publisher", "challenger", *AUDITORS):
        account = player(name)
        anvil.rpc("anvil_setBalance", account.address, hex(10**20))
        run_json(home, env, "stake", "mint", account.address, "1000")
        keys[name] = tmp_path / f"{name}.key"
        keys[name].write_text(account.key.hex())
    as_("publisher", "push", str(iris_model(tmp_path / "poor", good=False)), "--name", "publisher/iris")
    claimed = as_("publisher", "claim", "publisher/iris", "--benchmark", "iris", "--metric", "accuracy=0.99")
    for name in AUDITORS:
        as_(name, "stake", "register-auditor", "--approve", "--key-file", str(keys[name]))
    staked = as_(
        "publisher", "stake", "claim", str(claimed["id"]), "--stake", "10", "--approve",
        "--key-file", str(keys["publisher"]),
    )  # fmt: skip
    assert (staked["version"], staked["metric"], staked["value"]) == (claimed["digest"], "accuracy", str(99 * 10**16))
    n = str(staked["chain_claim"])
    as_("challenger", "stake", "challenge", n, "--approve", "--key-file", str(keys["challenger"]))
    verdicts = []
    for name in AUDITORS:
        audit = run(home, {**env, "AIPROV_ACTOR": name}, "audit", str(claimed["id"]), "--json")
        assert audit.code == 6 and json.loads(audit.out)["verdict"] == "refuted"
        measured = json.loads(audit.out)["metrics"]["accuracy"]
        signed = as_(name, "stake", "verdict", n, "--outcome", "refuted", "--measured", repr(measured),
                     "--key-file", str(keys[name]))  # fmt: skip
        verdicts += ["--verdict", str(tmp_path / f"{name}.json")]
        (tmp_path / f"{name}.json").write_text(json.dumps(signed))
    resolved = as_("challenger", "stake", "resolve", n, "--outcome", "refuted", *verdicts,
                   "--key-file", str(keys["challenger"]))  # fmt: skip
    assert resolved["outcome"] == "refuted"
    balance = as_("publisher", "stake", "status", n, "--account", player("publisher").address)["balance"]
    assert balance == str(990 * 10**18)  # the stake is gone

    hub = as_("alice", "reputation")
    assert hub == as_("alice", "reputation", "--from-log")
    by = {r["account"]: r for r in hub}
    assert by["publisher"]["score"] == -20 - 10 and by["publisher"]["slashed"] == 1
    assert by["challenger"]["score"] == 5
    assert all(by[a]["score"] == 3 and by[a]["audits"]["agreed"] == 1 for a in AUDITORS)
