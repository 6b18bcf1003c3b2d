"""Stake behind evaluation claims on an EVM chain (AiprovStaking), each step mirrored as a log event.

Events: `stake.claim`, `stake.challenge`, `stake.auditor` (an auditor registered), `stake.verdict` (an auditor
signed a verdict; nothing is sent), `stake.resolve` (outcome `refuted`, `upheld` or `refunded`) and
`stake.withdraw`; the contracts' deployment is in the registry's `chain.deploy` event. An event is recorded only
after its transaction was mined with status 1, so a refused step records nothing. The subject of a claim's events
is its log claim id (the `id` that `aiprov claim --json` prints), so reputation over the log sees the stake next
to the claim; the on-chain number is `chain_claim` in the details.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiprov.errors import InvalidInput
from aiprov.services.anchoring import AnchorService, ChainConfig, connect

if TYPE_CHECKING:
    from aiprov.adapters.chain import Chain, TxResult
    from aiprov.adapters.staking import ClaimState, SignedVerdict, StakeParams, Staking

CLAIM = "stake.claim"
CHALLENGE = "stake.challenge"
AUDITOR = "stake.auditor"
VERDICT = "stake.verdict"
RESOLVE = "stake.resolve"
WITHDRAW = "stake.withdraw"
AMOUNTS = {"auditor_stake", "min_stake"}
EVERY = 2**62
"""`limit` for reading every stake event (the registry's default limit is 1000)."""
STATUS_AFTER = {
    CLAIM: "open", CHALLENGE: "challenged", WITHDRAW: "withdrawn", "refuted": "refuted", "upheld": "open",
    "refunded": "refunded",
}  # fmt: skip
"""The on-chain status a claim's last logged step leaves it in (`stake.resolve`: by its outcome; an upheld claim
is open again until its window ends)."""


@dataclass(frozen=True, slots=True)
class StakeDeployment:
    token: str
    staking: str
    chain_id: int
    tx: str
    block: int
    params: StakeParams | None = None

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "staking": self.staking, "staking_tx": self.tx}

    def record(self) -> dict[str, Any]:
        """What the `chain.deploy` event keeps of it."""
        out: dict[str, Any] = {**self.to_json(), "staking_block": self.block}
        if self.params is not None:
            from dataclasses import asdict

            out["staking_params"] = {k: str(v) for k, v in asdict(self.params).items()}
        return out


@dataclass(frozen=True, slots=True)
class StakeStep:
    """One mined step: what `aiprov stake … --json` prints and the log event's details hold."""

    action: str
    subject: str
    """The log claim id (`chain:<staking address>/<number>` when unnamed), or the account of an auditor or payout."""
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, **self.details}


@dataclass(frozen=True, slots=True)
class StakeCheck:
    check: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class StakeStatus:
    staking: str
    token: str
    chain_id: int
    params: StakeParams
    account: str | None
    balance: int | None
    credit: int | None
    auditor: bool | None
    claim: ClaimState | None

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "staking": self.staking,
            "token": self.token,
            "chain_id": self.chain_id,
            # Token amounts as strings (they pass 2**53), like every amount aiprov prints; the rest as numbers.
            "params": {k: str(v) if k in AMOUNTS else v for k, v in asdict(self.params).items()},
            "account": self.account,
            "balance": None if self.balance is None else str(self.balance),
            "credit": None if self.credit is None else str(self.credit),
            "auditor": self.auditor,
            "claim": None if self.claim is None else self.claim.to_json(),
        }


class StakeService:
    """Claims, challenges, verdicts, settlement and withdrawals on the hub's staking contract."""

    def __init__(
        self, anchoring: AnchorService, config: ChainConfig, *, clock: Callable[[], datetime], actor: str
    ) -> None:
        self.anchoring = anchoring
        self.config = config
        self.clock = clock
        self.actor = actor

    # wiring ------------------------------------------------------------------------------------------------------

    def _chain(self, *, signer: bool) -> Chain:
        return connect(self.config, signer=signer)

    def deployments(self) -> list[StakeDeployment]:
        """Staking deployments this hub recorded (in `chain.deploy` events, next to the registry), newest first."""
        from aiprov.services.anchoring import DEPLOY

        with self.anchoring.db.unit() as u:
            events = u.events(actions=[DEPLOY])
        return [
            StakeDeployment(d["token"], d["staking"], d["chain_id"], d["staking_tx"], d["staking_block"])
            for d in (e.details for e in events)
            if "staking" in d
        ]

    def _staking(self, *, signer: bool) -> Staking:
        from aiprov.adapters.chain import checksum
        from aiprov.adapters.staking import Staking

        chain = self._chain(signer=signer)
        recorded = self.deployments()
        address = checksum(self.config.staking) if self.config.staking else None
        if address is None:
            if not recorded:
                raise InvalidInput("no staking contract", hint="set AIPROV_STAKE_CONTRACT or run `aiprov chain deploy`")
            address = recorded[0].staking
        deployment = next((d for d in recorded if d.staking == address), None)
        expected = deployment.chain_id if deployment else self.config.expected_chain_id
        self.anchoring.check_chain_id(chain, expected, address)
        return Staking(chain, address)

    def _record(self, action: str, subject: str, details: dict[str, Any]) -> None:
        with self.anchoring.db.unit(write=True) as u:
            u.add_event(actor=self.actor, action=action, subject=subject, model=None, details=details, now=self.clock())

    def _step(self, action: str, subject: str, staking: Staking, result: TxResult, **details: Any) -> StakeStep:
        """Record a mined step under `subject` (a log claim id, or an account for auditor and payout steps)."""
        full = {
            "claim_id": subject if "chain_claim" in details else None,
            "contract": staking.address,
            "chain_id": staking.chain.chain_id,
            **details,
            "tx": result.tx,
            "block": result.block,
            "gas_used": result.gas_used,
        }
        self._record(action, subject, full)
        return StakeStep(action, subject, full)

    def _log_id(self, staking: Staking, chain_claim: int, claim_id: str | None) -> str:
        """The log claim id of on-chain claim `chain_claim`: given, else as this hub's `stake.claim` recorded it."""
        if claim_id is not None:
            return claim_id
        with self.anchoring.db.unit() as u:
            for e in u.events(actions=[CLAIM], limit=EVERY):
                if e.details.get("contract") == staking.address and e.details.get("chain_claim") == chain_claim:
                    return e.subject
        return f"chain:{staking.address}/{chain_claim}"

    # use cases ---------------------------------------------------------------------------------------------------

    def deploy(self, params: StakeParams | None = None, token: str | None = None) -> StakeDeployment:
        """Deploy AiprovStaking over `token` (default: a new AiprovToken whose admin and minter is the signer).

        Records nothing itself: `AnchorService.deploy` records it in the `chain.deploy` event (`record()`).
        """
        from aiprov.adapters.staking import StakeParams, Staking

        chain = self._chain(signer=True)
        params = params or StakeParams()
        signer = chain.account.address if chain.account else ""
        if token is None:
            created = Staking.deploy_token(chain, signer)
            assert created.contract_address is not None, "deploy_contract checks the receipt created a contract"
            token = created.contract_address
        result = Staking.deploy(chain, token, params)
        assert result.contract_address is not None
        return StakeDeployment(token, result.contract_address, chain.chain_id, result.tx, result.block, params)

    def units(self, amount: str, what: str) -> int:
        """A decimal token amount (`10`, `0.5`) in the staking token's base units, by its `decimals()`."""
        from aiprov.adapters.staking import to_units

        return to_units(amount, self._staking(signer=False).decimals(), what)

    def mint(self, to: str, amount: int) -> dict[str, Any]:
        """Mint stake tokens (the signer needs MINTER_ROLE on the token). Records nothing: the chain has it."""
        from aiprov.adapters.chain import checksum

        staking = self._staking(signer=True)
        data = staking.token.encode_abi("mint", args=[checksum(to), amount])
        result = staking.chain.transact({"to": staking.token.address, "data": data}, "minting stake tokens")
        return {"token": staking.token.address, "to": checksum(to), "amount": str(amount), "tx": result.tx}

    def claim(
        self,
        claim_id: str,
        version: bytes,
        spec: bytes,
        metric: str,
        value: int,
        tolerance: int,
        stake: int,
        *,
        approve: bool,
    ) -> StakeStep:
        staking = self._staking(signer=True)
        chain_claim, result = staking.claim(version, spec, metric, value, tolerance, stake, approve=approve)
        return self._step(
            CLAIM, claim_id, staking, result,
            chain_claim=chain_claim, publisher=staking.signer.address, version="sha256:" + version.hex(),
            spec="sha256:" + spec.hex(), metric=metric, value=str(value), tolerance=str(tolerance), stake=str(stake),
        )  # fmt: skip

    def challenge(self, chain_claim: int, bond: int | None, *, claim_id: str | None, approve: bool) -> StakeStep:
        staking = self._staking(signer=True)
        posted, result = staking.challenge(chain_claim, bond, approve=approve)
        state = staking.claim_state(chain_claim)
        return self._step(
            CHALLENGE, self._log_id(staking, chain_claim, claim_id), staking, result,
            chain_claim=chain_claim, round=state.round, publisher=state.publisher, challenger=staking.signer.address,
            bond=str(posted), resolve_by=state.resolve_by,
        )  # fmt: skip

    def register_auditor(self, *, approve: bool) -> StakeStep:
        staking = self._staking(signer=True)
        result = staking.register_auditor(approve=approve)
        auditor = staking.signer.address
        return self._step(AUDITOR, auditor, staking, result, auditor=auditor, registered=True)

    def leave_auditors(self) -> StakeStep:
        """Stop being an auditor; the stake may be withdrawn (`withdraw_auditor_stake`) after the exit delay."""
        staking = self._staking(signer=True)
        result = staking.leave_auditors()
        auditor = staking.signer.address
        exit_at = staking.auditor_exit(auditor)
        return self._step(AUDITOR, auditor, staking, result, auditor=auditor, registered=False, exit_at=exit_at)

    def verdict(
        self, chain_claim: int, measured: int, outcome: str, valid_s: int, *, claim_id: str | None
    ) -> SignedVerdict:
        """Sign a verdict on the claim's round with the signer's (the auditor's) key, valid `valid_s` seconds; log it.

        Sends nothing: `resolve` sends k of them.
        """
        staking = self._staking(signer=True)
        auditor = staking.signer
        state = staking.claim_state(chain_claim)
        if state.status != "challenged":
            raise InvalidInput(f"claim {chain_claim} is {state.status}, not under challenge: there is nothing to judge")
        with staking.chain.rpc("reading the latest block"):
            now = int(staking.chain.w3.eth.get_block("latest")["timestamp"])
        signed = staking.sign_verdict(auditor, chain_claim, state.round, measured, outcome, now + valid_s)
        details = {"contract": staking.address, "chain_id": staking.chain.chain_id, **signed.to_json()}
        details["chain_claim"] = details.pop("claim_id")
        log_id = self._log_id(staking, chain_claim, claim_id)
        self._record(VERDICT, log_id, {"claim_id": log_id, **details})
        return signed

    def resolve(
        self, chain_claim: int, outcome: str, verdicts: list[SignedVerdict], *, claim_id: str | None
    ) -> StakeStep:
        staking = self._staking(signer=True)
        for v in verdicts:
            if v.claim_id != chain_claim or v.outcome != outcome:
                raise InvalidInput(
                    f"the verdict of {v.signer} is on claim {v.claim_id} ({v.outcome}), not {chain_claim} ({outcome})"
                )
        state = staking.claim_state(chain_claim)
        result = staking.resolve(chain_claim, outcome, verdicts)
        slashed = state.stake if outcome == "refuted" else state.bond
        return self._step(
            RESOLVE, self._log_id(staking, chain_claim, claim_id), staking, result,
            chain_claim=chain_claim, round=state.round, outcome=outcome, publisher=state.publisher,
            challenger=state.challenger, auditors=sorted((v.signer for v in verdicts), key=lambda a: int(a, 16)),
            slashed=str(slashed),
        )  # fmt: skip

    def refund(self, chain_claim: int, *, claim_id: str | None) -> StakeStep:
        staking = self._staking(signer=True)
        state = staking.claim_state(chain_claim)
        result = staking.refund(chain_claim)
        return self._step(
            RESOLVE, self._log_id(staking, chain_claim, claim_id), staking, result,
            chain_claim=chain_claim, round=state.round, outcome="refunded", publisher=state.publisher,
            challenger=state.challenger, auditors=[], slashed="0",
        )  # fmt: skip

    def withdraw(self, chain_claim: int | None, *, claim_id: str | None, auditor_stake: bool = False) -> StakeStep:
        """Pull tokens: by default every credited payout.

        With `chain_claim`, the claim's stake after its window (no challenge active); with `auditor_stake`, a former
        auditor's stake after its exit delay.
        """
        staking = self._staking(signer=True)
        account = staking.signer.address
        if auditor_stake:
            amount, result = staking.withdraw_auditor_stake()
            return self._step(WITHDRAW, account, staking, result, account=account, amount=str(amount), auditor=True)
        if chain_claim is None:
            amount, result = staking.withdraw()
            return self._step(WITHDRAW, account, staking, result, account=account, amount=str(amount))
        amount, result = staking.withdraw_stake(chain_claim)
        return self._step(
            WITHDRAW, self._log_id(staking, chain_claim, claim_id), staking, result,
            chain_claim=chain_claim, account=account, amount=str(amount),
        )  # fmt: skip

    def check(self, chain_claim: int) -> list[StakeCheck]:
        """Compare the claim's on-chain state with this hub's log: content, parties, amounts, status, each tx.

        Reads only; the caller decides what a failed check means (`aiprov stake verify` exits 6).
        """
        from aiprov.adapters.staking import content_hash

        staking = self._staking(signer=False)
        state = staking.claim_state(chain_claim)
        with self.anchoring.db.unit() as u:
            found = u.events(actions=[CLAIM, CHALLENGE, RESOLVE, WITHDRAW], limit=EVERY)
        steps = sorted(
            (
                e
                for e in found
                if e.details.get("contract") == staking.address and e.details.get("chain_claim") == chain_claim
            ),
            key=lambda e: e.leaf_index if e.leaf_index is not None else -1,
        )
        claimed = next((e.details for e in steps if e.action == CLAIM), None)
        if claimed is None:
            return [StakeCheck("claim.logged", False, f"no stake.claim event for claim {chain_claim} in this log")]
        checks = [StakeCheck("claim.logged", True, f"logged as claim {steps[0].subject}")]
        version, spec = (bytes.fromhex(claimed[k].removeprefix("sha256:")) for k in ("version", "spec"))
        digest = content_hash(version, spec, claimed["metric"], int(claimed["value"]), int(claimed["tolerance"]))
        checks.append(
            StakeCheck("claim.content", digest == state.content_hash, "version, spec, metric, value, tolerance")
        )
        same = (claimed["publisher"], int(claimed["stake"])) == (state.publisher, state.stake)
        checks.append(StakeCheck("claim.stake", same, f"publisher {state.publisher}, stake {state.stake}"))
        challenge = next((e.details for e in reversed(steps) if e.action == CHALLENGE), None)  # the latest round
        if challenge is not None or state.challenger is not None:
            logged = (challenge["challenger"], int(challenge["bond"])) if challenge else None
            ok = logged == (state.challenger, state.bond)
            checks.append(
                StakeCheck("claim.challenge", ok, f"chain: {state.challenger} bond {state.bond}; log: {logged}")
            )
        last = steps[-1]
        expected = STATUS_AFTER[last.details["outcome"] if last.action == RESOLVE else last.action]
        checks.append(StakeCheck("claim.status", expected == state.status, f"chain: {state.status}; log: {expected}"))
        for e in steps:
            ok = staking.chain.mined(e.details["tx"]) == staking.address
            checks.append(StakeCheck(f"{e.action}.tx", ok, f"{e.details['tx']} {'mined' if ok else 'not found'}"))
        return checks

    def status(self, chain_claim: int | None, account: str | None) -> StakeStatus:
        """The contract's parameters, `account`'s (default: the signer's, if any) balance and credit, a claim."""
        staking = self._staking(signer=False)
        if account is None and self.config.private_key is not None:
            account = self._chain(signer=True).account.address  # type: ignore[union-attr]
        claim = staking.claim_state(chain_claim) if chain_claim is not None else None
        return StakeStatus(
            staking.address, staking.token.address, staking.chain.chain_id, staking.params(), account,
            staking.balance(account) if account else None, staking.credit(account) if account else None,
            staking.is_auditor(account) if account else None, claim,
        )  # fmt: skip
