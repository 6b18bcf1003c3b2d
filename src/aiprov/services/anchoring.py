"""The log's witness on an EVM chain: deploy the registry, anchor checkpoints, register version digests.

Each chain transaction is recorded as an event (`chain.deploy`, `chain.anchor`, `chain.register`), so it is in
the transparency log too and needs no table of its own. An anchor puts the latest signed checkpoint
`(origin, tree size, root)` on chain in one transaction whatever the number of events it covers; once it is
there, a rewritten history fails `verify --chain`, which reads the roots from the chain's events, not from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiprov.core.names import Ref
from aiprov.errors import InvalidInput, WrongChain
from aiprov.extras import missing
from aiprov.ports import RegistryStore
from aiprov.records import AnchoredCheckpoint, ChainRegistration
from aiprov.services.transparency import LogService

if TYPE_CHECKING:
    from aiprov.adapters.chain import Chain, TxResult

DEPLOY = "chain.deploy"
ANCHOR = "chain.anchor"
REGISTER = "chain.register"


@dataclass(frozen=True, slots=True)
class ChainConfig:
    rpc_url: str | None
    contract: str | None
    private_key: str | None
    key_source: str
    """Where the key came from (an env var or a file name), for error messages that never show the key."""
    expected_chain_id: int | None = None
    from_block: int | None = None
    receipt_timeout_s: float = 120.0
    staking: str | None = None
    """The AiprovStaking address (AIPROV_STAKE_CONTRACT); default: the one `chain deploy` recorded."""


@dataclass(frozen=True, slots=True)
class Deployment:
    address: str
    chain_id: int
    tx: str
    block: int

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "tx": self.tx, "block": self.block, "chain_id": self.chain_id}


@dataclass(frozen=True, slots=True)
class AnchorResult:
    sent: bool
    """False when nothing but anchor records was logged since the last anchor: no transaction."""
    contract: str
    chain_id: int
    origin: str
    tree_size: int
    root: bytes
    tx: str | None = None
    block: int | None = None
    gas_used: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "contract": self.contract,
            "chain_id": self.chain_id,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "tx": self.tx,
            "block": self.block,
            "gas_used": self.gas_used,
        }


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """What `aiprov chain status` reports: the node, the registry contract and how far the log is anchored."""

    rpc: str
    """The node's URL, credentials removed (`Chain.where`)."""
    chain_id: int
    block: int
    contract: str | None
    """The registry used (configured or recorded); None before `chain deploy`."""
    recorded: bool
    """Whether this hub recorded the contract's deployment."""
    origin: str
    log_size: int
    anchored_size: int | None
    """The tree size of the log's newest anchor in the contract; None without a contract, 0 before any anchor."""

    def to_json(self) -> dict[str, Any]:
        return {
            "rpc": self.rpc,
            "chain_id": self.chain_id,
            "block": self.block,
            "contract": self.contract,
            "recorded": self.recorded,
            "origin": self.origin,
            "log_size": self.log_size,
            "anchored_size": self.anchored_size,
        }


@dataclass(frozen=True, slots=True)
class RegisterResult:
    ref: str
    digest: str
    contract: str
    chain_id: int
    registration: ChainRegistration
    sent: bool
    """False when the signer had already registered this digest: no transaction."""
    tx: str | None = None
    gas_used: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.ref,
            "digest": self.digest,
            "contract": self.contract,
            "chain_id": self.chain_id,
            "sent": self.sent,
            "tx": self.tx,
            "gas_used": self.gas_used,
            **self.registration.to_json(),
        }


class ChainView:
    """A `ChainReader` over one registry contract (see ports.py)."""

    def __init__(self, chain: Chain, address: str, from_block: int) -> None:
        self.chain = chain
        self.address = address
        self.from_block = from_block

    @property
    def description(self) -> str:
        return f"registry {self.address} on chain {self.chain.chain_id}"

    def anchors(self, origin: str) -> list[AnchoredCheckpoint]:
        return self.chain.anchors(self.address, origin, self.from_block)

    def registration(self, digest: bytes) -> ChainRegistration | None:
        return self.chain.registration(self.address, digest)


def connect(c: ChainConfig, *, signer: bool) -> Chain:
    """A client of the configured chain, with its signer when `signer`.

    Raises InvalidInput, ChainError, MissingExtra (web3 not installed).
    """
    try:
        from aiprov.adapters.chain import Chain, parse_private_key
    except ImportError as e:
        raise missing("the chain", e, "web3") from e
    if not c.rpc_url:
        raise InvalidInput("no chain RPC URL", hint="set AIPROV_CHAIN_RPC, e.g. http://127.0.0.1:8545")
    account = None
    if signer:
        if c.private_key is None:
            raise InvalidInput("no chain signer key", hint="set AIPROV_CHAIN_PRIVATE_KEY or pass --key-file")
        account = parse_private_key(c.private_key, c.key_source)
    return Chain(c.rpc_url, account=account, receipt_timeout_s=c.receipt_timeout_s)


def check_chain_id(
    chain: Chain, expected: int | None, address: str | None, *, contract: str = "registry",
    setting: str = "AIPROV_CHAIN_CONTRACT",
) -> None:  # fmt: skip
    """Raise WrongChain unless `chain` is chain `expected` (None: any).

    The message names the `contract` at `address`, the hint the `setting` that chose it.
    """
    if expected is not None and chain.chain_id != expected:
        what = f"the {contract} {address} was deployed on chain {expected}" if address else f"expected {expected}"
        raise WrongChain(
            f"the RPC at {chain.where} serves chain {chain.chain_id}, but {what}",
            hint=f"check AIPROV_CHAIN_RPC and {setting}",
        )


def read_chain(c: ChainConfig) -> ChainView:
    """What a client without the hub's database reads (`aiprov --server URL verify --chain`).

    The registry at AIPROV_CHAIN_CONTRACT, on the chain AIPROV_CHAIN_ID names when set, searched from
    AIPROV_CHAIN_FROM_BLOCK (default 0).

    Raises InvalidInput (nothing configured), WrongChain, ChainError.
    """
    from aiprov.adapters.chain import checksum

    if not c.contract:
        raise InvalidInput(
            "verifying against a chain needs the registry's address", hint="set AIPROV_CHAIN_CONTRACT (and _RPC)"
        )
    chain = connect(c, signer=False)
    address = checksum(c.contract)
    if c.expected_chain_id is not None and chain.chain_id != c.expected_chain_id:
        raise WrongChain(
            f"the RPC at {chain.where} serves chain {chain.chain_id}, not the expected {c.expected_chain_id}",
            hint="check AIPROV_CHAIN_RPC and AIPROV_CHAIN_ID",
        )
    return ChainView(chain, address, c.from_block or 0)


class AnchorService:
    def __init__(
        self, db: RegistryStore, log: LogService, config: ChainConfig, *, clock: Callable[[], datetime], actor: str
    ) -> None:
        self.db = db
        self.log = log
        self.config = config
        self.clock = clock
        self.actor = actor

    # wiring -------------------------------------------------------------------------------------------------

    def _chain(self, *, signer: bool) -> Chain:
        return connect(self.config, signer=signer)

    def deployments(self) -> list[Deployment]:
        """Registry deployments this hub recorded, newest first."""
        with self.db.unit() as u:
            events = u.events(actions=[DEPLOY])
        return [Deployment(e.subject, e.details["chain_id"], e.details["tx"], e.details["block"]) for e in events]

    def _target(self, chain: Chain) -> tuple[str, Deployment | None]:
        """The registry address to use and its recorded deployment; checks the RPC serves the expected chain."""
        from aiprov.adapters.chain import checksum

        recorded = self.deployments()
        address = checksum(self.config.contract) if self.config.contract else None
        if address is None:
            if not recorded:
                raise InvalidInput(
                    "no registry contract", hint="set AIPROV_CHAIN_CONTRACT or run `aiprov chain deploy`"
                )
            address = recorded[0].address
        deployment = next((d for d in recorded if d.address == address), None)
        check_chain_id(chain, deployment.chain_id if deployment else self.config.expected_chain_id, address)
        return address, deployment

    def reader(self) -> ChainView:
        """What `verify --chain` reads: the configured (or recorded) registry, chain id checked."""
        chain = self._chain(signer=False)
        address, deployment = self._target(chain)
        from_block = self.config.from_block
        if from_block is None:
            from_block = deployment.block if deployment else 0
        return ChainView(chain, address, from_block)

    def _record(self, action: str, subject: str, model: str | None, details: dict[str, Any]) -> None:
        with self.db.unit(write=True) as u:
            u.add_event(
                actor=self.actor, action=action, subject=subject, model=model, details=details, now=self.clock()
            )

    @staticmethod
    def _tx_details(chain: Chain, result: TxResult) -> dict[str, Any]:
        return {"chain_id": chain.chain_id, "tx": result.tx, "block": result.block, "gas_used": result.gas_used}

    # use cases ----------------------------------------------------------------------------------------------

    def deploy(self, also: dict[str, Any] | None = None) -> Deployment:
        """Deploy a registry whose log operator is the signer, and record it. Raises ChainError, InvalidInput.

        `also` (what was deployed with it: the stake token and staking contract) goes into the event's details.
        """
        chain = self._chain(signer=True)
        check_chain_id(chain, self.config.expected_chain_id, None)
        result = chain.deploy()
        assert result.contract_address is not None, "Chain.deploy checks the receipt created a contract"
        details = {**self._tx_details(chain, result), "operator": chain.account.address if chain.account else None}
        details["compiler"] = chain.artifact["compiler"]["version"]
        details.update(also or {})
        self._record(DEPLOY, result.contract_address, None, details)
        return Deployment(result.contract_address, chain.chain_id, result.tx, result.block)

    def status(self) -> ChainStatus:
        """The node's chain and head, the registry and the log's newest anchor in it; reads only.

        Raises ChainError (unreachable, wrong chain) and InvalidInput when no RPC is configured.
        """
        chain = self._chain(signer=False)
        block = chain.block_number()
        try:
            address, deployment = self._target(chain)
        except InvalidInput:  # no contract yet: the node itself is what the status is about
            address, deployment = None, None
        origin = self.log.origin
        anchored = chain.latest_anchor(address, origin)[0] if address else None
        return ChainStatus(
            chain.where, chain.chain_id, block, address, deployment is not None, origin, self.log.size(),
            anchored,
        )  # fmt: skip

    def anchor(self) -> AnchorResult:
        """Anchor the latest signed checkpoint in one transaction, unless only anchors were logged since the last.

        Raises ChainError (and its subclasses: unreachable, wrong chain, insufficient funds, reverted),
        InvalidInput when the chain is not configured.
        """
        chain = self._chain(signer=True)
        address, _ = self._target(chain)
        checkpoint = self.log.latest().checkpoint
        base = AnchorResult(False, address, chain.chain_id, checkpoint.origin, checkpoint.size, checkpoint.root_hash)
        if checkpoint.size == 0:
            return base
        # Nothing new, unless the chain lost the anchor the hub recorded (its block was re-organised away).
        if (
            self._only_anchors_since_last(address, checkpoint.size)
            and chain.latest_anchor(address, checkpoint.origin)[0]
        ):
            return base
        result = chain.anchor(address, checkpoint.origin, checkpoint.size, checkpoint.root_hash)
        details = {
            **self._tx_details(chain, result),
            "origin": checkpoint.origin,
            "tree_size": checkpoint.size,
            "root": checkpoint.root_hash.hex(),
        }
        self._record(ANCHOR, address, None, details)
        return AnchorResult(
            True, address, chain.chain_id, checkpoint.origin, checkpoint.size, checkpoint.root_hash,
            result.tx, result.block, result.gas_used,
        )  # fmt: skip

    def _only_anchors_since_last(self, address: str, size: int) -> bool:
        """Whether every entry logged after the last anchor to `address` is itself an anchor record."""
        with self.db.unit() as u:
            last = u.events(actions=[ANCHOR], subject=address, limit=1)
            if not last:
                return False
            anchored = int(last[0].details["tree_size"])
            since = size - anchored
            anchors = u.events(actions=[ANCHOR], limit=since + 1)
        return sum(1 for e in anchors if e.leaf_index is not None and e.leaf_index >= anchored) == since

    def register(self, ref: str, uri: str | None = None) -> RegisterResult:
        """Register a version's digest on chain, owned by the signer; a no-op if the signer already owns it.

        The metadata digest is the RFC 9162 leaf hash of the version's push entry in the log, so the chain points
        at the log. The URI is `uri`, else `ipfs://CID` when the version has a CID, else `aiprov:OWNER/NAME@N`.
        Raises TransactionReverted (AlreadyRegistered) when another address owns the digest.
        """
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            record = u.version_record(model, version)
            leaf_index = u.registration_event(model, version)[0]
        _, leaf_hash, _ = self.log.entry(leaf_index)
        cid = record.cids.v1 if record.cids is not None else None  # CIDv1: what gateways and ipfs:// expect
        uri = uri or (f"ipfs://{cid}" if cid else f"aiprov:{record.ref}")
        digest = bytes.fromhex(record.manifest.digest.hex)
        chain = self._chain(signer=True)
        address, _ = self._target(chain)
        signer = chain.account.address if chain.account else ""
        existing = chain.registration(address, digest)
        if existing is not None and existing.owner == signer:
            return RegisterResult(record.ref, str(record.manifest.digest), address, chain.chain_id, existing, False)
        result = chain.register(address, digest, leaf_hash, uri)
        registration = ChainRegistration(digest, signer, result.block, leaf_hash, uri)
        details = {**self._tx_details(chain, result), "contract": address, **registration.to_json()}
        self._record(REGISTER, str(record.manifest.digest), record.full_name, details)
        return RegisterResult(
            record.ref, str(record.manifest.digest), address, chain.chain_id, registration, True,
            result.tx, result.gas_used,
        )  # fmt: skip
