"""Staking steps (`/api/v1/stake`): the hub logs a step another machine sent, after reading it from the chain.

Clients sign and send their own transactions (`aiprov --server URL stake …`); they report only the hash and a
proof that the sender's key speaks for the caller's account. The hub reads the receipt through its own RPC
(AIPROV_CHAIN_RPC where it runs), decodes the step from the staking contract's event and logs it as the caller,
so the log holds what the chain says, once per transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from aiprov.api.deps import CallerDep, ContainerDep, require_write
from aiprov.api.limits import JsonRoute
from aiprov.api.schemas import StakeStepIn, StakeVerdictIn
from aiprov.errors import InvalidInput
from aiprov.extras import require

router = APIRouter(tags=["staking"], route_class=JsonRoute)


def _proof(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 65:
        raise InvalidInput("the proof is not a 65-byte signature in hex (0x…)")
    return raw


@router.get("/stake", summary="The hub's staking contracts and log origin")
def stake_info(container: ContainerDep) -> dict[str, Any]:
    """What a client needs to stake against this hub: the contracts it logs steps of, and the origin proofs name."""
    recorder = container.stake_recorder
    return {"origin": recorder.origin, "deployments": [d.record() | {"chain_id": d.chain_id}
                                                      for d in recorder.deployments()]}  # fmt: skip


@router.post("/stake/steps", status_code=status.HTTP_201_CREATED, summary="Log a mined staking transaction")
def record_step(body: StakeStepIn, container: ContainerDep, caller: CallerDep) -> dict[str, Any]:
    """Read `tx` from the chain and log its step as the caller (whose proof its sender must have signed)."""
    name = require_write(caller, "staking")
    step = container.stake_recorder.record(body.tx, claim_id=body.claim_id, proof=_proof(body.proof), actor=name)
    return step.to_json()


@router.post("/stake/verdicts", status_code=status.HTTP_201_CREATED, summary="Log an auditor's signed verdict")
def record_verdict(body: StakeVerdictIn, container: ContainerDep, caller: CallerDep) -> dict[str, Any]:
    name = require_write(caller, "staking")
    require("staking", "web3")
    from aiprov.adapters.staking import SignedVerdict

    verdict = SignedVerdict.from_json(body.verdict, "the verdict")
    step = container.stake_recorder.record_verdict(
        verdict, claim_id=body.claim_id, proof=_proof(body.proof), actor=name
    )
    return step.to_json()


@router.get("/stake/steps", summary="The logged steps of an on-chain claim")
def list_steps(
    container: ContainerDep,
    contract: Annotated[str, Query(max_length=42, description="The staking contract (0x…).")],
    chain_claim: Annotated[int, Query(ge=1, le=2**64, description="The on-chain claim number.")],
) -> list[dict[str, Any]]:
    return [s.to_json() for s in container.stake_recorder.steps(contract, chain_claim)]
