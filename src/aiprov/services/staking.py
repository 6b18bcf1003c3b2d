"""Stake behind evaluation claims on an EVM chain (AiprovStaking), each step mirrored as a log event.

Events: `stake.claim`, `stake.challenge`, `stake.auditor` (an auditor registered), `stake.verdict` (an auditor
signed a verdict; nothing is sent), `stake.resolve` (outcome `refuted`, `upheld` or `refunded`) and
`stake.withdraw`; the contracts' deployment is in the registry's `chain.deploy` event. The subject of a claim's
events is its log claim id (the `id` that `aiprov claim --json` prints), so reputation over the log sees the stake
next to the claim; the on-chain number is `chain_claim` in the details.

Two halves, so the same commands work on a home and against a server (`--server`):
- `StakeService` sends: it signs and sends transactions with the caller's own key, on the caller's own RPC (the
  key never reaches a hub), then hands the mined transaction's hash to a `StakeLedger`.
- `StakeRecorder` logs: given only a transaction hash, it reads the receipt from the hub's own RPC, decodes the
  step from the contract's event, and logs it as the account whose proof the transaction's sender signed. A home
  (`HomeLedger`) and a server's `POST /api/v1/stake/steps` both end there, so an event is the chain's word, never
  the reporter's, and nothing is recorded for a transaction that reverted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from aiprov.core.canonical import canonical_json
from aiprov.errors import AiprovError, Conflict, Forbidden, InvalidInput
from aiprov.services.anchoring import ChainConfig, check_chain_id, connect

if TYPE_CHECKING:
    from aiprov.adapters.chain import Chain, TxResult
    from aiprov.adapters.staking import ClaimState, MinedStep, SignedVerdict, StakeParams, Staking
    from aiprov.ports import RegistryStore
    from aiprov.records import ClaimRecord, EventRecord

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


TX = re.compile(r"0x[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class StakeStep:
    """One logged step: what `aiprov stake … --json` prints and the log event's details hold."""

    action: str
    subject: str
    """The log claim id (`chain:<staking address>/<number>` when unnamed), or the account of an auditor or payout."""
    details: dict[str, Any]
    log_index: int | None = None
    actor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action, **self.details, "subject": self.subject, "log_index": self.log_index,
            "actor": self.actor,
        }  # fmt: skip

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> StakeStep:
        from aiprov.records import reading

        with reading("stake step"):
            rest = {k: v for k, v in value.items() if k not in ("action", "subject", "log_index", "actor")}
            index = value.get("log_index")
            return cls(str(value["action"]), str(value["subject"]), rest, None if index is None else int(index),
                       value.get("actor"))  # fmt: skip

    @classmethod
    def of_event(cls, e: EventRecord) -> StakeStep:
        return cls(e.action, e.subject, dict(e.details), e.leaf_index, e.actor)


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


def proof_message(origin: str, chain_id: int, what: str, actor: str) -> bytes:
    """What a step's sender signs (EIP-191) so that a hub logs the step as `actor` (docs/staking.md, "Proofs").

    It names the hub's log (`origin`), the chain and the transaction hash or verdict signature (`what`), so a proof
    cannot be replayed on another hub, chain or step, nor claimed by another account.
    """
    return f"aiprov stake step\nlog: {origin}\nchain: {chain_id}\nstep: {what}\naccount: {actor}\n".encode()


def recover_proof(message: bytes, proof: bytes) -> str:
    """The address that signed `message` with EIP-191 (`personal_sign`); InvalidInput for a malformed signature."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        return str(Account.recover_message(encode_defunct(primitive=message), signature=proof))
    except Exception:  # eth_keys raises several types for a malformed signature; all mean "not a signature"
        raise InvalidInput("the proof is not a valid secp256k1 signature (65 bytes)") from None


def spec_digest(claim: ClaimRecord) -> bytes:
    """The evaluation spec a staked claim names: sha256 of the canonical JSON of its dataset digest, task, split."""
    spec = {"dataset_digest": claim.dataset_digest, "task": claim.task, "split": claim.split}
    return hashlib.sha256(canonical_json(spec)).digest()


@dataclass(frozen=True, slots=True)
class ClaimTerms:
    """What goes on chain for one metric of a log claim: the five values AiprovStaking hashes."""

    version: bytes
    spec: bytes
    metric: str
    value: int
    tolerance: int

    @classmethod
    def of(cls, claim: ClaimRecord, metric: str | None) -> ClaimTerms:
        """The terms of `claim`'s `metric` (default: its only metric); raises InvalidInput for an unknown metric."""
        from aiprov.adapters.staking import to_wad

        if metric is None:
            if len(claim.metrics) != 1:
                raise InvalidInput(
                    f"claim {claim.id} claims {', '.join(sorted(claim.metrics))}: stake one at a time",
                    hint="--metric NAME",
                )
            (metric,) = claim.metrics
        if metric not in claim.metrics:
            raise InvalidInput(f"claim {claim.id} claims no {metric!r} (it claims {', '.join(sorted(claim.metrics))})")
        return cls(
            version=bytes.fromhex(claim.digest.removeprefix("sha256:")),
            spec=spec_digest(claim),
            metric=metric,
            value=to_wad(repr(float(claim.metrics[metric])), "the claimed value"),
            tolerance=to_wad(repr(float(claim.tolerance)), "the claim's tolerance"),
        )


class StakeLedger(Protocol):
    """Where mined steps are logged: this home (`HomeLedger`) or a server (`remote.staking.RemoteLedger`)."""

    def actor(self) -> str:
        """The account the steps are logged as (the home's actor, or the token's user)."""
        ...

    def origin(self) -> str:
        """The hub's log origin, which every proof names."""
        ...

    def deployments(self) -> list[StakeDeployment]: ...

    def record(self, tx: str, *, claim_id: str | None, proof: bytes) -> StakeStep: ...

    def record_verdict(self, verdict: SignedVerdict, *, claim_id: str | None, proof: bytes) -> StakeStep: ...

    def steps(self, contract: str, chain_claim: int) -> list[StakeStep]:
        """The logged steps of on-chain claim `chain_claim` of `contract`, in log order."""
        ...


def staking_at(config: ChainConfig, recorded: list[StakeDeployment], *, signer: bool) -> Staking:
    """The staking contract configured (AIPROV_STAKE_CONTRACT) or else the newest recorded, chain id checked."""
    from aiprov.adapters.chain import checksum
    from aiprov.adapters.staking import Staking

    chain = connect(config, signer=signer)
    address = checksum(config.staking) if config.staking else None
    if address is None:
        if not recorded:
            raise InvalidInput("no staking contract", hint="set AIPROV_STAKE_CONTRACT or run `aiprov chain deploy`")
        address = recorded[0].staking
    deployment = next((d for d in recorded if d.staking == address), None)
    expected = deployment.chain_id if deployment else config.expected_chain_id
    check_chain_id(chain, expected, address, contract="staking contract", setting="AIPROV_STAKE_CONTRACT")
    return Staking(chain, address)


class StakeRecorder:
    """Logs staking steps as the chain says they happened: the one way a `stake.*` event enters the log.

    `claims` reads a log claim by id (to check that a staked claim is the caller's and says what went on chain).
    """

    def __init__(
        self,
        db: RegistryStore,
        config: ChainConfig,
        *,
        clock: Callable[[], datetime],
        origin: str,
        claims: Callable[[int], ClaimRecord],
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.origin = origin
        self.claims = claims

    def deployments(self) -> list[StakeDeployment]:
        """Staking deployments this hub recorded (in `chain.deploy` events, next to the registry), newest first."""
        from aiprov.services.anchoring import DEPLOY

        with self.db.unit() as u:
            events = u.events(actions=[DEPLOY])
        return [
            StakeDeployment(d["token"], d["staking"], d["chain_id"], d["staking_tx"], d["staking_block"])
            for d in (e.details for e in events)
            if "staking" in d
        ]

    def contract(self) -> Staking:
        """The hub's staking contract, read through the hub's own RPC (AIPROV_CHAIN_RPC where the hub runs)."""
        return staking_at(self.config, self.deployments(), signer=False)

    def record(self, tx: str, *, claim_id: str | None, proof: bytes | None, actor: str) -> StakeStep:
        """Log the step transaction `tx` made, as `actor`, whose `proof` its sender signed (None: trusted caller).

        Raises InvalidInput (not a staking step, or `claim_id` disagrees with the log), NotFound (not mined, or no
        such log claim), TransactionReverted, Forbidden (the proof is not the sender's, or the claim is not
        `actor`'s), Conflict (already logged).
        """
        tx = tx.lower()
        if not TX.fullmatch(tx):
            raise InvalidInput(f"{tx[:80]!r} is not a transaction hash (0x and 64 hex digits)")
        staking = self.contract()
        mined = staking.read_step(tx)
        if proof is not None:
            signer = recover_proof(proof_message(self.origin, staking.chain.chain_id, tx, actor), proof)
            if signer != mined.sender:
                raise Forbidden(
                    f"the proof is signed by {signer}, but {mined.sender} sent transaction {tx}",
                    hint="sign the step's proof with the key that sent it",
                )
        action, subject, details = self._decode(staking, mined, claim_id, actor)
        full = {
            "claim_id": subject if "chain_claim" in details else None,
            "contract": staking.address,
            "chain_id": staking.chain.chain_id,
            **details,
            "tx": tx,
            "block": mined.block,
            "gas_used": mined.gas_used,
        }
        return self._log(action, subject, full, actor, unique=("tx", tx))

    def record_verdict(
        self, verdict: SignedVerdict, *, claim_id: str | None, proof: bytes | None, actor: str
    ) -> StakeStep:
        """Log an auditor's signed verdict (nothing is sent): its EIP-712 signature and `proof` must be the signer's."""
        staking = self.contract()
        if staking.recover_verdict(verdict) != verdict.signer:
            raise InvalidInput(f"the verdict is not signed by {verdict.signer} for {staking.address}")
        signature = "0x" + verdict.signature.hex()
        if proof is not None:
            message = proof_message(self.origin, staking.chain.chain_id, signature, actor)
            if recover_proof(message, proof) != verdict.signer:
                raise Forbidden(f"the proof is not signed by the verdict's signer {verdict.signer}")
        state = staking.claim_state(verdict.claim_id)
        if state.status != "challenged" or state.round != verdict.round:
            raise InvalidInput(
                f"claim {verdict.claim_id} is {state.status} in round {state.round}: a verdict on round "
                f"{verdict.round} judges nothing"
            )
        log_id = self._log_id(staking.address, verdict.claim_id, claim_id)
        details = {"contract": staking.address, "chain_id": staking.chain.chain_id, **verdict.to_json()}
        details["chain_claim"] = details.pop("claim_id")
        return self._log(VERDICT, log_id, {"claim_id": log_id, **details}, actor, unique=("signature", signature))

    def steps(self, contract: str, chain_claim: int) -> list[StakeStep]:
        with self.db.unit() as u:
            found = u.events(actions=[CLAIM, CHALLENGE, VERDICT, RESOLVE, WITHDRAW], limit=EVERY)
        contract = contract.lower()
        mine = [
            e
            for e in found
            if str(e.details.get("contract")).lower() == contract and e.details.get("chain_claim") == chain_claim
        ]
        mine.sort(key=lambda e: e.leaf_index if e.leaf_index is not None else -1)
        return [StakeStep.of_event(e) for e in mine]

    # -------------------------------------------------------------------------------------------------------------

    def _log(
        self, action: str, subject: str, details: dict[str, Any], actor: str, *, unique: tuple[str, str]
    ) -> StakeStep:
        key, value = unique
        with self.db.unit(write=True) as u:
            # One write unit: two reporters of one transaction cannot both log it.
            for e in u.events(actions=[action], limit=EVERY):
                if e.details.get("contract") == details["contract"] and e.details.get(key) == value:
                    raise Conflict(f"{action} {value} is already in the log (entry {e.leaf_index})")
            index = u.add_event(actor=actor, action=action, subject=subject, model=None, details=details,
                                now=self.clock())  # fmt: skip
        return StakeStep(action, subject, details, index, actor)

    def _log_id(self, contract: str, chain_claim: int, given: str | None) -> str:
        """The log claim id of on-chain claim `chain_claim`, as its `stake.claim` was logged; `given` must agree."""
        logged = next((s.subject for s in self.steps(contract, chain_claim) if s.action == CLAIM), None)
        found = logged or f"chain:{contract}/{chain_claim}"
        if given is not None and given != found:
            raise InvalidInput(f"on-chain claim {chain_claim} is logged as claim {found}, not {given}")
        return found

    def _decode(
        self, staking: Staking, m: MinedStep, claim_id: str | None, actor: str
    ) -> tuple[str, str, dict[str, Any]]:
        """(action, subject, details) of a mined step, every value read from the chain."""
        from aiprov.adapters.staking import content_hash, metric_name

        a, st = m.args, m.state
        if m.event in ("AuditorRegistered", "AuditorLeft"):
            auditor = str(a["auditor"])
            if m.event == "AuditorRegistered":
                return AUDITOR, auditor, {"auditor": auditor, "registered": True}
            return AUDITOR, auditor, {"auditor": auditor, "registered": False, "exit_at": int(a["exitAt"])}
        if m.event == "Withdrawn":
            account = str(a["account"])
            details: dict[str, Any] = {"account": account, "amount": str(a["amount"])}
            if m.function == "withdrawAuditorStake":
                details["auditor"] = True
            return WITHDRAW, account, details
        assert st is not None, "every other step names a claim, whose state read_step read"
        n = int(a["claimId"])
        if m.event == "Claimed":
            if claim_id is None:
                raise InvalidInput(
                    "a staked claim is logged under its log claim id", hint="aiprov stake record TX --claim-id ID"
                )
            version, spec = bytes(a["versionDigest"]), bytes(a["specDigest"])
            metric = metric_name(bytes(a["metric"]))
            if claim_id.isascii() and claim_id.isdigit():
                claim = self.claims(int(claim_id))
                if claim.publisher != actor:
                    raise Forbidden(f"claim {claim_id} is {claim.publisher}'s: only its publisher may stake it")
                t = ClaimTerms.of(claim, metric)
                if content_hash(t.version, t.spec, t.metric, t.value, t.tolerance) != st.content_hash:
                    raise InvalidInput(
                        f"on-chain claim {n} does not state what log claim {claim_id} does (version, spec, "
                        f"{metric} value or tolerance differ)"
                    )
            return CLAIM, claim_id, {
                "chain_claim": n, "publisher": str(a["publisher"]), "version": "sha256:" + version.hex(),
                "spec": "sha256:" + spec.hex(), "metric": metric, "value": str(a["value"]),
                "tolerance": str(a["tolerance"]), "stake": str(a["stake"]),
            }  # fmt: skip
        subject = self._log_id(staking.address, n, claim_id)
        if m.event == "Challenged":
            return CHALLENGE, subject, {
                "chain_claim": n, "round": int(a["round"]), "publisher": st.publisher,
                "challenger": str(a["challenger"]), "bond": str(a["bond"]), "resolve_by": int(a["resolveBy"]),
            }  # fmt: skip
        if m.event in ("Resolved", "Refunded"):
            refunded = m.event == "Refunded"
            outcome = "refunded" if refunded else ("refuted" if int(a["outcome"]) == 1 else "upheld")
            auditors = [] if refunded else sorted((str(x) for x in a["auditors"]), key=lambda x: int(x, 16))
            return RESOLVE, subject, {
                "chain_claim": n, "round": int(a["round"]), "outcome": outcome, "publisher": st.publisher,
                "challenger": st.challenger, "auditors": auditors, "slashed": "0" if refunded else str(a["slashed"]),
            }  # fmt: skip
        assert m.event == "StakeWithdrawn"
        return WITHDRAW, subject, {"chain_claim": n, "account": str(a["publisher"]), "amount": str(a["stake"])}


class HomeLedger:
    """A home's own log: steps go to its `StakeRecorder` as the home's actor (the home sent them itself)."""

    def __init__(self, recorder: StakeRecorder, actor: str) -> None:
        self.recorder = recorder
        self._actor = actor

    def actor(self) -> str:
        return self._actor

    def origin(self) -> str:
        return self.recorder.origin

    def deployments(self) -> list[StakeDeployment]:
        return self.recorder.deployments()

    def record(self, tx: str, *, claim_id: str | None, proof: bytes) -> StakeStep:
        return self.recorder.record(tx, claim_id=claim_id, proof=proof, actor=self._actor)

    def record_verdict(self, verdict: SignedVerdict, *, claim_id: str | None, proof: bytes) -> StakeStep:
        return self.recorder.record_verdict(verdict, claim_id=claim_id, proof=proof, actor=self._actor)

    def steps(self, contract: str, chain_claim: int) -> list[StakeStep]:
        return self.recorder.steps(contract, chain_claim)


class StakeService:
    """Claims, challenges, verdicts, settlement and withdrawals, sent with the caller's key, logged by `ledger`."""

    def __init__(self, config: ChainConfig, ledger: StakeLedger) -> None:
        self.config = config
        self.ledger = ledger

    # wiring ------------------------------------------------------------------------------------------------------

    def _chain(self, *, signer: bool) -> Chain:
        return connect(self.config, signer=signer)

    def _staking(self, *, signer: bool) -> Staking:
        return staking_at(self.config, self.ledger.deployments(), signer=signer)

    def _proof(self, staking: Staking, what: str) -> bytes:
        from eth_account.messages import encode_defunct

        message = proof_message(self.ledger.origin(), staking.chain.chain_id, what, self.ledger.actor())
        return bytes(staking.signer.sign_message(encode_defunct(primitive=message)).signature)

    def _logged(self, staking: Staking, result: TxResult, claim_id: str | None = None) -> StakeStep:
        """Log a mined step; if that fails, say that the step is on chain and how to log it later."""
        try:
            return self.ledger.record(result.tx, claim_id=claim_id, proof=self._proof(staking, result.tx))
        except AiprovError as e:
            again = f"aiprov stake record {result.tx}" + (f" --claim-id {claim_id}" if claim_id else "")
            e.message = f"transaction {result.tx} is mined, but logging it failed: {e.message}"
            e.hint = f"log it with `{again}`"
            raise

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

    def claim_logged(self, claim: ClaimRecord, metric: str | None, stake: int, *, approve: bool) -> StakeStep:
        """Stake `stake` behind one metric of log claim `claim`, its terms taken from the claim itself."""
        if claim.publisher != self.ledger.actor():
            raise Forbidden(f"claim {claim.id} is {claim.publisher}'s: only its publisher may stake it")
        t = ClaimTerms.of(claim, metric)
        return self.claim(str(claim.id), t.version, t.spec, t.metric, t.value, t.tolerance, stake, approve=approve)

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
        _, result = staking.claim(version, spec, metric, value, tolerance, stake, approve=approve)
        return self._logged(staking, result, claim_id)

    def challenge(self, chain_claim: int, bond: int | None, *, approve: bool) -> StakeStep:
        staking = self._staking(signer=True)
        _, result = staking.challenge(chain_claim, bond, approve=approve)
        return self._logged(staking, result)

    def register_auditor(self, *, approve: bool) -> StakeStep:
        staking = self._staking(signer=True)
        return self._logged(staking, staking.register_auditor(approve=approve))

    def leave_auditors(self) -> StakeStep:
        """Stop being an auditor; the stake may be withdrawn (`withdraw_auditor_stake`) after the exit delay."""
        staking = self._staking(signer=True)
        return self._logged(staking, staking.leave_auditors())

    def verdict(self, chain_claim: int, measured: int, outcome: str, valid_s: int) -> SignedVerdict:
        """Sign a verdict on the claim's round with the signer's (the auditor's) key, valid `valid_s` seconds; log it.

        Sends nothing: `resolve` sends k of them.
        """
        staking = self._staking(signer=True)
        state = staking.claim_state(chain_claim)
        if state.status != "challenged":
            raise InvalidInput(f"claim {chain_claim} is {state.status}, not under challenge: there is nothing to judge")
        with staking.chain.rpc("reading the latest block"):
            now = int(staking.chain.w3.eth.get_block("latest")["timestamp"])
        signed = staking.sign_verdict(staking.signer, chain_claim, state.round, measured, outcome, now + valid_s)
        proof = self._proof(staking, "0x" + signed.signature.hex())
        self.ledger.record_verdict(signed, claim_id=None, proof=proof)
        return signed

    def resolve(self, chain_claim: int, outcome: str, verdicts: list[SignedVerdict]) -> StakeStep:
        staking = self._staking(signer=True)
        for v in verdicts:
            if v.claim_id != chain_claim or v.outcome != outcome:
                raise InvalidInput(
                    f"the verdict of {v.signer} is on claim {v.claim_id} ({v.outcome}), not {chain_claim} ({outcome})"
                )
        return self._logged(staking, staking.resolve(chain_claim, outcome, verdicts))

    def refund(self, chain_claim: int) -> StakeStep:
        staking = self._staking(signer=True)
        return self._logged(staking, staking.refund(chain_claim))

    def withdraw(self, chain_claim: int | None, *, auditor_stake: bool = False) -> StakeStep:
        """Pull tokens: by default every credited payout.

        With `chain_claim`, the claim's stake after its window (no challenge active); with `auditor_stake`, a former
        auditor's stake after its exit delay.
        """
        staking = self._staking(signer=True)
        if auditor_stake:
            _, result = staking.withdraw_auditor_stake()
        elif chain_claim is None:
            _, result = staking.withdraw()
        else:
            _, result = staking.withdraw_stake(chain_claim)
        return self._logged(staking, result)

    def record(self, tx: str, claim_id: str | None) -> StakeStep:
        """Log a step already mined (sent by this signer), e.g. after the hub was unreachable when it was sent."""
        staking = self._staking(signer=True)
        return self.ledger.record(tx, claim_id=claim_id, proof=self._proof(staking, tx.lower()))

    def check(self, chain_claim: int) -> list[StakeCheck]:
        """Compare the claim's on-chain state with this hub's log: content, parties, amounts, status, each tx.

        Reads only; the caller decides what a failed check means (`aiprov stake verify` exits 6).
        """
        from aiprov.adapters.staking import content_hash

        staking = self._staking(signer=False)
        state = staking.claim_state(chain_claim)
        steps = [s for s in self.ledger.steps(staking.address, chain_claim) if s.action != VERDICT]
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
