"""The reputation formula (`aiprov.core.reputation`): a pure function of log entries, rule by rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiprov.core import reputation as r
from aiprov.core.events import Event

T = datetime(2026, 12, 4, tzinfo=UTC)
V1 = "sha256:" + "1" * 64


def ev(actor: str, action: str, subject: str = V1, **details: Any) -> Event:
    return Event(T, actor, action, subject, "alice/m", details)


def log(*events: Event) -> list[tuple[int, Event]]:
    return list(enumerate(events))


def score(entries: list[tuple[int, Event]], account: str) -> int:
    found = r.scores(entries).get(account)
    return 0 if found is None else found.score


def test_the_majority_of_distinct_auditors_decides_and_each_side_is_paid_by_agreement() -> None:
    entries = log(
        ev("alice", "push"),
        ev("alice", "claim"),
        ev("bob", "audit", claim_id=1, verdict="refuted"),
        ev("carol", "audit", claim_id=1, verdict="refuted"),
        ev("dave", "audit", claim_id=1, verdict="confirmed"),
    )
    people = r.scores(entries)
    assert people["alice"].claims_refuted == 1 and people["alice"].score == r.CLAIM_REFUTED
    assert people["bob"].score == people["carol"].score == r.AUDIT_AGREED
    assert people["dave"].score == r.AUDIT_DISAGREED


def test_an_auditors_last_verdict_counts_once_and_self_audits_are_ignored() -> None:
    entries = log(
        ev("alice", "claim"),
        ev("bob", "audit", claim_id=0, verdict="refuted"),
        ev("bob", "audit", claim_id=0, verdict="confirmed"),
        ev("bob", "audit", claim_id=0, verdict="confirmed"),
        ev("alice", "audit", claim_id=0, verdict="confirmed"),
        ev("alice", "audit", claim_id=0, verdict="confirmed"),
    )
    people = r.scores(entries)
    assert people["alice"].claims_confirmed == 1 and people["alice"].score == r.CLAIM_CONFIRMED
    assert people["bob"].audits_agreed == 1 and people["bob"].score == r.AUDIT_AGREED


def test_a_tie_or_no_audit_leaves_the_claim_pending_and_scores_nothing() -> None:
    entries = log(
        ev("alice", "claim"),
        ev("bob", "audit", claim_id=0, verdict="refuted"),
        ev("carol", "audit", claim_id=0, verdict="confirmed"),
        ev("alice", "claim"),
    )
    people = r.scores(entries)
    assert people["alice"].claims_pending == 2 and people["alice"].score == 0
    assert people["bob"].audits_pending == 1 and people["bob"].score == 0


def test_a_stake_resolution_overrides_the_audits_slashes_the_loser_and_counts_its_auditors() -> None:
    resolve = {
        "claim_id": 0,
        "outcome": "refuted",
        "publisher": "alice",
        "challenger": "eve",
        "auditors": ["bob", "carol"],
    }
    entries = log(
        ev("alice", "claim"),
        ev("dave", "audit", claim_id=0, verdict="confirmed"),
        ev("chain", "stake.resolve", **resolve),
        ev("chain", "stake.resolve", **{**resolve, "outcome": "upheld"}),  # only the first resolution counts
    )
    people = r.scores(entries)
    assert people["alice"].score == r.CLAIM_REFUTED + r.SLASHED_PUBLISHER and people["alice"].slashed == 1
    assert people["eve"].score == r.CHALLENGE_WON and people["eve"].challenges_won == 1
    assert people["bob"].score == people["carol"].score == r.AUDIT_AGREED
    assert people["dave"].score == r.AUDIT_DISAGREED


def test_an_upheld_claim_slashes_the_challenger_and_a_refund_decides_nothing() -> None:
    upheld = log(
        ev("alice", "claim"), ev("x", "stake.resolve", claim_id=0, outcome="upheld", challenger="eve", auditors=[])
    )
    assert score(upheld, "alice") == r.CLAIM_CONFIRMED and score(upheld, "eve") == r.SLASHED_CHALLENGER
    refunded = log(ev("alice", "claim"), ev("x", "stake.resolve", claim_id=0, outcome="refunded", challenger="eve"))
    assert score(refunded, "alice") == 0 and score(refunded, "eve") == 0


def test_an_audited_evaluation_counts_for_its_evaluator() -> None:
    entries = log(ev("alice", "evaluate"), ev("bob", "audit", evaluation_id=7, evaluation_leaf=0, verdict="refuted"))
    assert score(entries, "alice") == r.CLAIM_REFUTED and score(entries, "bob") == r.AUDIT_AGREED


def test_ratings_count_each_accounts_last_one_capped_per_version_and_never_the_authors_own() -> None:
    entries = log(
        ev("alice", "push"),
        ev("bob", "rate", stars=1),
        ev("bob", "rate", stars=5),
        ev("alice", "rate", stars=5),
        *(ev(f"fan{i}", "rate", stars=5) for i in range(10)),
    )
    people = r.scores(entries)
    assert people["alice"].rating_points == r.RATING_CAP
    few = log(ev("alice", "push"), ev("bob", "rate", stars=1), ev("bob", "rate", stars=4), ev("carol", "rate", stars=2))
    assert score(few, "alice") == (4 - 3) + (2 - 3)


def test_flags_cost_one_per_distinct_account_capped_per_version() -> None:
    entries = log(
        ev("alice", "push"), ev("bob", "flag", reason="x"), ev("bob", "flag", reason="y"), ev("alice", "flag")
    )
    assert score(entries, "alice") == r.FLAG
    many = log(ev("alice", "push"), *(ev(f"troll{i}", "flag", reason="x") for i in range(20)))
    assert score(many, "alice") == r.FLAG_CAP


def test_malformed_or_foreign_entries_change_nothing() -> None:
    base = log(ev("alice", "claim"), ev("bob", "audit", claim_id=0, verdict="confirmed"))
    noisy = log(
        ev("alice", "claim"),
        ev("bob", "audit", claim_id=0, verdict="confirmed"),
        ev("carol", "audit", claim_id=99, verdict="refuted"),
        ev("carol", "audit", claim_id=0, verdict="maybe"),
        ev("carol", "audit", claim_id=True, verdict="refuted"),
        ev("carol", "rate", stars="5"),
        ev("carol", "rate", stars=6),
        ev("x", "stake.resolve", claim_id="zero", outcome="refuted"),
        ev("x", "download"),
    )
    assert {k: v.score for k, v in r.scores(base).items()} == {
        k: v.score for k, v in r.scores(noisy).items() if k in ("alice", "bob")
    }
    assert score(noisy, "carol") == 0


def test_the_same_entries_give_the_same_scores_and_ranking() -> None:
    entries = log(
        ev("alice", "claim"),
        ev("bob", "audit", claim_id=0, verdict="confirmed"),
        ev("carol", "audit", claim_id=0, verdict="confirmed"),
    )
    first, second = r.scores(entries), r.scores(list(entries))
    assert [(p.account, p.score, p.contributions) for p in r.ranked(first)] == [
        (p.account, p.score, p.contributions) for p in r.ranked(second)
    ]
    assert [p.account for p in r.ranked(first)] == ["alice", "bob", "carol"]


def test_staking_events_name_parties_by_address_and_the_log_links_them_to_accounts() -> None:
    bob, carol, eve = "0x" + "b" * 40, "0x" + "C" * 40, "0x" + "e" * 40
    entries = log(
        ev("alice", "claim"),
        ev("bob", "stake.auditor", subject=bob, auditor=bob, registered=True),
        ev("carol", "stake.auditor", subject=carol, auditor=carol, registered=True),
        ev("eve", "stake.challenge", subject="0", claim_id="0", challenger=eve),
        ev("eve", "stake.resolve", subject="0", claim_id="0", outcome="refuted", challenger=eve,
           auditors=[bob, carol.lower()], slashed="100"),
    )  # fmt: skip
    people = r.scores(entries)
    assert people["alice"].score == r.CLAIM_REFUTED + r.SLASHED_PUBLISHER
    assert people["eve"].score == r.CHALLENGE_WON
    assert people["bob"].score == people["carol"].score == r.AUDIT_AGREED
    assert not any(account.startswith("0x") for account in people)
