"""A staking game on a real anvil: a fresh token and AiprovStaking, funded players, and time travel."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaintools import OPERATOR_KEY, Anvil
from eth_account import Account
from eth_account.signers.local import LocalAccount

from aiprov.adapters.chain import Chain, TxResult, parse_private_key
from aiprov.adapters.staking import WAD, SignedVerdict, StakeParams, Staking

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
VERSION = hashlib.sha256(b"alice/iris@1").digest()
SPEC = hashlib.sha256(b"iris, test split 0.3, seed 0").digest()
PLAYERS = ("publisher", "challenger", "outsider", *(f"auditor{i}" for i in range(6)))
FAST = StakeParams(challenge_window_s=100, resolution_period_s=200, bond_factor_bps=5_000, quorum=3)


def artifact_for_tests(name: str) -> dict[str, Any]:
    """A test-only contract build (contracts/test/, built by contracts/build.mjs into tests/chain/artifacts)."""
    artifact: dict[str, Any] = json.loads((ARTIFACTS / f"{name}.json").read_text())
    return artifact


def player(name: str) -> LocalAccount:
    """A deterministic account per player name (funded by `new_game` with anvil_setBalance)."""
    account: LocalAccount = Account.from_key(hashlib.sha256(f"aiprov stake test {name}".encode()).digest())
    return account


@dataclass
class Game:
    anvil: Anvil
    staking: str
    token: str
    params: StakeParams
    _views: dict[str, Staking] = field(default_factory=dict)

    def as_(self, name: str) -> Staking:
        """The staking contract as player `name` signs."""
        if name not in self._views:
            chain = Chain(self.anvil.url, account=player(name))
            self._views[name] = Staking(chain, self.staking)
        return self._views[name]

    def address(self, name: str) -> str:
        return str(player(name).address)

    def auditors(self, n: int) -> list[str]:
        """`n` registered auditors' names."""
        return [f"auditor{i}" for i in range(n)]

    def verdicts(self, claim_id: int, outcome: str, names: list[str], rnd: int = 1) -> list[SignedVerdict]:
        deadline = self.now() + 10_000
        view = self.as_("outsider")
        return [view.sign_verdict(player(n), claim_id, rnd, 9 * WAD // 10, outcome, deadline) for n in names]

    def now(self) -> int:
        return int(self.anvil.w3.eth.get_block("latest")["timestamp"])

    def travel(self, seconds: int) -> None:
        """Move the chain's clock forward `seconds` and mine a block there."""
        self.anvil.rpc("evm_increaseTime", seconds)
        self.anvil.rpc("evm_mine")

    def raw(self, name: str, fn: str, *args: Any) -> TxResult:
        """Call `fn` as `name` with no checks on our side, so the contract's own refusal is what is seen."""
        view = self.as_(name)
        data = view.contract.encode_abi(fn, args=list(args))
        return view.chain.transact({"to": view.address, "data": data}, f"calling {fn}")


def deploy_game(anvil: Anvil, params: StakeParams = FAST, token: str | None = None, mint: int = 1_000 * WAD) -> Game:
    """A fresh token (unless `token`) and staking contract; every player funded with ETH, tokens and approval."""
    deployer = Chain(anvil.url, account=parse_private_key(OPERATOR_KEY, "test key"))
    if token is None:
        created = Staking.deploy_token(deployer, deployer.account.address if deployer.account else "")
        assert created.contract_address is not None
        token = created.contract_address
    staking = Staking.deploy(deployer, token, params).contract_address
    assert staking is not None
    game = Game(anvil, staking, token, params)
    admin = Staking(deployer, staking)
    for name in PLAYERS:
        address = game.address(name)
        anvil.rpc("anvil_setBalance", address, hex(10**20))
        data = admin.token.encode_abi("mint", args=[address, mint])
        deployer.transact({"to": token, "data": data}, "minting")
    return game


def register_auditors(game: Game, n: int) -> list[str]:
    names = game.auditors(n)
    for name in names:
        game.as_(name).register_auditor(approve=True)
    return names
