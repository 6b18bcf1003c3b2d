"""Reputation, from the hub's events table (fast) or from the log's tiles alone (trusting only the log key).

Both feed the same entries to `aiprov.core.reputation.scores`, so they agree exactly when the table is faithful
to the log; `from_log` is how anyone checks that without the hub's database.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from aiprov.core import merkle, reputation, tiles
from aiprov.core.events import Event
from aiprov.core.note import Verifier
from aiprov.errors import InvalidInput, VerificationError
from aiprov.ports import RegistryStore, RegistryUnit
from aiprov.records import EventRecord, ReputationRecord
from aiprov.services.transparency import open_checkpoint


def records(people: dict[str, reputation.Reputation], log_size: int) -> builtins.list[ReputationRecord]:
    """Reputation records, highest score first."""
    out = []
    for r in reputation.ranked(people):
        document = r.to_json()
        breakdown = {k: v for k, v in document.items() if k not in ("account", "score")}
        out.append(ReputationRecord(r.account, r.score, breakdown, log_size))
    return out


def pick(found: builtins.list[ReputationRecord], account: str, log_size: int) -> ReputationRecord:
    """`account`'s record; an account the log never mentions has the zero reputation."""
    for r in found:
        if r.account == account:
            return r
    return records({account: reputation.Reputation(account)}, log_size)[0]


def verified_entries(
    note: str, verifier: Verifier, fetch: Callable[[str], bytes], trusted: str | None = None
) -> tuple[int, builtins.list[tuple[int, Event]]]:
    """Every entry of the log up to the checkpoint `note`, read as C2SP entry bundles through `fetch(path)`.

    The checkpoint must be signed by `verifier`, and the leaf hashes of all the entries must rebuild its root
    (RFC 9162 §2.1.1), which proves every entry is the log's. With `trusted` (a checkpoint note this client
    verified before), the first entries must also rebuild its root: the log only grew since. Returns (tree size,
    [(index, event)]) with only the events reputation reads decoded. Raises VerificationError (bad signature, a
    bundle of other entries, a rewritten history), InvalidInput (a malformed bundle or entry).
    """
    checkpoint = open_checkpoint(note, verifier)
    before = None if trusted is None else open_checkpoint(trusted, verifier)
    if before is not None and before.size > checkpoint.size:
        raise VerificationError(f"the log shrank from the trusted size {before.size} to {checkpoint.size}")
    edge = merkle.CompactRange()
    out: builtins.list[tuple[int, Event]] = []
    for bundle in tiles.entry_bundles_for_size(checkpoint.size):
        entries = tiles.decode_entry_bundle(fetch(bundle.path), bundle.width)
        for offset, data in enumerate(entries):
            if before is not None and edge.size == before.size and edge.root() != before.root_hash:
                raise VerificationError(f"the log's first {before.size} entries are not the trusted checkpoint's")
            edge.append(merkle.leaf_hash(data))
            index = bundle.first_entry + offset
            if any(f'"action":"{a}"'.encode() in data for a in reputation.ACTIONS):
                event = Event.from_entry(data)
                if event.action in reputation.ACTIONS:
                    out.append((index, event))
    if before is not None and before.size == checkpoint.size and before.root_hash != checkpoint.root_hash:
        raise VerificationError(f"the log's root at size {before.size} differs from the trusted one")
    if edge.root() != checkpoint.root_hash:
        raise VerificationError(
            f"the log's entries do not hash to the root of its signed checkpoint of size {checkpoint.size}"
        )
    return checkpoint.size, out


def recompute(
    note: str,
    verifier: Verifier,
    fetch: Callable[[str], bytes],
    account: str | None = None,
    trusted: str | None = None,
) -> builtins.list[ReputationRecord]:
    """Every reputation (or `account`'s) from the log's tiles (`verified_entries`), without any database."""
    if account is not None:
        _check_account(account)
    size, entries = verified_entries(note, verifier, fetch, trusted)
    found = records(reputation.scores(entries), size)
    return [pick(found, account, size)] if account is not None else found


def _events(rows: Iterable[EventRecord]) -> builtins.list[tuple[int, Event]]:
    return [
        (r.leaf_index, Event(r.time, r.actor, r.action, r.subject, r.model, r.details))
        for r in rows
        if r.leaf_index is not None
    ]


class ScoreCache:
    """Every account's score, kept in step with the log: each call reads only the entries logged since the last.

    The log only grows, so the entries below a tree size never change: a call whose transaction sees a log of size
    N reads the events from the largest size read before up to N, and answers the scores of exactly the first N
    entries, as if it had read them all (never stale, never ahead of its own transaction). Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read = 0
        self._entries: builtins.list[tuple[int, Event]] = []
        self._answer: tuple[int, builtins.list[ReputationRecord]] = (-1, [])

    def records(self, u: RegistryUnit) -> tuple[int, builtins.list[ReputationRecord]]:
        """(the log size `u` sees, every account's reputation at that size, highest score first)."""
        size = u.log_size()
        with self._lock:
            if size > self._read:
                self._entries += _events(u.events_in_log_order(reputation.ACTIONS, start=self._read))
                self._read = size
            if self._answer[0] != size:
                entries = [e for e in self._entries if e[0] < size]
                self._answer = (size, records(reputation.scores(entries), size))
            return self._answer

    def scores(self, u: RegistryUnit) -> dict[str, int]:
        """The scores of the log as the unit `u` sees it (accounts the log never mentions are absent)."""
        return {r.account: r.score for r in self.records(u)[1]}


class ReputationService:
    """Reputations of this hub's accounts: from its events table, or recomputed from its log's tiles."""

    def __init__(
        self,
        db: RegistryStore,
        tile: Callable[[str], bytes],
        checkpoint: Callable[[], str],
        verifier: Callable[[], Verifier],
        trusted_file: Path | None = None,
        cache: ScoreCache | None = None,
    ) -> None:
        self.db = db
        self._tile = tile
        self._checkpoint = checkpoint
        self._verifier = verifier
        self.trusted_file = trusted_file
        self.cache = cache or ScoreCache()
        """Shared with the registry's sort by reputation: one incremental read of the log for both."""

    def all(self) -> builtins.list[ReputationRecord]:
        """Every account the log mentions, highest score first."""
        with self.db.unit() as u:
            return list(self.cache.records(u)[1])

    def of(self, account: str) -> ReputationRecord:
        _check_account(account)
        with self.db.unit() as u:
            size, found = self.cache.records(u)
        return pick(found, account, size)

    def from_log(self, account: str | None = None) -> builtins.list[ReputationRecord]:
        """As `all` (or just `account`), recomputed from the log's tiles, proven against the trusted log key."""
        return recompute(self._checkpoint(), self._verifier(), self._tile, account, read_trusted(self.trusted_file))


def read_trusted(path: Path | None) -> str | None:
    """The checkpoint note this client last verified (`aiprov verify` keeps it), None before the first."""
    try:
        return None if path is None else path.read_text()
    except FileNotFoundError:
        return None


def _check_account(account: str) -> None:
    if not account or len(account) > 128 or not account.isprintable():
        raise InvalidInput(f"{account!r} is not an account name")
