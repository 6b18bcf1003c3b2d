"""AiprovRegistry on a real anvil through the chain adapter: every revert path, decoded; sending that survives."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import pytest
from chaintools import OPERATOR_KEY, OTHER_KEY, THIRD_KEY, Anvil, RangeLimitedRpc, start_anvil, stop

from aiprov.adapters.chain import Chain, parse_private_key
from aiprov.errors import ChainError, InvalidInput, TransactionReverted

DIGEST = hashlib.sha256(b"model").digest()
META = hashlib.sha256(b"push entry").digest()
ROOT_A = hashlib.sha256(b"root a").digest()
ROOT_B = hashlib.sha256(b"root b").digest()


def client(anvil: Anvil, key: str | None = OPERATOR_KEY, **kw: float) -> Chain:
    return Chain(anvil.url, account=parse_private_key(key, "test key") if key else None, **kw)  # type: ignore[arg-type]


@pytest.fixture
def operator(anvil: Anvil) -> Chain:
    return client(anvil)


@pytest.fixture
def registry(operator: Chain) -> str:
    result = operator.deploy()
    assert result.contract_address is not None and result.sent == 1
    return result.contract_address


def reverts(match: str, call: Callable[[], object]) -> str:
    with pytest.raises(TransactionReverted) as e:
        call()
    message = e.value.diagnostics()
    assert match in message and "\n" not in message
    return message


def test_register_then_read_back_owner_block_metadata_and_uri(operator: Chain, registry: str) -> None:
    assert operator.registration(registry, DIGEST) is None
    result = operator.register(registry, DIGEST, META, "ipfs://bafy")
    got = operator.registration(registry, DIGEST)
    events = operator.contract(registry).events.VersionRegistered.get_logs(from_block=result.block)
    assert [(e["args"]["digest"], e["args"]["owner"], e["args"]["uri"]) for e in events] == [
        (DIGEST, got.owner if got else None, "ipfs://bafy")
    ]
    assert got is not None
    assert (got.owner, got.block, got.metadata_digest, got.uri) == (
        operator.account.address if operator.account else None,
        result.block,
        META,
        "ipfs://bafy",
    )


def test_register_reverts_for_a_taken_digest_even_for_its_owner_and_for_the_zero_digest(
    anvil: Anvil, operator: Chain, registry: str
) -> None:
    operator.register(registry, DIGEST, META, "u")
    owner = operator.account.address if operator.account else ""
    other = client(anvil, OTHER_KEY)
    message = reverts("(AlreadyRegistered)", lambda: other.register(registry, DIGEST, ROOT_A, "mine now"))
    assert f"sha256:{DIGEST.hex()} is already registered on chain by {owner}" in message
    reverts("(AlreadyRegistered)", lambda: operator.register(registry, DIGEST, META, "again"))
    reverts("the zero digest cannot be registered (ZeroDigest)", lambda: other.register(registry, bytes(32), META, ""))
    got = operator.registration(registry, DIGEST)
    assert got is not None and got.uri == "u" and got.owner == owner


def test_anchor_is_operator_only_monotonic_and_fixed_per_size(anvil: Anvil, operator: Chain, registry: str) -> None:
    other = client(anvil, OTHER_KEY)
    owner = operator.account.address if operator.account else ""
    message = reverts("(NotOperator)", lambda: other.anchor(registry, "log", 5, ROOT_A))
    assert f"{other.account.address if other.account else ''} is not the registry's log operator ({owner})" in message
    operator.anchor(registry, "log", 5, ROOT_A)
    reverts(
        "log 'log' is anchored at tree size 5; size 4 would shrink it (TreeSizeShrinks)",
        lambda: operator.anchor(registry, "log", 4, ROOT_B),
    )
    reverts("(RootMismatch)", lambda: operator.anchor(registry, "log", 5, ROOT_B))
    reverts("a checkpoint needs a log origin (EmptyOrigin)", lambda: operator.anchor(registry, "", 9, ROOT_B))
    operator.anchor(registry, "log", 5, ROOT_A)  # the same checkpoint again is harmless
    operator.anchor(registry, "other log", 1, ROOT_B)  # another origin has its own tree size
    operator.anchor(registry, "log", 6, ROOT_B)
    anchors = operator.anchors(registry, "log")
    assert [(a.tree_size, a.root) for a in anchors] == [(5, ROOT_A), (5, ROOT_A), (6, ROOT_B)]
    assert all(a.origin == "log" and a.tx.startswith("0x") for a in anchors)
    assert operator.latest_anchor(registry, "log") == (6, ROOT_B)


def test_operator_role_transfers_and_only_the_operator_may_transfer_it(
    anvil: Anvil, operator: Chain, registry: str
) -> None:
    other = client(anvil, OTHER_KEY)
    other_address = other.account.address if other.account else ""
    reverts("(NotOperator)", lambda: other.transfer_operator(registry, other_address))
    reverts(
        "the zero address cannot be the operator (ZeroAddress)",
        lambda: operator.transfer_operator(registry, "0x" + "00" * 20),
    )
    moved = operator.transfer_operator(registry, other_address)
    contract = operator.contract(registry)
    events = contract.events.OperatorTransferred.get_logs(from_block=moved.block)
    assert [(e["args"]["previousOperator"], e["args"]["newOperator"]) for e in events] == [
        (operator.account.address if operator.account else None, other_address)
    ]
    assert contract.functions.operator().call() == other_address
    other.anchor(registry, "log", 1, ROOT_A)
    reverts("(NotOperator)", lambda: operator.anchor(registry, "log", 2, ROOT_A))


def test_a_transaction_that_reverts_when_mined_is_reported_with_its_decoded_reason(
    anvil: Anvil, operator: Chain, registry: str
) -> None:
    """Both estimates pass; whichever is mined second reverts: the receipt's status is checked, never assumed."""
    contenders = [client(anvil, OTHER_KEY), client(anvil, THIRD_KEY)]
    outcomes: list[object] = []

    def register(chain: Chain) -> None:
        try:
            outcomes.append(chain.register(registry, DIGEST, META, "race"))
        except ChainError as e:
            outcomes.append(e)

    anvil.rpc("evm_setAutomine", False)
    try:
        threads = [threading.Thread(target=register, args=(c,)) for c in contenders]
        for t in threads:
            t.start()
        wait_for(lambda: len(anvil.pool()) == 2)
        anvil.rpc("evm_mine")
        for t in threads:
            t.join(30)
    finally:
        anvil.rpc("evm_setAutomine", True)
    errors = [o for o in outcomes if isinstance(o, ChainError)]
    assert len(outcomes) == 2 and len(errors) == 1
    assert isinstance(errors[0], TransactionReverted)
    assert "reverted in block" in errors[0].message and "(AlreadyRegistered)" in errors[0].message


def test_a_dropped_transaction_is_sent_again_with_the_same_nonce_and_higher_fees(anvil: Anvil, registry: str) -> None:
    chain = client(anvil, receipt_timeout_s=60.0, poll_s=0.05, drop_grace_s=0.5)
    nonce = anvil.tx_count(OPERATOR_KEY)
    dropped: list[str] = []

    def drop_first_then_mine() -> None:
        wait_for(lambda: len(anvil.pool()) == 1)
        dropped.extend(anvil.pool())
        anvil.rpc("anvil_dropTransaction", dropped[0])
        wait_for(lambda: len(anvil.pool()) == 1, timeout=30)
        anvil.rpc("evm_mine")

    anvil.rpc("evm_setAutomine", False)
    try:
        helper = threading.Thread(target=drop_first_then_mine)
        helper.start()
        started = time.monotonic()
        result = chain.anchor(registry, "log", 3, ROOT_A)
        elapsed = time.monotonic() - started
        helper.join(30)
    finally:
        anvil.rpc("evm_setAutomine", True)
    assert result.sent == 2 and result.tx != dropped[0]
    assert elapsed < 30, "a dropped transaction is noticed and resent, not waited for until the receipt timeout"
    mined = anvil.w3.eth.get_transaction(result.tx)
    assert mined["nonce"] == nonce
    assert chain.latest_anchor(registry, "log") == (3, ROOT_A)


def test_anchors_are_read_in_block_windows_when_the_rpc_limits_eth_getlogs(
    anvil: Anvil, operator: Chain, registry: str
) -> None:
    deployed_at = anvil.w3.eth.block_number
    for size in (1, 2, 3):
        operator.anchor(registry, "paged", size, ROOT_A if size < 3 else ROOT_B)
        anvil.rpc("anvil_mine", hex(400))  # spread the anchors over more blocks than one query may cover
    with RangeLimitedRpc(anvil.url, max_blocks=100) as rpc:
        reader = Chain(rpc.url)
        anchors = reader.anchors(registry, "paged", deployed_at)
        assert rpc.refused >= 1, "the whole range was asked first"
    assert [(a.tree_size, a.root) for a in anchors] == [(1, ROOT_A), (2, ROOT_A), (3, ROOT_B)]
    assert anchors == operator.anchors(registry, "paged", deployed_at)


def test_an_address_without_our_contract_is_refused(anvil: Anvil, operator: Chain, registry: str) -> None:
    eoa = operator.account.address if operator.account else ""
    with pytest.raises(ChainError, match=f"no contract at {eoa} on chain 31337"):
        operator.registration(eoa, DIGEST)
    with pytest.raises(InvalidInput, match="is not an Ethereum address"):
        operator.registration("0x1234", DIGEST)


def test_a_stuck_transaction_is_replaced_at_the_receipt_timeout(anvil: Anvil, registry: str) -> None:
    chain = client(anvil, receipt_timeout_s=0.5, poll_s=0.05, drop_grace_s=60)
    first: list[dict[str, object]] = []

    def mine_after_the_replacement() -> None:
        wait_for(lambda: len(anvil.pool()) == 1)
        first.append(anvil.rpc("eth_getTransactionByHash", anvil.pool()[0]))
        wait_for(lambda: anvil.pool() not in ([], [first[0]["hash"]]))  # anvil swaps in the replacement
        anvil.rpc("evm_mine")

    anvil.rpc("evm_setAutomine", False)
    try:
        helper = threading.Thread(target=mine_after_the_replacement)
        helper.start()
        result = chain.register(registry, hashlib.sha256(b"stuck").digest(), META, "u")
        helper.join(30)
    finally:
        anvil.rpc("evm_setAutomine", True)
    mined = anvil.w3.eth.get_transaction(result.tx)
    assert result.sent >= 2 and result.tx != first[0]["hash"]
    assert mined["nonce"] == int(str(first[0]["nonce"]), 16)
    assert mined["maxFeePerGas"] > int(str(first[0]["maxFeePerGas"]), 16)


def test_gas_headroom_covers_what_is_used(operator: Chain, registry: str) -> None:
    result = operator.anchor(registry, "gas", 10, ROOT_A)
    tx = operator.w3.eth.get_transaction(result.tx)
    assert result.gas_used < tx["gas"]
    assert tx["gas"] >= int(result.gas_used * 1.25), "estimate x1.25 + margin"
    assert tx["type"] == 2 and tx["maxFeePerGas"] >= tx["maxPriorityFeePerGas"]  # anvil has a base fee: EIP-1559


def test_a_chain_without_a_base_fee_gets_legacy_gas_prices() -> None:
    """A pre-London chain (anvil as berlin): fees fall back to `gasPrice`, type 0 transactions."""
    old = start_anvil("--hardfork", "berlin")
    try:
        chain = client(old)
        to = old.w3.eth.account.from_key(OTHER_KEY).address
        result = chain.transact({"to": to, "value": 1}, "sending 1 wei")  # the path every write takes
        tx = old.w3.eth.get_transaction(result.tx)
        assert tx["type"] == 0 and tx["gasPrice"] > 0 and "maxFeePerGas" not in tx
        with pytest.raises(ChainError) as e:
            chain.deploy()  # the registry is built for cancun
        assert "(the chain may not run evmVersion cancun)" in e.value.diagnostics()
    finally:
        stop(old.process)


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
