"""The AiprovRegistry contract over any EVM JSON-RPC (anvil, Sepolia, Polygon Amoy, a private chain), via web3.py.

Sending is careful because public chains are not anvil: gas is estimated then padded (anvil under-estimates
writes that depend on block number or timestamp), fees are EIP-1559 when the chain has a base fee and legacy
otherwise, the nonce is the pending one, a transaction that leaves the mempool unmined is sent again with the
same nonce and higher fees, and a receipt counts only when its status is 1. Everything web3.py, eth-account or
the HTTP layer raises is turned into a `ChainError` here: callers never see a web3 exception.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from web3 import HTTPProvider, Web3
from web3 import exceptions as w3ex
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from aiprov.errors import (
    ChainError,
    ChainUnreachable,
    InsufficientFunds,
    InvalidInput,
    TransactionReverted,
)
from aiprov.records import AnchoredCheckpoint, ChainRegistration

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.contract import Contract
    from web3.types import TxParams, TxReceipt

CONTRACT_NAME = "AiprovRegistry"
GAS_HEADROOM = 1.25
"""Estimated gas is multiplied by this, plus GAS_MARGIN: a transaction that runs out of gas still costs gas."""
GAS_MARGIN = 10_000
FEE_BUMP = 1.25
"""A replacement must pay at least 10% more than the transaction it replaces (geth, anvil); we pay 25% more."""
DROP_GRACE_S = 3.0
"""A transaction the node does not know this long after it was sent was dropped: send it again."""
DEFAULT_TIP_WEI = 10**9
MIN_LOG_WINDOW = 100
"""The smallest block range asked of eth_getLogs when a provider refuses larger ones."""
"""Priority fee when the node cannot suggest one (eth_maxPriorityFeePerGas is not in every node)."""


def load_artifact(name: str = CONTRACT_NAME) -> dict[str, Any]:
    """The committed build of contracts/NAME.sol: ABI, bytecode, compiler version and settings."""
    text = resources.files("aiprov").joinpath("contracts", f"{name}.json").read_text()
    artifact: dict[str, Any] = json.loads(text)
    return artifact


@dataclass(frozen=True, slots=True)
class TxResult:
    """A mined, successful transaction."""

    tx: str
    block: int
    gas_used: int
    effective_gas_price: int
    sent: int
    """How many times it was sent (more than 1 when a dropped or stuck transaction was replaced)."""
    contract_address: str | None = None


def parse_private_key(text: str, source: str) -> LocalAccount:
    """An account from a hex private key (with or without 0x). Raises InvalidInput naming `source`, never the key."""
    from eth_account import Account

    try:
        account: LocalAccount = Account.from_key(text.strip())
    except (ValueError, TypeError):
        raise InvalidInput(f"{source} is not an Ethereum private key (64 hex digits)") from None
    return account


def checksum(address: str) -> str:
    """The EIP-55 form of `address`. Raises InvalidInput if it is not a 20-byte hex address."""
    if not Web3.is_address(address):
        raise InvalidInput(f"{address!r} is not an Ethereum address (0x and 40 hex digits)")
    return str(Web3.to_checksum_address(address))


class _ErrorDecoder:
    """Custom errors of the contract's ABI, decoded from revert data.

    Written here because web3.py raises a custom error as its raw data (selector + ABI-encoded arguments)
    without decoding it; eth-abi decodes the arguments.
    """

    REGISTRY: ClassVar[dict[str, str]] = {
        "NotOperator": "{caller} is not the registry's log operator ({operator})",
        "ZeroAddress": "the zero address cannot be the operator",
        "ZeroDigest": "the zero digest cannot be registered",
        "EmptyOrigin": "a checkpoint needs a log origin",
        "AlreadyRegistered": "sha256:{digest} is already registered on chain by {owner}",
        "TreeSizeShrinks": "log {origin!r} is anchored at tree size {anchored}; size {proposed} would shrink it",
        "RootMismatch": "log {origin!r} is anchored at size {treeSize} with root 0x{anchored}, not 0x{proposed}",
    }

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        self.messages = dict(self.REGISTRY)
        self.add(abi, {})

    def add(self, abi: list[dict[str, Any]], messages: dict[str, str]) -> None:
        """Also decode the custom errors of `abi`, with `messages` (format strings over the arguments' names)."""
        self.messages.update(messages)
        for item in abi:
            if item["type"] == "error":
                types = [i["type"] for i in item["inputs"]]
                selector = Web3.keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self.errors[bytes(selector)] = (item["name"], [i["name"] for i in item["inputs"]], types)

    def message(self, data: str | bytes | None) -> str | None:
        """A sentence for revert `data` if it is one of the contract's custom errors, else None."""
        from eth_abi.abi import decode

        if isinstance(data, str):
            try:
                data = bytes.fromhex(data.removeprefix("0x"))
            except ValueError:
                return None
        if not data or data[:4] not in self.errors:
            return None
        name, names, types = self.errors[data[:4]]
        try:
            values = decode(types, data[4:])
        except Exception:  # eth-abi raises several types for malformed data; the error's name still helps
            return name
        args = {n: _display(t, v) for n, t, v in zip(names, types, values, strict=True)}
        return f"{self.messages[name].format(**args)} ({name})" if name in self.messages else name


class Chain:
    """One JSON-RPC endpoint; `account` signs transactions (reads need none)."""

    def __init__(
        self,
        rpc_url: str,
        *,
        account: LocalAccount | None = None,
        receipt_timeout_s: float = 120.0,
        poll_s: float = 0.2,
        max_sends: int = 4,
        request_timeout_s: float = 30.0,
        drop_grace_s: float = DROP_GRACE_S,
    ) -> None:
        self.rpc_url = rpc_url
        self.where = redact(rpc_url)
        self.account = account
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_s = poll_s
        self.max_sends = max_sends
        self.drop_grace_s = drop_grace_s
        # One quick retry of a failed connection, not web3's five: "RPC down" should say so within seconds.
        retry = ExceptionRetryConfiguration(
            errors=(ConnectionError, requests.ConnectionError, requests.Timeout), retries=1, backoff_factor=0.1
        )
        provider = HTTPProvider(
            rpc_url, request_kwargs={"timeout": request_timeout_s}, exception_retry_configuration=retry
        )
        self.w3 = Web3(provider)
        self.artifact = load_artifact()
        self.decoder = _ErrorDecoder(self.artifact["abi"])
        self._contracts: dict[tuple[str, str], Contract] = {}

    # errors ---------------------------------------------------------------------------------------------------

    @contextmanager
    def rpc(self, what: str) -> Iterator[None]:
        """Turn what web3.py and the HTTP layer raise into our error family, saying what was being done."""
        try:
            yield
        except (w3ex.ContractCustomError, w3ex.ContractLogicError) as e:
            reason = self.decoder.message(e.data if isinstance(e.data, str | bytes) else None)
            raise TransactionReverted(f"the chain refused {what}: {reason or e.message or 'reverted'}") from None
        except w3ex.ContractPanicError as e:
            raise TransactionReverted(f"the chain refused {what}: {e.message}") from None
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else "an error"
            raise ChainUnreachable(
                f"the chain RPC at {self.where} answered HTTP {status}", hint="check AIPROV_CHAIN_RPC and its API key"
            ) from None
        except (w3ex.ProviderConnectionError, w3ex.RequestTimedOut, OSError) as e:
            # requests' exceptions are OSErrors; their text repeats the URL (and any API key in it) at length.
            kind = "timed out" if isinstance(e, TimeoutError | w3ex.RequestTimedOut | requests.Timeout) else "refused"
            raise ChainUnreachable(
                f"cannot reach the chain RPC at {self.where} ({kind})", hint="check AIPROV_CHAIN_RPC"
            ) from None
        except w3ex.Web3RPCError as e:
            text = _rpc_message(e)
            if "insufficient funds" in text.lower():
                raise InsufficientFunds(f"{what}: the signer cannot pay for gas ({text})") from None
            hint = None
            if "NotActivated" in text or "invalid opcode" in text.lower():
                hint = f"the chain may not run evmVersion {self.artifact['settings']['evmVersion']}"
            raise ChainError(f"{what}: the RPC answered {text}", hint=hint) from None
        except w3ex.Web3Exception as e:
            raise ChainError(f"{what}: {e}") from None

    # reads ----------------------------------------------------------------------------------------------------

    @cached_property
    def chain_id(self) -> int:
        with self.rpc("reading the chain id"):
            return int(self.w3.eth.chain_id)

    def block_number(self) -> int:
        with self.rpc("reading the block number"):
            return int(self.w3.eth.block_number)

    def mined(self, tx: str) -> str | None:
        """The address transaction `tx` called, if it was mined with status 1; None if unknown or failed."""
        with self.rpc(f"reading the receipt of {tx}"):
            try:
                receipt = self.w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
            except w3ex.TransactionNotFound:
                return None
        to = receipt.get("to")
        return str(to) if receipt["status"] == 1 and to else None

    def contract(self, address: str) -> Contract:
        """The registry at `address`; raises ChainError unless its code is exactly our contract's build."""
        return self.bound(address, self.artifact)

    def bound(self, address: str, artifact: dict[str, Any]) -> Contract:
        """The contract built as `artifact` at `address`; raises ChainError unless its code is exactly that build.

        Immutables (constructor arguments kept in the code) are compared outside the ranges the compiler listed.
        """
        address = checksum(address)
        name = artifact["contractName"]
        if (address, name) in self._contracts:
            return self._contracts[address, name]
        with self.rpc(f"reading the code at {address}"):
            code = bytes(self.w3.eth.get_code(address))  # type: ignore[arg-type]
        if not code:
            raise ChainError(f"no contract at {address} on chain {self.chain_id}", hint="check AIPROV_CHAIN_CONTRACT")
        expected = bytes.fromhex(artifact["deployedBytecode"].removeprefix("0x"))
        if _masked(code, artifact) != _masked(expected, artifact):
            raise ChainError(f"the contract at {address} on chain {self.chain_id} is not an {name} build")
        contract: Contract = self.w3.eth.contract(address=address, abi=artifact["abi"])  # type: ignore[call-overload]
        self._contracts[address, name] = contract
        return contract

    def registration(self, address: str, digest: bytes) -> ChainRegistration | None:
        """Who registered `digest` (32 bytes) on the registry at `address`, or None."""
        contract = self.contract(address)
        with self.rpc("reading a registration"):
            owner, block, metadata, uri = contract.functions.registration(digest).call()
        if int(owner, 16) == 0:
            return None
        return ChainRegistration(digest, str(owner), int(block), bytes(metadata), str(uri))

    def anchors(self, address: str, origin: str, from_block: int = 0) -> list[AnchoredCheckpoint]:
        """Every checkpoint of log `origin` anchored on the registry at `address`, oldest first, from its events."""
        event = self.contract(address).events.CheckpointAnchored
        logs = self._logs(event, from_block, {"originHash": Web3.keccak(text=origin)}, "reading anchored checkpoints")
        found = [
            AnchoredCheckpoint(
                origin=str(log["args"]["origin"]),
                tree_size=int(log["args"]["treeSize"]),
                root=bytes(log["args"]["root"]),
                block=int(log["blockNumber"]),
                tx=log["transactionHash"].to_0x_hex(),
            )
            for log in logs
        ]
        return [a for a in found if a.origin == origin]

    def _logs(self, event: Any, from_block: int, filters: dict[str, Any], what: str) -> list[Any]:
        """`event`'s logs from `from_block` to the latest block, in windows the RPC accepts.

        Public RPC providers cap the block range of one eth_getLogs (from 100 to 10,000 blocks, each its own
        message), so the whole range is asked first and, when the node refuses, ever smaller windows.
        """
        latest = self.block_number()
        window = max(1, latest - from_block + 1)
        found: list[Any] = []
        start = from_block
        while start <= latest:
            end = min(latest, start + window - 1)
            try:
                with self.rpc(f"{what} (blocks {start}-{end})"):
                    found += event.get_logs(from_block=start, to_block=end, argument_filters=filters)
            except ChainError as e:
                if type(e) is not ChainError or window <= MIN_LOG_WINDOW:  # unreachable, or not about the range
                    raise
                window = max(MIN_LOG_WINDOW, window // 8)
                continue
            start = end + 1
        return found

    def latest_anchor(self, address: str, origin: str) -> tuple[int, bytes]:
        """(tree size, root) of the newest anchor of `origin`, from the contract's storage: (0, zeros) if none."""
        contract = self.contract(address)
        with self.rpc("reading the latest anchor"):
            size, _, root = contract.functions.latestAnchor(origin).call()
        return int(size), bytes(root)

    # writes ---------------------------------------------------------------------------------------------------

    def _signer(self) -> LocalAccount:
        if self.account is None:
            raise InvalidInput("no chain signer key", hint="set AIPROV_CHAIN_PRIVATE_KEY or pass --key-file")
        return self.account

    def deploy(self) -> TxResult:
        """Deploy the registry; the signer becomes its log operator."""
        return self.deploy_contract(self.artifact, [], "deploying the registry")

    def deploy_contract(self, artifact: dict[str, Any], args: list[Any], what: str) -> TxResult:
        """Deploy the build `artifact` with constructor `args`; the result carries its address."""
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        with self.rpc(what):
            data = factory.constructor(*args).data_in_transaction
        result = self.transact({"data": data}, what)
        if result.contract_address is None:
            raise ChainError(f"deployment {result.tx} was mined without creating a contract")
        return result

    def register(self, address: str, digest: bytes, metadata_digest: bytes, uri: str) -> TxResult:
        contract = self.contract(address)
        data = contract.encode_abi("register", args=[digest, metadata_digest, uri])
        return self.transact({"to": contract.address, "data": data}, "registering the digest")

    def anchor(self, address: str, origin: str, tree_size: int, root: bytes) -> TxResult:
        contract = self.contract(address)
        data = contract.encode_abi("anchor", args=[origin, tree_size, root])
        return self.transact({"to": contract.address, "data": data}, "anchoring the checkpoint")

    def transfer_operator(self, address: str, new_operator: str) -> TxResult:
        """Hand the log operator role (who may anchor) to `new_operator`, e.g. when the anchoring key rotates."""
        contract = self.contract(address)
        data = contract.encode_abi("transferOperator", args=[checksum(new_operator)])
        return self.transact({"to": contract.address, "data": data}, "transferring the operator role")

    def _fees(self) -> dict[str, int]:
        """EIP-1559 fees when the chain has a base fee: up to twice the base fee plus the tip; else a gas price."""
        with self.rpc("reading fees"):
            base = self.w3.eth.get_block("latest").get("baseFeePerGas")
            if base is None:
                return {"gasPrice": int(self.w3.eth.gas_price)}
            try:
                tip = int(self.w3.eth.max_priority_fee)
            except (w3ex.MethodUnavailable, w3ex.Web3RPCError):
                tip = DEFAULT_TIP_WEI
        return {"maxFeePerGas": 2 * int(base) + tip, "maxPriorityFeePerGas": tip}

    def transact(self, call: dict[str, Any], what: str) -> TxResult:
        """Sign, send and wait for `call` (to, data, value) from the signer; `what` names it in every error."""
        account = self._signer()
        sender = account.address
        with self.rpc(what):
            estimate = int(self.w3.eth.estimate_gas({**call, "from": sender}))  # type: ignore[typeddict-item]
            nonce = int(self.w3.eth.get_transaction_count(sender, "pending"))
        tx: dict[str, Any] = {**call, "from": sender, "chainId": self.chain_id, "nonce": nonce}
        tx["gas"] = int(estimate * GAS_HEADROOM) + GAS_MARGIN
        tx.update(self._fees())
        self._check_funds(sender, tx, what)
        hashes: list[str] = []
        for _ in range(self.max_sends):
            hashes.append(self._send(account, tx, what, resend=bool(hashes)))
            receipt = self._wait(hashes, what)
            if receipt is not None:
                return self._result(receipt, tx, len(hashes), what)
            tx = _bumped(tx)
            self._check_funds(sender, tx, what)
        raise ChainError(
            f"{what}: not mined after {len(hashes)} sends of nonce {nonce} ({', '.join(hashes)})",
            hint="the chain may be congested; try again later",
        )

    def _check_funds(self, sender: str, tx: dict[str, Any], what: str) -> None:
        price = tx.get("maxFeePerGas", tx.get("gasPrice", 0))
        cost = tx["gas"] * price + int(tx.get("value", 0))
        with self.rpc("reading the signer's balance"):
            balance = int(self.w3.eth.get_balance(sender))  # type: ignore[arg-type]
        if balance < cost:
            raise InsufficientFunds(
                f"{what}: {sender} has {balance / 1e18:.6g} of the chain's coin, the transaction may cost up to "
                f"{cost / 1e18:.6g} ({tx['gas']} gas at {price / 1e9:.4g} gwei)",
                hint="fund the signer's address",
            )

    def _send(self, account: LocalAccount, tx: dict[str, Any], what: str, *, resend: bool) -> str:
        signed = account.sign_transaction(tx)
        try:
            with self.rpc(what):
                return self.w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()
        except ChainError as e:
            # A resend can race the earlier send being mined or still pooled: keep waiting for the hashes we have.
            if resend and any(s in e.message.lower() for s in ("nonce too low", "already known", "underpriced")):
                return "0x" + bytes(signed.hash).hex()
            if "nonce too low" in e.message.lower():
                raise ChainError(
                    f"{what}: nonce {tx['nonce']} was used by another transaction of {tx['from']} meanwhile",
                    hint="run the command again",
                ) from None
            raise

    def _wait(self, hashes: list[str], what: str) -> TxReceipt | None:
        """The receipt of any of `hashes` (one nonce: at most one is mined); None to send again with higher fees.

        None when the newest transaction has left the node's pool unmined (dropped: checked after `drop_grace_s`,
        since a load-balanced RPC may not know a transaction it just accepted), or is still pending at the
        receipt timeout (stuck behind higher fees).
        """
        start = time.monotonic()
        while True:
            for h in hashes:
                with self.rpc(f"{what} (waiting for {h})"):
                    try:
                        return self.w3.eth.get_transaction_receipt(h)  # type: ignore[arg-type]
                    except w3ex.TransactionNotFound:
                        pass
            waited = time.monotonic() - start
            if waited >= self.receipt_timeout_s or (waited >= self.drop_grace_s and self._dropped(hashes[-1], what)):
                return None
            time.sleep(self.poll_s)

    def _dropped(self, h: str, what: str) -> bool:
        with self.rpc(f"{what} (looking up {h})"):
            try:
                self.w3.eth.get_transaction(h)  # type: ignore[arg-type]
            except w3ex.TransactionNotFound:
                return True
        return False

    def _result(self, receipt: TxReceipt, tx: dict[str, Any], sent: int, what: str) -> TxResult:
        h = receipt["transactionHash"].to_0x_hex()
        if receipt["status"] != 1:
            raise TransactionReverted(
                f"{what}: transaction {h} reverted in block {receipt['blockNumber']}: "
                f"{self._replay_reason(tx, receipt)}"
            )
        address = receipt.get("contractAddress")
        return TxResult(
            tx=h,
            block=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price=int(receipt.get("effectiveGasPrice", 0)),
            sent=sent,
            contract_address=str(address) if address else None,
        )

    def _replay_reason(self, tx: dict[str, Any], receipt: TxReceipt) -> str:
        """Why a mined transaction failed: its call replayed on the state after its block, decoded.

        A call that passed estimation fails when a transaction mined before it in the same block changed the state
        (another account registered the digest first): the state after the block reproduces that.
        """
        call: TxParams = {k: tx[k] for k in ("from", "to", "data") if k in tx}  # type: ignore[assignment]
        try:
            with self.rpc("replaying the failed transaction"):
                self.w3.eth.call(call, receipt["blockNumber"])
        except TransactionReverted as e:
            return e.message.split(": ", 1)[-1]
        except ChainError:
            pass
        if receipt["gasUsed"] >= tx["gas"]:
            return f"out of gas ({receipt['gasUsed']} of {tx['gas']})"
        return "no reason given"


def _masked(code: bytes, artifact: dict[str, Any]) -> bytes:
    """`code` with the immutables' ranges listed in `artifact` zeroed (they hold constructor arguments)."""
    out = bytearray(code)
    for refs in artifact.get("immutableReferences", {}).values():
        for ref in refs:
            out[ref["start"] : ref["start"] + ref["length"]] = bytes(ref["length"])
    return bytes(out)


def redact(url: str) -> str:
    """`scheme://host[:port]` of an RPC URL: providers put API keys in the path or the user part."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def _rpc_message(e: w3ex.Web3RPCError) -> str:
    """The node's error message, without web3.py's wrapping (`{'code': …, 'message': …}`)."""
    error = (e.rpc_response or {}).get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return e.message or str(e)


def _display(abi_type: str, value: Any) -> Any:
    """An error argument as a message shows it: addresses in EIP-55 form, bytes as hex."""
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    return value.hex() if isinstance(value, bytes) else value


def _bumped(tx: dict[str, Any]) -> dict[str, Any]:
    """The same transaction (same nonce) with fees raised enough to replace it in any mempool."""
    out = dict(tx)
    for key in ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice"):
        if key in out:
            out[key] = int(out[key] * FEE_BUMP) + 1
    return out
