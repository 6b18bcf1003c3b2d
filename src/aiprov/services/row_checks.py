"""What the registry serves about a version, compared with the log entries that established it.

A database row can be edited behind the hub's back; the log cannot, without failing its proofs. So every row
`show`, `pull` and `verify` serve besides the bytes is held to its entry: the version's author and time to its
registration (`push`) entry, its lineage and metadata to the lineage that entry logged, the model's description,
licence and tags to what its pushes set, and each alias to the latest `alias` entry of that name. Each function
returns a detail on success and raises VerificationError naming the row that disagrees.

A push logged before aiprov recorded lineage and model metadata in the entry (`lineage` absent) leaves those rows
unchecked, and the detail says so rather than claiming a match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiprov.core.events import Event
from aiprov.errors import VerificationError
from aiprov.records import ModelRecord, VersionRecord

UNLOGGED = "not in the log: registered by an aiprov that did not log it yet, so unchecked"


def missing_registration(record: VersionRecord) -> str:
    raise VerificationError(f"no push entry of {record.full_name} in the log registers {record.ref}")


def check_actor(record: VersionRecord, registration: Event) -> str:
    """The version's author and creation time are its registration entry's actor and time."""
    if record.author != registration.actor:
        raise VerificationError(
            f"the registry gives the author {record.author!r}, the log entry {registration.actor!r}: "
            "the version row was altered"
        )
    if record.created_at != registration.time:
        raise VerificationError(
            f"the registry gives the time {record.created_at.isoformat()}, the log entry "
            f"{registration.time.isoformat()}: the version row was altered"
        )
    return f"{record.author}, at {registration.time:%Y-%m-%d %H:%M:%S} UTC"


def check_lineage(record: VersionRecord, registration: Event) -> str:
    """Parents, datasets, code revision and parameters are those the registration entry logged."""
    logged = registration.details.get("lineage")
    if logged is None:
        return UNLOGGED
    served = record.lineage.to_json()
    differ = [k for k in ("parents", "datasets", "code_revision", "params") if served[k] != logged.get(k)]
    if differ:
        raise VerificationError(
            "the registry's "
            + ", ".join(f"{k} {_text(served[k])}" for k in differ)
            + " differ from the log entry's "
            + ", ".join(f"{k} {_text(logged.get(k))}" for k in differ)
            + ": the version row was altered"
        )
    return f"{len(served['parents'])} parent(s), {len(served['datasets'])} dataset(s), as logged"


def check_metadata(record: VersionRecord, model: ModelRecord, registration: Event, pushes: Sequence[Event]) -> str:
    """The version's free metadata is the logged one; the model's description and licence are what pushes set."""
    logged = registration.details.get("lineage")
    if logged is None or _unlogged(pushes):
        return UNLOGGED
    problems: list[str] = []
    if record.lineage.metadata != logged.get("metadata", {}):
        problems.append(
            f"the version's metadata {_text(record.lineage.metadata)}, logged {_text(logged.get('metadata', {}))}"
        )
    description, license = "", None
    for push in pushes:  # as `upsert_model` applied them: a push that gives a field sets it
        description = push.details.get("description", description)
        license = push.details.get("license", license)
    if model.description != description:
        problems.append(f"the description {model.description!r}, logged {description!r}")
    if model.license != license:
        problems.append(f"the licence {model.license!r}, logged {license!r}")
    if problems:
        raise VerificationError("the registry gives " + "; ".join(problems) + ": a row was altered")
    return f"{len(record.lineage.metadata)} metadata key(s), description and licence as logged"


def check_tags(model: ModelRecord, pushes: Sequence[Event]) -> str:
    """The model's tags are every tag its pushes added (a push only ever adds tags)."""
    if _unlogged(pushes):
        return UNLOGGED
    logged = {str(t) for push in pushes for t in push.details.get("tags", ())}
    served = set(model.tags)
    if served != logged:
        extra, missing = sorted(served - logged), sorted(logged - served)
        parts = ([f"not logged: {', '.join(extra)}"] if extra else []) + (
            [f"logged but not served: {', '.join(missing)}"] if missing else []
        )
        raise VerificationError(f"the registry's tags differ from the log ({'; '.join(parts)}): a row was altered")
    return ", ".join(sorted(served)) if served else "none, as logged"


def check_formats(record: VersionRecord, formats: Mapping[str, str | None], registration: Event) -> str:
    """Each file's format (what `ls --format` filters on) is the one its push logged in `file_scans`."""
    logged = registration.details.get("file_scans")
    if not isinstance(logged, list) or len(logged) != len(record.manifest.entries):
        return "not in the log: pushed before per-file scans were logged (or too many files), so unchecked"
    differ = [
        e.path
        for e, scan in zip(record.manifest.entries, logged, strict=True)
        if not isinstance(scan, list) or not scan or formats.get(e.path) != scan[0]
    ]
    if differ:
        shown = ", ".join(f"{p} ({formats.get(p)!r})" for p in differ[:3])
        raise VerificationError(
            f"the registry's format of {shown} differs from the scan its push logged: the file rows were altered"
        )
    return f"{len(logged)} file format(s), as logged"


def logged_aliases(events: Sequence[Event]) -> dict[str, Event]:
    """The latest `alias` entry of each alias name, from entries in log order."""
    latest: dict[str, Event] = {}
    for e in events:
        if e.action == "alias":
            latest[str(e.details.get("alias"))] = e
    return latest


def check_alias(record: VersionRecord, digest: str, alias: str, logged: Event | None) -> str:
    """The alias names this version exactly when its latest `alias` entry moved it here."""
    served_here = alias in record.aliases
    logged_here = logged is not None and logged.subject == digest
    if served_here and logged is None:
        raise VerificationError(f"the registry points {alias} at {record.ref}, and no log entry ever set {alias}")
    if served_here and not logged_here:
        assert logged is not None
        raise VerificationError(
            f"the registry points {alias} at {record.ref}, the log at version {logged.details.get('version')} "
            f"({logged.subject[:19]}…): the alias row was altered"
        )
    if logged_here and not served_here:
        raise VerificationError(
            f"the log points {alias} at {record.ref}, the registry elsewhere: the alias row was altered"
        )
    return f"{record.full_name}@{alias} -> version {record.number}, as logged"


def _unlogged(pushes: Sequence[Event]) -> bool:
    """Whether a first push of the model predates logged metadata (its entry has no `lineage`)."""
    return any("lineage" not in p.details and not p.details.get("deduplicated") for p in pushes)


def _text(value: Any) -> str:
    """A logged or served value as the user reads it: lists comma-joined, mappings as key=value."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}" if value else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "none" if value is None else repr(value) if isinstance(value, str) else str(value)
