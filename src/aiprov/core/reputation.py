"""Reputation: a pure, deterministic function of transparency-log entries (docs/audits.md states the rules).

The hub computes it from its events table and a verifier from the log's tiles; both hand the same entries, in
log order, to `scores`, so both get the same integers. Nothing here reads a database, a clock or a file.

Rules, in points (integers, so no rounding can differ between machines):
- A claim's (or an audited evaluation's) **outcome** is the `stake.resolve` verdict when one was logged for it
  (`refuted`, or `upheld` = confirmed; `refunded` gives none), else the majority of its audits' verdicts, each
  auditor's last audit counting once; a tie or no audit leaves it pending.
- The publisher gets CLAIM_CONFIRMED for a confirmed outcome and CLAIM_REFUTED for a refuted one.
- An auditor gets AUDIT_AGREED for each target whose outcome its (last) verdict matches, AUDIT_DISAGREED when it
  does not; auditors named in a `stake.resolve` count as having given that verdict (once per target).
- The staking events name challengers and auditors by chain address; an address is the account whose logged
  `stake.auditor` (registration) or `stake.challenge` first used it, else the address itself.
- `stake.resolve` also costs the loser of the stake: the publisher SLASHED_PUBLISHER when refuted, the challenger
  SLASHED_CHALLENGER when upheld; a challenger whose challenge succeeded gets CHALLENGE_WON.
- Each account's last rating of a version gives its author `stars - 3` (self-ratings ignored), capped to
  +-RATING_CAP per version; each distinct account flagging a version costs its author FLAG, capped at FLAG_CAP
  per version (self-flags ignored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiprov.core.events import Event

CLAIM_CONFIRMED = 10
CLAIM_REFUTED = -20
AUDIT_AGREED = 3
AUDIT_DISAGREED = -5
SLASHED_PUBLISHER = -10
SLASHED_CHALLENGER = -10
CHALLENGE_WON = 5
RATING_CAP = 5
FLAG = -1
FLAG_CAP = -5

ACTIONS = ("push", "evaluate", "claim", "audit", "rate", "flag", "stake.auditor", "stake.challenge", "stake.resolve")
"""The event actions reputation reads; every other entry is ignored."""

CONFIRMED, REFUTED = "confirmed", "refuted"


@dataclass(slots=True)
class Reputation:
    """One account's score and what it is made of."""

    account: str
    claims_confirmed: int = 0
    claims_refuted: int = 0
    claims_pending: int = 0
    audits_agreed: int = 0
    audits_disagreed: int = 0
    audits_pending: int = 0
    rating_points: int = 0
    flags_received: int = 0
    flag_points: int = 0
    slashed: int = 0
    """How many times a `stake.resolve` slashed this account's stake or bond."""
    challenges_won: int = 0
    score: int = 0
    contributions: list[tuple[int, int]] = field(default_factory=list)
    """(log index of the event that decided it, points), so a score can be traced to entries."""

    def add(self, points: int, index: int) -> None:
        self.score += points
        self.contributions.append((index, points))

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "score": self.score,
            "claims": {
                "confirmed": self.claims_confirmed,
                "refuted": self.claims_refuted,
                "pending": self.claims_pending,
            },
            "audits": {
                "agreed": self.audits_agreed,
                "disagreed": self.audits_disagreed,
                "pending": self.audits_pending,
            },
            "rating_points": self.rating_points,
            "flags_received": self.flags_received,
            "slashed": self.slashed,
            "challenges_won": self.challenges_won,
        }


@dataclass(slots=True)
class _Target:
    """A claim or an audited evaluation: who stands behind it, and the verdicts given on it."""

    publisher: str
    index: int
    verdicts: dict[str, tuple[str, int]] = field(default_factory=dict)
    """auditor -> (its last verdict, the audit's log index)."""
    resolved: tuple[str, int] | None = None
    """(outcome, log index) of the `stake.resolve` for it."""
    stake: dict[str, Any] | None = None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _log_id(value: Any) -> int | None:
    """A log claim id as the staking events write it: an integer, or its decimal digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return _int(value)


def scores(entries: Iterable[tuple[int, Event]]) -> dict[str, Reputation]:
    """Every account's reputation from `entries` ((log index, event), in log order).

    Entries of other actions, and malformed ones (a rating without integer stars, an audit naming an unknown
    target), are ignored, the same way on every machine.
    """
    people: dict[str, Reputation] = {}

    def of(account: str) -> Reputation:
        if account not in people:
            people[account] = Reputation(account)
        return people[account]

    authors: dict[str, str] = {}  # version digest -> the account whose push registered it first
    evaluations: dict[int, str] = {}  # log index of an `evaluate` event -> its evaluator
    targets: dict[tuple[str, int], _Target] = {}
    ratings: dict[str, dict[str, tuple[int, int]]] = {}  # digest -> rater -> (stars, index)
    flags: dict[str, dict[str, int]] = {}  # digest -> flagger -> first index
    accounts: dict[str, str] = {}  # chain address (lower case) -> the account whose logged step used it first
    for index, e in entries:
        d = e.details
        if e.action == "push":
            authors.setdefault(e.subject, e.actor)
        elif e.action == "evaluate":
            evaluations[index] = e.actor
        elif e.action == "claim":
            targets[("claim", index)] = _Target(e.actor, index)
        elif e.action == "audit":
            key = _target_key(d)
            if key is None:
                continue
            if key not in targets and key[0] == "evaluation" and key[1] in evaluations:
                targets[key] = _Target(evaluations[key[1]], key[1])
            target = targets.get(key)
            verdict = d.get("verdict")
            if target is not None and verdict in (CONFIRMED, REFUTED) and e.actor != target.publisher:
                target.verdicts[e.actor] = (str(verdict), index)
        elif e.action == "rate":
            stars = _int(d.get("stars"))
            if stars is not None and 1 <= stars <= 5:
                ratings.setdefault(e.subject, {})[e.actor] = (stars, index)
        elif e.action == "flag":
            flags.setdefault(e.subject, {}).setdefault(e.actor, index)
        elif e.action in ("stake.auditor", "stake.challenge"):
            address = d.get("auditor" if e.action == "stake.auditor" else "challenger")
            if isinstance(address, str):
                accounts.setdefault(address.lower(), e.actor)
        elif e.action == "stake.resolve":
            claim_id = _log_id(d.get("claim_id"))
            target = targets.get(("claim", claim_id)) if claim_id is not None else None
            if target is not None and target.resolved is None and d.get("outcome") in ("refuted", "upheld", "refunded"):
                target.resolved = (str(d["outcome"]), index)
                target.stake = _named(dict(d), accounts)

    for target in targets.values():
        _settle(target, of)
    for digest, by_rater in ratings.items():
        author = authors.get(digest)
        if author is None:
            continue
        points = sum(stars - 3 for rater, (stars, _) in by_rater.items() if rater != author)
        points = max(-RATING_CAP, min(RATING_CAP, points))
        if points:
            last = max(i for _, i in by_rater.values())
            of(author).rating_points += points
            of(author).add(points, last)
    for digest, by_flagger in flags.items():
        author = authors.get(digest)
        if author is None:
            continue
        flaggers = [i for flagger, i in by_flagger.items() if flagger != author]
        if flaggers:
            points = max(FLAG_CAP, FLAG * len(flaggers))
            person = of(author)
            person.flags_received += len(flaggers)
            person.flag_points += points
            person.add(points, max(flaggers))
    for person in people.values():
        person.contributions.sort()
    return people


def _named(stake: dict[str, Any], accounts: dict[str, str]) -> dict[str, Any]:
    """The resolution with its challenger and auditors named by account where the log links their addresses."""

    def name(who: Any) -> Any:
        return accounts.get(who.lower(), who) if isinstance(who, str) else who

    stake["challenger"] = name(stake.get("challenger"))
    stake["auditors"] = [name(a) for a in stake.get("auditors") or () if isinstance(a, str)]
    return stake


def _target_key(details: dict[str, Any]) -> tuple[str, int] | None:
    claim, evaluation = _int(details.get("claim_id")), _int(details.get("evaluation_leaf"))
    if claim is not None:
        return ("claim", claim)
    if evaluation is not None:
        return ("evaluation", evaluation)
    return None


def _settle(target: _Target, of: Callable[[str], Reputation]) -> None:
    verdicts = dict(target.verdicts)
    outcome: str | None = None
    decided_at = max((i for _, i in verdicts.values()), default=target.index)
    if target.resolved is not None and target.resolved[0] != "refunded":
        outcome = REFUTED if target.resolved[0] == "refuted" else CONFIRMED
        decided_at = target.resolved[1]
        stake = target.stake or {}
        for auditor in stake.get("auditors") or ():
            if isinstance(auditor, str) and auditor != target.publisher:
                verdicts.setdefault(auditor, (outcome, decided_at))
        challenger = stake.get("challenger")
        if outcome == REFUTED:
            of(target.publisher).slashed += 1
            of(target.publisher).add(SLASHED_PUBLISHER, decided_at)
            if isinstance(challenger, str) and challenger != target.publisher:
                of(challenger).challenges_won += 1
                of(challenger).add(CHALLENGE_WON, decided_at)
        elif isinstance(challenger, str) and challenger != target.publisher:
            of(challenger).slashed += 1
            of(challenger).add(SLASHED_CHALLENGER, decided_at)
    else:
        confirmed = sum(1 for v, _ in verdicts.values() if v == CONFIRMED)
        refuted = len(verdicts) - confirmed
        if confirmed != refuted:
            outcome = CONFIRMED if confirmed > refuted else REFUTED
    publisher = of(target.publisher)
    if outcome is None:
        publisher.claims_pending += 1
        for auditor in verdicts:
            of(auditor).audits_pending += 1
        return
    if outcome == CONFIRMED:
        publisher.claims_confirmed += 1
        publisher.add(CLAIM_CONFIRMED, decided_at)
    else:
        publisher.claims_refuted += 1
        publisher.add(CLAIM_REFUTED, decided_at)
    for auditor, (verdict, index) in verdicts.items():
        person = of(auditor)
        if verdict == outcome:
            person.audits_agreed += 1
            person.add(AUDIT_AGREED, max(index, decided_at))
        else:
            person.audits_disagreed += 1
            person.add(AUDIT_DISAGREED, max(index, decided_at))


def ranked(people: dict[str, Reputation]) -> Sequence[Reputation]:
    """Reputations by score, highest first, then by account name (a deterministic order)."""
    return sorted(people.values(), key=lambda r: (-r.score, r.account))
