"""Gas used by AiprovStaking on a real anvil: claim, challenge, resolve (k = 3 and 5), refund and withdrawals.

    python benchmarks/bench_stake_gas.py [--json]

Starts `node_modules/.bin/anvil` (run `npm ci` first) on a free port, deploys AiprovToken and two AiprovStaking
contracts (quorum 3 and 5, otherwise the default parameters), plays the game through aiprov's staking adapter and
reads `gasUsed` from the receipts. Gas is deterministic for given inputs, so one run is enough. Goals (issue 15):
claim <= 150,000 and resolve with k = 3 <= 200,000; the script prints them with PASS or MISS and exits 0 either
way (it reports, it does not judge), nonzero only when something failed to run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from aiprov.adapters.chain import Chain, parse_private_key
from aiprov.adapters.staking import WAD, StakeParams, Staking
from chain_gas import ANVIL, KEY, running_anvil

GOALS = {"claim (first of a contract)": 150_000, "claim": 150_000, "resolve (k=3)": 200_000}
STAKE = 10 * WAD
VERSION = hashlib.sha256(b"bench/iris@1").digest()
SPEC = hashlib.sha256(b"iris test split").digest()


def account(name: str) -> LocalAccount:
    found: LocalAccount = Account.from_key(hashlib.sha256(f"aiprov gas bench {name}".encode()).digest())
    return found


def play(url: str, deployer: Chain, token: str, quorum: int) -> dict[str, int]:
    """One staking contract with `quorum`: an unchallenged claim withdrawn, and a refuted one resolved."""
    staking = Staking.deploy(deployer, token, replace(StakeParams(), quorum=quorum)).contract_address
    assert staking is not None
    w3 = Web3(HTTPProvider(url))
    admin = Staking(deployer, staking)
    names = ["publisher", "challenger", *(f"auditor{i}" for i in range(quorum))]
    views: dict[str, Staking] = {}
    for name in names:
        who = account(name)
        w3.provider.make_request("anvil_setBalance", [who.address, hex(10**20)])  # type: ignore[arg-type]
        data = admin.token.encode_abi("mint", args=[who.address, 1_000 * WAD])
        deployer.transact({"to": token, "data": data}, "minting")
        views[name] = Staking(Chain(url, account=who), staking)
    for i in range(quorum):
        views[f"auditor{i}"].register_auditor(approve=True)
    publisher, challenger = views["publisher"], views["challenger"]
    gas: dict[str, int] = {}
    _, first = publisher.claim(VERSION, SPEC, "accuracy", 99 * WAD // 100, WAD // 200, STAKE, approve=True)
    gas["claim (first of a contract)"] = first.gas_used
    honest, later = publisher.claim(VERSION, SPEC, "accuracy", 90 * WAD // 100, WAD // 200, STAKE, approve=True)
    gas["claim"] = later.gas_used
    claim_id, _ = publisher.claim(VERSION, SPEC, "accuracy", 99 * WAD // 100, WAD // 200, STAKE, approve=True)
    gas["challenge"] = challenger.challenge(claim_id, approve=True)[1].gas_used
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
    verdicts = [
        admin.sign_verdict(account(f"auditor{i}"), claim_id, 1, 90 * WAD // 100, "refuted", deadline)
        for i in range(quorum)
    ]
    gas[f"resolve (k={quorum})"] = admin.resolve(claim_id, "refuted", verdicts).gas_used
    gas["withdraw (payout)"] = challenger.withdraw()[1].gas_used
    w3.provider.make_request("evm_increaseTime", [StakeParams().challenge_window_s])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    gas["withdrawStake (unchallenged)"] = publisher.withdraw_stake(honest)[1].gas_used
    return gas


def measure(url: str) -> dict[str, Any]:
    deployer = Chain(url, account=parse_private_key(KEY, "anvil's dev key"))
    token_tx = Staking.deploy_token(deployer, deployer.account.address if deployer.account else "")
    token = token_tx.contract_address
    assert token is not None
    three = play(url, deployer, token, 3)
    five = play(url, deployer, token, 5)
    return {"deploy token": token_tx.gas_used, **three, "resolve (k=5)": five["resolve (k=5)"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if not ANVIL.exists():
        print(f"anvil is missing at {ANVIL}: run `npm ci --no-audit --no-fund`", file=sys.stderr)
        return 1
    with running_anvil() as url:
        result = measure(url)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for name, gas in result.items():
        goal = GOALS.get(name)
        verdict = f"goal <= {goal:,}: {'PASS' if gas <= goal else 'MISS'}" if goal else ""
        print(f"{name:<32} {gas:>10,} gas  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
