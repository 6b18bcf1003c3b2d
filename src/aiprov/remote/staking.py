"""Staking against a server: transactions are signed and sent here; the server logs each after reading the chain.

The chain key never leaves this machine. A step reaches the server's log as a transaction hash plus a proof (an
EIP-191 signature of `services.staking.proof_message` by the sender's key), which `POST /api/v1/stake/steps`
checks against the receipt it reads from its own RPC; so the server logs what the chain says, not what this
client says.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from aiprov.records import reading
from aiprov.remote.audits import Caller
from aiprov.remote.client import HubClient
from aiprov.services.staking import StakeDeployment, StakeStep

if TYPE_CHECKING:
    from aiprov.adapters.staking import SignedVerdict


class RemoteLedger:
    """A `StakeLedger` over a server's `/api/v1/stake` routes, as the token's account."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self.caller = Caller(client)
        self._info: dict[str, Any] | None = None

    def _hub(self) -> dict[str, Any]:
        if self._info is None:
            self._info = dict(self.client.json("GET", "/stake"))
        return self._info

    def actor(self) -> str:
        return self.caller.name("staking")

    def origin(self) -> str:
        with reading("staking info"):
            return str(self._hub()["origin"])

    def deployments(self) -> builtins.list[StakeDeployment]:
        with reading("staking info"):
            return [
                StakeDeployment(
                    str(d["token"]),
                    str(d["staking"]),
                    int(d["chain_id"]),
                    str(d["staking_tx"]),
                    int(d["staking_block"]),
                )
                for d in self._hub()["deployments"]
            ]

    def record(self, tx: str, *, claim_id: str | None, proof: bytes) -> StakeStep:
        body = {"tx": tx, "claim_id": claim_id, "proof": "0x" + proof.hex()}
        return StakeStep.from_json(self.client.json("POST", "/stake/steps", json=body))

    def record_verdict(self, verdict: SignedVerdict, *, claim_id: str | None, proof: bytes) -> StakeStep:
        body = {"verdict": verdict.to_json(), "claim_id": claim_id, "proof": "0x" + proof.hex()}
        return StakeStep.from_json(self.client.json("POST", "/stake/verdicts", json=body))

    def steps(self, contract: str, chain_claim: int) -> builtins.list[StakeStep]:
        params = {"contract": contract, "chain_claim": chain_claim}
        found = self.client.json("GET", "/stake/steps", params=params)
        with reading("stake steps"):
            return [StakeStep.from_json(s) for s in found]
