"""Events as transparency-log entries.

Every state change of the hub (push, alias move, signature, download, inference, flag, evaluation, …) is an
event, and the event's canonical JSON is a leaf of the log. This module is the one encoding, so a verifier on
another machine can read any entry it is handed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiprov.core.canonical import canonical_json
from aiprov.errors import InvalidInput

EVENT_TYPE = "https://aiprov.dev/event/v1"


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. `2026-11-27T02:52:19.659423Z`."""
    if t.tzinfo is None:
        raise InvalidInput("event times must be timezone-aware")
    # isoformat, not strftime: twice as fast, and it writes a 4-digit year whatever the year (strftime's `%Y` does
    # not below 1000), as RFC 3339 requires. A UTC time always ends in "+00:00".
    return t.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened: who did what to which digest, when, with what details."""

    time: datetime
    actor: str
    action: str
    subject: str
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": EVENT_TYPE,
            "time": format_time(self.time),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "model": self.model,
            "details": self.details,
        }

    def entry(self) -> bytes:
        """The log entry: canonical JSON of the event."""
        return canonical_json(self.to_json())

    def encoded(self) -> tuple[bytes, bytes]:
        """(`entry()`, the canonical JSON of the details), encoding the details once, for writers that store both.

        Canonical JSON is context-free, so the entry holds the details' encoding verbatim. `"details":null`
        occurs in the encoded shell only as that key and value: inside a string, every quote is escaped.
        """
        details = canonical_json(self.details)
        shell = canonical_json({**self.to_json(), "details": None})
        return shell.replace(b'"details":null', b'"details":' + details, 1), details

    @classmethod
    def from_entry(cls, data: bytes) -> Event:
        """Decode a log entry. Raises InvalidInput if it is not a canonical aiprov event."""
        try:
            value = json.loads(data)
            if not isinstance(value, dict) or value.get("type") != EVENT_TYPE:
                raise InvalidInput("log entry is not an aiprov event")
            time = datetime.strptime(value["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            event = cls(
                time=time,
                actor=str(value["actor"]),
                action=str(value["action"]),
                subject=str(value["subject"]),
                model=value["model"],
                details=dict(value["details"]),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInput(f"malformed log entry: {e}") from e
        if event.entry() != data:
            raise InvalidInput("log entry is not in canonical form")
        return event
