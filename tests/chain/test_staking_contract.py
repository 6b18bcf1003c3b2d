"""AiprovStaking and AiprovToken on a real anvil: the game's payouts, every revert path, and each attack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from chaintools import OPERATOR_KEY, Anvil
from staketools import FAST, SPEC, VERSION, Game, artifact_for_tests, deploy_game, player, register_auditors
from web3 import Web3

from aiprov.adapters.chain import Chain, parse_private_key
from aiprov.adapters.staking import OUTCOMES, VERDICT_TYPES, WAD, SignedVerdict, StakeParams, Staking
from aiprov.errors import ChainError, InsufficientFunds, InvalidInput, NotFound, TransactionReverted

STAKE = 10 * WAD
VALUE = 99 * WAD // 100
TOLERANCE = 5 * WAD // 1000


def reverts(match: str, call: Callable[[], object]) -> str:
    with pytest.raises(TransactionReverted) as e:
        call()
    message = e.value.diagnostics()
    assert match in message and "\n" not in message, message
    return message


@pytest.fixture
def game(anvil: Anvil) -> Game:
    g = deploy_game(anvil)
    register_auditors(g, 5)
    return g


def new_claim(game: Game, stake: int = STAKE) -> int:
    claim_id, _ = game.as_("publisher").claim(VERSION, SPEC, "accuracy", VALUE, TOLERANCE, stake, approve=True)
    return claim_id


def challenged(game: Game) -> int:
    claim_id = new_claim(game)
    game.as_("challenger").challenge(claim_id, approve=True)
    return claim_id


def balances(game: Game, *names: str) -> dict[str, int]:
    view = game.as_("outsider")
    return {n: view.balance(game.address(n)) for n in names}


def withdraw_all(game: Game, *names: str) -> None:
    for n in names:
        game.as_(n).withdraw()


# happy paths -------------------------------------------------------------------------------------------------------


def test_refuted_claim_slashes_the_publisher_to_the_challenger_auditors_and_burn(game: Game) -> None:
    claim_id = challenged(game)
    view = game.as_("outsider")
    assert view.claim_state(claim_id).bond == STAKE // 2  # f = 0.5
    auditors = game.auditors(3)
    before = balances(game, "publisher", "challenger", *auditors)
    burn_before = view.balance("0x000000000000000000000000000000000000dEaD")
    result = view.resolve(claim_id, "refuted", game.verdicts(claim_id, "refuted", auditors))
    withdraw_all(game, "challenger", *auditors)
    after = balances(game, "publisher", "challenger", *auditors)
    assert after["publisher"] == before["publisher"]  # its stake is gone, never credited back
    assert view.credit(game.address("publisher")) == 0
    assert after["challenger"] - before["challenger"] == STAKE // 2 + STAKE * 5_000 // 10_000  # bond back + 50%
    each = STAKE * 4_000 // 10_000 // 3
    assert all(after[a] - before[a] == each for a in auditors)
    burned = view.balance("0x000000000000000000000000000000000000dEaD") - burn_before
    assert burned == STAKE - STAKE // 2 - 3 * each  # 10% plus the split's rounding dust
    assert view.balance(view.address) == 5 * FAST.auditor_stake  # only the auditors' stakes remain
    state = view.claim_state(claim_id)
    assert (state.status, state.round) == ("refuted", 1)
    (event,) = view.contract.events.Resolved().get_logs(from_block=result.block)
    assert event["args"]["outcome"] == OUTCOMES["refuted"]
    assert list(event["args"]["auditors"]) == sorted((game.address(a) for a in auditors), key=lambda a: int(a, 16))
    assert (event["args"]["slashed"], event["args"]["burned"]) == (STAKE, burned)


def test_upheld_claim_pays_the_bond_to_publisher_and_auditors_and_reopens_for_another_round(game: Game) -> None:
    claim_id = challenged(game)
    view = game.as_("outsider")
    auditors = game.auditors(4)  # more than k is fine: every signer is paid
    before = balances(game, "publisher", "challenger", *auditors)
    round_one = game.verdicts(claim_id, "upheld", auditors)
    view.resolve(claim_id, "upheld", round_one)
    withdraw_all(game, "publisher", *auditors)
    after = balances(game, "publisher", "challenger", *auditors)
    bond = STAKE // 2
    assert after["publisher"] - before["publisher"] == bond * 5_000 // 10_000  # the stake itself stays locked
    assert after["challenger"] == before["challenger"]
    assert all(after[a] - before[a] == bond * 4_000 // 10_000 // 4 for a in auditors)
    state = view.claim_state(claim_id)
    assert (state.status, state.round) == ("open", 1)
    reverts("(StakeLocked)", lambda: game.as_("publisher").withdraw_stake(claim_id))
    game.as_("outsider").challenge(claim_id, approve=True)  # another challenger, round 2, inside the window
    assert view.claim_state(claim_id).round == 2
    reverts("(NotAuditor)", lambda: view.resolve(claim_id, "upheld", round_one))  # round 1's verdicts are spent
    view.resolve(claim_id, "upheld", game.verdicts(claim_id, "upheld", auditors[:3], rnd=2))
    game.travel(FAST.challenge_window_s)
    reverts("(WindowClosed)", lambda: game.as_("challenger").challenge(claim_id, approve=True))
    amount, _ = game.as_("publisher").withdraw_stake(claim_id)
    assert amount == STAKE and view.claim_state(claim_id).status == "withdrawn"


def test_no_quorum_by_the_deadline_refunds_both_sides(game: Game) -> None:
    claim_id = challenged(game)
    view = game.as_("outsider")
    reverts("may still be resolved until", lambda: view.refund(claim_id))
    before = balances(game, "publisher", "challenger")
    game.travel(FAST.resolution_period_s + 1)
    late = game.verdicts(claim_id, "refuted", game.auditors(3))
    reverts("(ResolutionClosed)", lambda: view.resolve(claim_id, "refuted", late))
    view.refund(claim_id)  # anyone may call it
    reverts("(NotChallenged)", lambda: view.refund(claim_id))
    withdraw_all(game, "publisher", "challenger")
    after = balances(game, "publisher", "challenger")
    assert after["publisher"] - before["publisher"] == STAKE
    assert after["challenger"] - before["challenger"] == STAKE // 2
    assert view.claim_state(claim_id).status == "refunded"


def test_an_honest_claim_passes_its_window_unchallenged_and_its_stake_is_withdrawn(game: Game) -> None:
    claim_id = new_claim(game)
    publisher = game.as_("publisher")
    before = publisher.balance(game.address("publisher"))
    reverts("(StakeLocked)", lambda: publisher.withdraw_stake(claim_id))
    game.travel(FAST.challenge_window_s)
    reverts("(NotPublisher)", lambda: game.raw("outsider", "withdrawStake", claim_id))
    amount, _ = publisher.withdraw_stake(claim_id)
    assert amount == STAKE and publisher.balance(game.address("publisher")) - before == STAKE
    reverts("(NotOpen)", lambda: publisher.withdraw_stake(claim_id))
    assert publisher.claim_state(claim_id).status == "withdrawn"


# attacks -----------------------------------------------------------------------------------------------------------


def test_a_claim_is_resolved_exactly_once(game: Game) -> None:
    claim_id = challenged(game)
    view = game.as_("outsider")
    verdicts = game.verdicts(claim_id, "refuted", game.auditors(3))
    view.resolve(claim_id, "refuted", verdicts)
    reverts("is not under challenge (status 3) (NotChallenged)", lambda: view.resolve(claim_id, "refuted", verdicts))
    upheld = game.verdicts(claim_id, "upheld", game.auditors(3))
    reverts("(NotChallenged)", lambda: view.resolve(claim_id, "upheld", upheld))
    reverts("(NotChallenged)", lambda: view.refund(claim_id))


def forged_first(game: Game, claim_id: int, forged: SignedVerdict) -> list[SignedVerdict]:
    """Two honest verdicts plus `forged`, which comes first (its claimed signer is the lowest address).

    The contract recovers some unrelated address from it, so the refusal is NotAuditor for that address.
    """
    honest = sorted(game.auditors(3), key=lambda n: int(game.address(n), 16))
    assert forged.signer == game.address(honest[0])
    return [forged, *game.verdicts(claim_id, "refuted", honest[1:])]


def lowest_auditor(game: Game) -> str:
    return min(game.auditors(3), key=lambda n: int(game.address(n), 16))


def test_a_verdict_for_another_claim_round_outcome_chain_or_contract_is_refused(anvil: Anvil, game: Game) -> None:
    claim_id = challenged(game)
    other_claim = challenged(game)
    view = game.as_("outsider")
    low = player(lowest_auditor(game))
    deadline = game.now() + 10_000
    replays = [
        view.sign_verdict(low, other_claim, 1, 0, "refuted", deadline),  # another claim
        view.sign_verdict(low, claim_id, 2, 0, "refuted", deadline),  # another round
        view.sign_verdict(low, claim_id, 1, 0, "upheld", deadline),  # another outcome
    ]
    domain = {"name": "AiprovStaking", "version": "1", "verifyingContract": view.address}
    message = {"claimId": claim_id, "round": 1, "measured": 0, "outcome": 1, "deadline": deadline}
    for changed in ({"chainId": 1}, {"chainId": anvil.w3.eth.chain_id, "verifyingContract": game.token}):
        signed = low.sign_typed_data({**domain, "chainId": 0, **changed}, VERDICT_TYPES, message)
        replays.append(SignedVerdict(claim_id, 1, 0, "refuted", deadline, low.address, bytes(signed.signature)))
    for forged in replays:
        message_text = reverts(
            "(NotAuditor)", lambda f=forged: view.resolve(claim_id, "refuted", forged_first(game, claim_id, f))
        )
        assert low.address not in message_text
    assert view.claim_state(claim_id).status == "challenged"
    view.resolve(claim_id, "refuted", game.verdicts(claim_id, "refuted", game.auditors(3)))  # the genuine ones pass


def test_duplicate_unordered_unregistered_conflicted_expired_or_too_few_signers_are_refused(game: Game) -> None:
    claim_id = challenged(game)
    view = game.as_("outsider")
    names = sorted(game.auditors(3), key=lambda n: int(game.address(n), 16))
    v = game.verdicts(claim_id, "refuted", names)
    reverts(
        "2 verdicts given, 3 needed (TooFewVerdicts)",
        lambda: view.resolve(claim_id, "refuted", v[:2]),
    )
    reverts(
        f"({game.address(names[1])} after {game.address(names[1])}) (SignersNotIncreasing)",
        lambda: view.resolve(claim_id, "refuted", [v[0], v[1], v[1]]),
    )
    descending = [(x.measured, x.deadline, x.signature) for x in reversed(v)]
    reverts("(SignersNotIncreasing)", lambda: game.raw("outsider", "resolve", claim_id, 1, descending))
    reverts(
        f"{game.address('outsider')} is not a registered auditor",
        lambda: view.resolve(claim_id, "refuted", [*v[:2], *game.verdicts(claim_id, "refuted", ["outsider"])]),
    )
    game.as_("challenger").register_auditor(approve=True)
    reverts(
        f"{game.address('challenger')} is a party to the claim and cannot judge it (ConflictedSigner)",
        lambda: view.resolve(claim_id, "refuted", [*v[:2], *game.verdicts(claim_id, "refuted", ["challenger"])]),
    )
    expiring = [view.sign_verdict(player(n), claim_id, 1, 0, "refuted", game.now() + 5) for n in names]
    game.travel(10)
    reverts("(VerdictExpired)", lambda: view.resolve(claim_id, "refuted", expiring))
    reverts("outcome 3 is neither", lambda: game.raw("outsider", "resolve", claim_id, 3, descending))
    bad_sig = [(x.measured, x.deadline, x.signature[:64]) for x in v]
    reverts("ECDSAInvalidSignatureLength", lambda: game.raw("outsider", "resolve", claim_id, 1, bad_sig))
    assert view.claim_state(claim_id).status == "challenged"


def test_challenges_late_second_self_or_underbonded_are_refused(game: Game) -> None:
    claim_id = new_claim(game)
    reverts("(SelfChallenge)", lambda: game.as_("publisher").challenge(claim_id, approve=True))
    reverts(
        f"a bond of {STAKE // 2 - 1} is below the minimum {STAKE // 2}",
        lambda: game.as_("challenger").challenge(claim_id, STAKE // 2 - 1, approve=True),
    )
    game.as_("challenger").challenge(claim_id, approve=True)
    reverts("is not open (status 2) (NotOpen)", lambda: game.as_("outsider").challenge(claim_id, approve=True))
    reverts("(NotOpen)", lambda: game.as_("challenger").challenge(claim_id, approve=True))
    late = new_claim(game)
    game.travel(FAST.challenge_window_s)
    reverts("(WindowClosed)", lambda: game.as_("challenger").challenge(late, approve=True))


def test_stake_never_unlocks_during_a_challenge(game: Game) -> None:
    claim_id = challenged(game)
    publisher = game.as_("publisher")
    reverts("(NotOpen)", lambda: publisher.withdraw_stake(claim_id))
    game.travel(FAST.challenge_window_s + 1)  # the window is over, the challenge is not
    reverts("(NotOpen)", lambda: publisher.withdraw_stake(claim_id))
    reverts("has nothing to withdraw (NothingToWithdraw)", lambda: game.raw("publisher", "withdraw"))


def test_reentrancy_through_a_malicious_token_is_refused_and_pays_once(anvil: Anvil) -> None:
    deployer = Chain(anvil.url, account=parse_private_key(OPERATOR_KEY, "test key"))
    evil = deployer.deploy_contract(artifact_for_tests("ReentrantToken"), [], "deploying the reentrant token")
    assert evil.contract_address is not None
    game = deploy_game(anvil, token=evil.contract_address)  # minting works: the test token lets anyone mint
    claim_id = new_claim(game)
    game.travel(FAST.challenge_window_s)
    publisher = game.as_("publisher")
    token = anvil.w3.eth.contract(address=evil.contract_address, abi=artifact_for_tests("ReentrantToken")["abi"])
    again = publisher.contract.encode_abi("withdrawStake", args=[claim_id])
    data = token.encode_abi("arm", args=[publisher.address, again])
    deployer.transact({"to": token.address, "data": data}, "arming")
    before = publisher.balance(game.address("publisher"))
    publisher.withdraw_stake(claim_id)
    assert token.functions.attempted().call() and not token.functions.reentered().call()
    selector = Web3.keccak(text="ReentrancyGuardReentrantCall()")[:4]
    assert bytes(token.functions.answer().call())[:4] == selector
    assert publisher.balance(game.address("publisher")) - before == STAKE  # paid once
    assert publisher.balance(publisher.address) == 0
    reverts("(NotOpen)", lambda: publisher.withdraw_stake(claim_id))


# other revert paths ------------------------------------------------------------------------------------------------


def test_unknown_claims_zero_digests_small_stakes_and_unfunded_players_are_refused(game: Game) -> None:
    view = game.as_("outsider")
    reverts("no claim 999 on the staking contract (UnknownClaim)", lambda: view.refund(999))
    reverts("(UnknownClaim)", lambda: view.resolve(999, "refuted", []))
    with pytest.raises(NotFound):
        view.challenge(999)
    with pytest.raises(NotFound):
        view.claim_state(999)
    publisher = game.as_("publisher")
    reverts("(ZeroDigest)", lambda: publisher.claim(bytes(32), SPEC, "accuracy", VALUE, 0, STAKE, approve=True))
    reverts("is below the minimum", lambda: publisher.claim(VERSION, SPEC, "accuracy", VALUE, 0, WAD - 1, approve=True))
    with pytest.raises(InsufficientFunds, match="holds"):
        publisher.claim(VERSION, SPEC, "accuracy", VALUE, 0, 10**6 * WAD, approve=True)
    fresh = publisher.claim_state(new_claim(game)).stake  # approve=True approved exactly what it needed
    assert fresh == STAKE
    with pytest.raises(InvalidInput, match="may spend 0 of"):
        publisher.claim(VERSION, SPEC, "accuracy", VALUE, 0, STAKE)
    reverts(
        "(ERC20InsufficientAllowance)",
        lambda: game.raw("publisher", "claim", VERSION, SPEC, b"a".ljust(32, b"\0"), 1, 0, STAKE),
    )
    with pytest.raises(InvalidInput, match="1 to 32 bytes"):
        publisher.claim(VERSION, SPEC, "m" * 33, VALUE, 0, STAKE, approve=True)


def test_auditors_register_once_and_leave_only_after_the_exit_delay(game: Game) -> None:
    auditor = game.as_("auditor0")
    reverts("has not withdrawn its former stake) (AlreadyAuditor)", lambda: auditor.register_auditor(approve=True))
    reverts("is not a registered auditor (NotRegistered)", lambda: game.as_("outsider").leave_auditors())
    before = auditor.balance(auditor.signer.address)
    auditor.leave_auditors()
    assert not auditor.is_auditor(auditor.signer.address)
    reverts("(AuditorStakeLocked)", auditor.withdraw_auditor_stake)
    reverts("(AlreadyAuditor)", lambda: auditor.register_auditor(approve=True))  # withdraw the old stake first
    game.travel(FAST.challenge_window_s + FAST.resolution_period_s)
    auditor.withdraw_auditor_stake()
    assert auditor.balance(auditor.signer.address) - before == FAST.auditor_stake
    reverts("(NotRegistered)", auditor.withdraw_auditor_stake)


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"challenge_window_s": 0}, "challengeWindow"),
        ({"resolution_period_s": 0}, "resolutionPeriod"),
        ({"bond_factor_bps": 0}, "bondFactorBps"),
        ({"quorum": 0}, "quorum"),
        ({"burn_share_bps": 1_001}, "shares"),
        ({"auditor_stake": 0}, "auditorStake"),
        ({"min_stake": 0}, "minStake"),
    ],
)
def test_every_parameter_is_checked_at_deployment(anvil: Anvil, game: Game, change: dict[str, int], name: str) -> None:
    deployer = Chain(anvil.url, account=parse_private_key(OPERATOR_KEY, "test key"))
    params = replace(FAST, **change)
    reverts(f"the staking parameter {name} is out of range", lambda: Staking.deploy(deployer, game.token, params))


def test_deployed_parameters_read_back_and_the_code_is_checked(anvil: Anvil, game: Game) -> None:
    view = game.as_("outsider")
    assert view.params() == FAST
    assert StakeParams().as_tuple() == (259_200, 604_800, 10_000, 3, 5_000, 4_000, 1_000, 100 * WAD, WAD)
    with pytest.raises(ChainError, match="is not an AiprovStaking build"):
        Staking(view.chain, game.token)


def test_token_mints_only_for_minters_and_accepts_permits(anvil: Anvil, game: Game) -> None:
    outsider = game.as_("outsider")
    data = outsider.token.encode_abi("mint", args=[outsider.signer.address, 1])
    reverts(
        "AccessControlUnauthorizedAccount", lambda: outsider.chain.transact({"to": game.token, "data": data}, "minting")
    )
    owner = player("publisher")
    spender = game.address("outsider")
    deadline = game.now() + 1_000
    nonce = outsider.token.functions.nonces(owner.address).call()
    domain = {"name": "aiprov stake", "version": "1", "chainId": anvil.w3.eth.chain_id, "verifyingContract": game.token}
    types = {
        "Permit": [
            {"name": n, "type": t}
            for n, t in (
                ("owner", "address"),
                ("spender", "address"),
                ("value", "uint256"),
                ("nonce", "uint256"),
                ("deadline", "uint256"),
            )
        ]
    }
    signed = owner.sign_typed_data(
        domain, types, {"owner": owner.address, "spender": spender, "value": 7, "nonce": nonce, "deadline": deadline}
    )
    args = [owner.address, spender, 7, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")]
    outsider.chain.transact({"to": game.token, "data": outsider.token.encode_abi("permit", args=args)}, "permit")
    assert outsider.token.functions.allowance(owner.address, spender).call() == 7
