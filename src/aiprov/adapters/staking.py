"""AiprovStaking and AiprovToken (contracts/) over a `Chain`: claims with stake, challenges, verdicts, payouts.

Amounts are the token's base units (ints); metric values and tolerances are fixed point with 18 decimals (WAD),
so 0.97 is 970000000000000000. Balances and allowances are checked before sending, so "not enough tokens" and
"approve first" are one-line errors instead of a revert after gas estimation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from web3.logs import DISCARD

from aiprov.adapters.chain import Chain, TxResult, checksum, load_artifact
from aiprov.errors import InsufficientFunds, InvalidInput, NotFound, TransactionReverted

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.contract import Contract

STAKING_NAME = "AiprovStaking"
TOKEN_NAME = "AiprovToken"
WAD = 10**18
STATUSES = ("none", "open", "challenged", "refuted", "refunded", "withdrawn")
OUTCOMES = {"refuted": 1, "upheld": 2}
DOMAIN_NAME = "AiprovStaking"
DOMAIN_VERSION = "1"
VERDICT_TYPES = {
    "Verdict": [
        {"name": "claimId", "type": "uint256"},
        {"name": "round", "type": "uint8"},
        {"name": "measured", "type": "int256"},
        {"name": "outcome", "type": "uint8"},
        {"name": "deadline", "type": "uint64"},
    ]
}

MESSAGES = {
    "UnknownClaim": "no claim {claimId} on the staking contract",
    "NotOpen": "claim {claimId} is not open (status {status})",
    "NotChallenged": "claim {claimId} is not under challenge (status {status})",
    "WindowClosed": "the challenge window of claim {claimId} closed at {closedAt} (unix time)",
    "SelfChallenge": "a publisher cannot challenge its own claim {claimId}",
    "BondTooSmall": "a bond of {bond} is below the minimum {minimum}",
    "StakeTooSmall": "a stake of {stake} is below the minimum {minimum}",
    "StakeLocked": "the stake of claim {claimId} is locked until {unlockAt} (unix time)",
    "NotPublisher": "{caller} did not publish claim {claimId}",
    "TooFewVerdicts": "{given} verdicts given, {quorum} needed",
    "ResolutionClosed": "claim {claimId} had to be resolved by {resolveBy} (unix time); refund it instead",
    "ResolutionOpen": "claim {claimId} may still be resolved until {resolveBy} (unix time)",
    "VerdictExpired": "the verdict of {signer} expired at {deadline} (unix time)",
    "SignersNotIncreasing": "verdict signers must be distinct and in increasing order ({signer} after {previous})",
    "NotAuditor": "{signer} is not a registered auditor (or signed another claim, round, outcome or chain)",
    "ConflictedSigner": "{signer} is a party to the claim and cannot judge it",
    "AlreadyAuditor": "{account} is already an auditor (or has not withdrawn its former stake)",
    "NotRegistered": "{account} is not a registered auditor",
    "AuditorStakeLocked": "the auditor stake of {account} is locked until {exitAt} (unix time)",
    "NothingToWithdraw": "{account} has nothing to withdraw",
    "InvalidParameter": "the staking parameter {name} is out of range",
    "InvalidOutcome": "outcome {outcome} is neither 1 (refuted) nor 2 (upheld)",
    "ZeroDigest": "a claim needs non-zero version and evaluation spec digests",
    "ERC20InsufficientBalance": "{sender} holds {balance} tokens, {needed} needed",
    "ERC20InsufficientAllowance": "the staking contract may spend {allowance} of the signer's tokens, {needed} needed",
}


@dataclass(frozen=True, slots=True)
class StakeParams:
    """The game's parameters (AiprovStaking's constructor); the defaults are what `aiprov chain deploy` uses."""

    challenge_window_s: int = 3 * 86_400
    resolution_period_s: int = 7 * 86_400
    bond_factor_bps: int = 10_000
    quorum: int = 3
    winner_share_bps: int = 5_000
    auditor_share_bps: int = 4_000
    burn_share_bps: int = 1_000
    auditor_stake: int = 100 * WAD
    min_stake: int = WAD

    def as_tuple(self) -> tuple[int, ...]:
        return (
            self.challenge_window_s,
            self.resolution_period_s,
            self.bond_factor_bps,
            self.quorum,
            self.winner_share_bps,
            self.auditor_share_bps,
            self.burn_share_bps,
            self.auditor_stake,
            self.min_stake,
        )


@dataclass(frozen=True, slots=True)
class ClaimState:
    """A claim as the contract stores it."""

    claim_id: int
    publisher: str
    status: str
    round: int
    stake: int
    bond: int
    challenger: str | None
    unlock_at: int
    resolve_by: int
    content_hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "publisher": self.publisher,
            "status": self.status,
            "round": self.round,
            "stake": str(self.stake),
            "bond": str(self.bond),
            "challenger": self.challenger,
            "unlock_at": self.unlock_at,
            "resolve_by": self.resolve_by,
            "content_hash": "0x" + self.content_hash.hex(),
        }


@dataclass(frozen=True, slots=True)
class SignedVerdict:
    """One auditor's EIP-712 verdict on a claim's round, as `resolve` takes it."""

    claim_id: int
    round: int
    measured: int
    outcome: str
    deadline: int
    signer: str
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "round": self.round,
            "measured": str(self.measured),
            "outcome": self.outcome,
            "deadline": self.deadline,
            "signer": self.signer,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> SignedVerdict:
        """A verdict from its JSON form; raises InvalidInput naming `source` when a field is missing or malformed."""
        try:
            outcome = str(data["outcome"])
            if outcome not in OUTCOMES:
                raise ValueError(outcome)
            return cls(
                claim_id=int(data["claim_id"]),
                round=int(data["round"]),
                measured=int(data["measured"]),
                outcome=outcome,
                deadline=int(data["deadline"]),
                signer=checksum(str(data["signer"])),
                signature=bytes.fromhex(str(data["signature"]).removeprefix("0x")),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"{source} is not a verdict printed by `aiprov stake verdict --json`") from None


@dataclass(frozen=True, slots=True)
class MinedStep:
    """What one mined call of the staking contract did, read back from its receipt (never from its sender)."""

    event: str
    """The contract event it emitted: Claimed, Challenged, Resolved, Refunded, StakeWithdrawn, AuditorRegistered,
    AuditorLeft or Withdrawn."""
    args: dict[str, Any]
    sender: str
    function: str
    """The function called (`withdrawAuditorStake` and `withdraw` both emit Withdrawn)."""
    block: int
    gas_used: int
    state: ClaimState | None
    """The claim as it stood right after the call (at its block), for the steps on a claim."""


STEP_EVENTS = (
    "Claimed", "Challenged", "Resolved", "Refunded", "StakeWithdrawn", "AuditorRegistered", "AuditorLeft", "Withdrawn",
)  # fmt: skip


def metric_name(raw: bytes) -> str:
    """The metric name a bytes32 holds (the inverse of `metric_bytes`)."""
    return raw.rstrip(b"\0").decode(errors="replace")


def to_wad(text: str, what: str) -> int:
    """A decimal number as 18-decimal fixed point; raises InvalidInput naming `what`."""
    return to_units(text, 18, what, signed=True)


def to_units(text: str, decimals: int, what: str, *, signed: bool = False) -> int:
    """A decimal amount in base units of a token with `decimals`; raises InvalidInput unless exact and in range."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"{what} {text!r} is not a number") from None
    units = value.scaleb(decimals)
    if not value.is_finite() or units != units.to_integral_value() or (value < 0 and not signed):
        raise InvalidInput(f"{what} {text!r} is not a {'' if signed else 'non-negative '}multiple of 1e-{decimals}")
    return int(units)


def metric_bytes(name: str) -> bytes:
    """A metric name as the contract's bytes32: UTF-8, right-padded with zeros, at most 32 bytes."""
    raw = name.encode()
    if not raw or len(raw) > 32:
        raise InvalidInput(f"metric name {name!r} must be 1 to 32 bytes")
    return raw.ljust(32, b"\0")


def content_hash(version: bytes, spec: bytes, metric: str, value: int, tolerance: int) -> bytes:
    """What AiprovStaking stores of a claim: keccak256(abi.encode(version, spec, metric, value, tolerance))."""
    from eth_abi.abi import encode
    from web3 import Web3

    data = encode(
        ["bytes32", "bytes32", "bytes32", "int256", "uint256"], [version, spec, metric_bytes(metric), value, tolerance]
    )
    return bytes(Web3.keccak(data))


class Staking:
    """An AiprovStaking contract at `address`, through `chain` (whose account signs)."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.artifact = load_artifact(STAKING_NAME)
        chain.decoder.add(self.artifact["abi"], MESSAGES)
        chain.decoder.add(load_artifact(TOKEN_NAME)["abi"], MESSAGES)
        self.contract: Contract = chain.bound(address, self.artifact)
        self.address = self.contract.address
        with chain.rpc("reading the staking contract's token"):
            token = str(self.contract.functions.token().call())
        # Any ERC-20 may be staked: its standard functions are all this needs (AiprovToken's ABI includes them).
        self.token = chain.w3.eth.contract(address=token, abi=load_artifact(TOKEN_NAME)["abi"])  # type: ignore[call-overload]

    # deployment ---------------------------------------------------------------------------------------------------

    @staticmethod
    def deploy_token(chain: Chain, admin: str) -> TxResult:
        """Deploy an AiprovToken whose admin and first minter is `admin`."""
        return chain.deploy_contract(load_artifact(TOKEN_NAME), [checksum(admin)], "deploying the stake token")

    @staticmethod
    def deploy(chain: Chain, token: str, params: StakeParams | None = None) -> TxResult:
        """Deploy an AiprovStaking over the ERC-20 at `token` with `params` (default: StakeParams())."""
        args = [checksum(token), (params or StakeParams()).as_tuple()]
        chain.decoder.add(load_artifact(STAKING_NAME)["abi"], MESSAGES)
        return chain.deploy_contract(load_artifact(STAKING_NAME), args, "deploying the staking contract")

    # reads -------------------------------------------------------------------------------------------------------

    def params(self) -> StakeParams:
        f = self.contract.functions
        with self.chain.rpc("reading the staking parameters"):
            return StakeParams(
                challenge_window_s=int(f.challengeWindow().call()),
                resolution_period_s=int(f.resolutionPeriod().call()),
                bond_factor_bps=int(f.bondFactorBps().call()),
                quorum=int(f.quorum().call()),
                winner_share_bps=int(f.winnerShareBps().call()),
                auditor_share_bps=int(f.auditorShareBps().call()),
                burn_share_bps=int(f.burnShareBps().call()),
                auditor_stake=int(f.auditorStake().call()),
                min_stake=int(f.minStake().call()),
            )

    def decimals(self) -> int:
        with self.chain.rpc("reading the token's decimals"):
            return int(self.token.functions.decimals().call())

    def balance(self, account: str) -> int:
        with self.chain.rpc("reading a token balance"):
            return int(self.token.functions.balanceOf(checksum(account)).call())

    def credit(self, account: str) -> int:
        """What `account` may pull with `withdraw`."""
        with self.chain.rpc("reading a credit"):
            return int(self.contract.functions.credit(checksum(account)).call())

    def is_auditor(self, account: str) -> bool:
        with self.chain.rpc("reading an auditor"):
            return bool(self.contract.functions.isAuditor(checksum(account)).call())

    def claim_state(self, claim_id: int, *, block: int | None = None) -> ClaimState:
        """The claim `claim_id` (as it stood at `block`, default the latest); raises NotFound when there is none."""
        with self.chain.rpc("reading a claim"):
            c = self.contract.functions.claims(claim_id).call(block_identifier=block or "latest")
        publisher, unlock_at, status, rnd, stake, bond, challenger, resolve_by, content = c
        if status == 0:
            raise NotFound(f"no claim {claim_id} on the staking contract {self.address}")
        return ClaimState(
            claim_id=claim_id,
            publisher=str(publisher),
            status=STATUSES[status],
            round=int(rnd),
            stake=int(stake),
            bond=int(bond),
            challenger=None if int(challenger, 16) == 0 else str(challenger),
            unlock_at=int(unlock_at),
            resolve_by=int(resolve_by),
            content_hash=bytes(content),
        )

    def read_step(self, tx: str) -> MinedStep:
        """What transaction `tx` did on this contract, from its receipt and its block's state.

        Raises NotFound (not mined here), TransactionReverted, InvalidInput (not a call of this contract, or not one
        step). This is how a hub learns of a step another machine sent: it believes the chain, not the reporter.
        """
        from web3 import exceptions as w3ex

        with self.chain.rpc(f"reading the transaction {tx}"):
            try:
                receipt = self.chain.w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
                sent = self.chain.w3.eth.get_transaction(tx)  # type: ignore[arg-type]
            except w3ex.TransactionNotFound:
                raise NotFound(f"transaction {tx} is not mined on chain {self.chain.chain_id}") from None
        if receipt["status"] != 1:
            raise TransactionReverted(f"transaction {tx} reverted: it changed nothing on chain")
        if receipt.get("to") != self.address:
            raise InvalidInput(f"transaction {tx} is not a call of the staking contract {self.address}")
        found = [
            (name, dict(e["args"]))
            for name in STEP_EVENTS
            for e in getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)
            if e["address"] == self.address
        ]
        if len(found) != 1:
            raise InvalidInput(f"transaction {tx} is not one staking step ({len(found)} staking events)")
        (event, args), block = found[0], int(receipt["blockNumber"])
        function = self.contract.get_function_by_selector(bytes(sent["input"])[:4]).fn_name
        claim = args.get("claimId")
        state = self.claim_state(int(claim), block=block) if claim is not None else None
        return MinedStep(event, args, str(sent["from"]), function, block, int(receipt["gasUsed"]), state)

    def recover_verdict(self, verdict: SignedVerdict) -> str:
        """The address that signed `verdict` for this contract and chain (EIP-712, as the contract recovers it)."""
        from eth_account import Account
        from eth_account.messages import encode_typed_data

        domain = {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain.chain_id,
            "verifyingContract": self.address,
        }
        message = {
            "claimId": verdict.claim_id,
            "round": verdict.round,
            "measured": verdict.measured,
            "outcome": OUTCOMES[verdict.outcome],
            "deadline": verdict.deadline,
        }
        signable = encode_typed_data(domain, VERDICT_TYPES, message)
        try:
            return str(Account.recover_message(signable, signature=verdict.signature))
        except Exception:  # eth_keys raises several types for a malformed signature; all mean "not a signature"
            raise InvalidInput("the verdict's signature is not a valid secp256k1 signature") from None

    # writes ------------------------------------------------------------------------------------------------------

    def _send(self, fn: str, args: list[Any], what: str) -> TxResult:
        data = self.contract.encode_abi(fn, args=args)
        return self.chain.transact({"to": self.address, "data": data}, what)

    def _fund(self, amount: int, approve: bool, what: str) -> None:
        """Make sure the signer holds `amount` and the contract may take it; approve first when `approve`."""
        owner = self.signer.address
        have = self.balance(owner)
        if have < amount:
            raise InsufficientFunds(f"{what}: {owner} holds {have} token units, {amount} needed")
        with self.chain.rpc("reading the allowance"):
            allowed = int(self.token.functions.allowance(owner, self.address).call())
        if allowed >= amount:
            return
        if not approve:
            raise InvalidInput(
                f"{what}: the staking contract may spend {allowed} of {owner}'s token units, {amount} needed",
                hint="pass --approve, or approve the staking contract with the token first",
            )
        data = self.token.encode_abi("approve", args=[self.address, amount])
        self.chain.transact({"to": self.token.address, "data": data}, "approving the staking contract")

    @property
    def signer(self) -> LocalAccount:
        account = self.chain.account
        if account is None:
            raise InvalidInput("no chain signer key", hint="set AIPROV_CHAIN_PRIVATE_KEY or pass --key-file")
        return account

    def claim(
        self,
        version: bytes,
        spec: bytes,
        metric: str,
        value: int,
        tolerance: int,
        stake: int,
        *,
        approve: bool = False,
    ) -> tuple[int, TxResult]:
        """Lock `stake` behind a claim (digests of 32 bytes, WAD value and tolerance); returns its id and tx."""
        if len(version) != 32 or len(spec) != 32:
            raise InvalidInput("the version and evaluation spec digests must be 32 bytes (sha256)")
        self._fund(stake, approve, "staking the claim")
        result = self._send(
            "claim", [version, spec, metric_bytes(metric), value, tolerance, stake], "staking the claim"
        )
        with self.chain.rpc("reading the new claim's id"):
            receipt = self.chain.w3.eth.get_transaction_receipt(result.tx)  # type: ignore[arg-type]
            # The token's Transfer log is in the same receipt: only this contract's Claimed is wanted.
            (event,) = self.contract.events.Claimed().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["claimId"]), result

    def challenge(self, claim_id: int, bond: int | None = None, *, approve: bool = False) -> tuple[int, TxResult]:
        """Challenge `claim_id` with `bond` (default: the minimum); returns the bond posted and the tx."""
        state = self.claim_state(claim_id)
        if bond is None:
            with self.chain.rpc("reading the minimum bond"):
                bond = int(self.contract.functions.minBond(state.stake).call())
        self._fund(bond, approve, "posting the challenge bond")
        return bond, self._send("challenge", [claim_id, bond], "challenging the claim")

    def register_auditor(self, *, approve: bool = False) -> TxResult:
        with self.chain.rpc("reading the auditor stake"):
            amount = int(self.contract.functions.auditorStake().call())
        self._fund(amount, approve, "staking as an auditor")
        return self._send("registerAuditor", [], "registering as an auditor")

    def sign_verdict(
        self, account: LocalAccount, claim_id: int, rnd: int, measured: int, outcome: str, deadline: int
    ) -> SignedVerdict:
        """`account`'s EIP-712 signature of a verdict, bound to this chain id and contract address."""
        if outcome not in OUTCOMES:
            raise InvalidInput(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        domain = {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain.chain_id,
            "verifyingContract": self.address,
        }
        message = {
            "claimId": claim_id,
            "round": rnd,
            "measured": measured,
            "outcome": OUTCOMES[outcome],
            "deadline": deadline,
        }
        signed = account.sign_typed_data(domain, VERDICT_TYPES, message)
        return SignedVerdict(claim_id, rnd, measured, outcome, deadline, account.address, bytes(signed.signature))

    def resolve(self, claim_id: int, outcome: str, verdicts: list[SignedVerdict]) -> TxResult:
        """Settle `claim_id` with `verdicts` of `outcome`, sent in increasing signer order as the contract wants."""
        if outcome not in OUTCOMES:
            raise InvalidInput(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        ordered = sorted(verdicts, key=lambda v: int(v.signer, 16))
        args = [(v.measured, v.deadline, v.signature) for v in ordered]
        return self._send("resolve", [claim_id, OUTCOMES[outcome], args], "resolving the claim")

    def refund(self, claim_id: int) -> TxResult:
        return self._send("refund", [claim_id], "refunding the claim")

    def withdraw(self) -> tuple[int, TxResult]:
        """Pull the signer's credit; returns the amount and the tx."""
        amount = self.credit(self.signer.address)
        return amount, self._send("withdraw", [], "withdrawing")

    def withdraw_stake(self, claim_id: int) -> tuple[int, TxResult]:
        """Take a claim's stake back after its window, no challenge active; returns the amount and the tx."""
        amount = self.claim_state(claim_id).stake
        return amount, self._send("withdrawStake", [claim_id], "withdrawing the claim's stake")

    def auditor_exit(self, account: str) -> int:
        """When a former auditor's stake may leave (unix time); 0 while registered or after it left."""
        with self.chain.rpc("reading an auditor"):
            _, exit_at, _ = self.contract.functions.auditors(checksum(account)).call()
        return int(exit_at)

    def leave_auditors(self) -> TxResult:
        return self._send("leaveAuditors", [], "leaving the auditors")

    def withdraw_auditor_stake(self) -> tuple[int, TxResult]:
        """Take a former auditor's stake back after its exit delay; returns the amount and the tx."""
        with self.chain.rpc("reading an auditor"):
            amount, _, _ = self.contract.functions.auditors(self.signer.address).call()
        return int(amount), self._send("withdrawAuditorStake", [], "withdrawing the auditor stake")
