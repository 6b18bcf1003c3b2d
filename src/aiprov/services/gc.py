"""Garbage collection of the blob store: blobs that no version or dataset holds, past a grace period.

A blob is published when its upload completes and referenced once a version (or dataset) is committed from it, so
a client that uploads and never commits leaves blobs behind; so does a push refused by the scanner after its bytes
were stored (its evidence lives in the quarantine folder, which is never collected). Partial uploads are swept by
the blob store itself after a week untouched.

The grace period protects an upload whose commit has not come yet: a blob younger than `older_than` is kept. Each
candidate is checked and removed inside the registry's write transaction; a push or commit checks its blobs are
still there inside its own, so a version never refers to a removed blob (the push fails instead and can be
repeated). A run is logged as a `gc` event: how many blobs, how many
bytes, and as its subject the digest of the canonical JSON list of the removed blobs' digests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiprov.core.canonical import canonical_json
from aiprov.core.digest import Digest
from aiprov.errors import InvalidInput
from aiprov.ports import BlobStore, RegistryStore

DEFAULT_GRACE_S = 24 * 3600


@dataclass
class GcReport:
    """What a collection removed (or would remove, on a dry run) and what it kept."""

    dry_run: bool
    older_than_s: float
    removed: list[tuple[Digest, int]] = field(default_factory=list)
    kept_in_use: int = 0
    kept_young: int = 0

    @property
    def removed_bytes(self) -> int:
        return sum(size for _, size in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "older_than_s": self.older_than_s,
            "removed": len(self.removed),
            "removed_bytes": self.removed_bytes,
            "kept_in_use": self.kept_in_use,
            "kept_young": self.kept_young,
            "blobs": [{"digest": str(d), "size": s} for d, s in self.removed],
        }


def parse_age(text: str) -> float:
    """Seconds in `30s`, `15m`, `24h`, `7d` (or plain seconds). Raises InvalidInput."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise InvalidInput(f"not an age: {text!r}", hint="e.g. 30m, 24h, 7d") from None
    if seconds < 0 or seconds != seconds:
        raise InvalidInput(f"not an age: {text!r}", hint="e.g. 30m, 24h, 7d")
    return seconds


class GcService:
    def __init__(self, db: RegistryStore, blobs: BlobStore, *, clock: Callable[[], datetime], actor: str) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self.actor = actor

    def collect(self, *, older_than_s: float = DEFAULT_GRACE_S, dry_run: bool = False) -> GcReport:
        """Remove every blob no version or dataset holds that is older than `older_than_s` seconds."""
        report = GcReport(dry_run, older_than_s)
        cutoff = time.time() - older_than_s
        with self.db.unit(write=not dry_run) as u:
            for digest, size, mtime in self.blobs.stored():
                if u.blob_in_use(digest.hex):
                    report.kept_in_use += 1
                elif mtime > cutoff:
                    report.kept_young += 1
                elif dry_run or self.blobs.delete(digest):
                    report.removed.append((digest, size))
            if report.removed and not dry_run:
                removed = canonical_json([str(d) for d, _ in report.removed])
                u.add_event(
                    actor=self.actor,
                    action="gc",
                    subject=str(Digest.of(removed)),  # names the exact list of removed blobs
                    model=None,
                    details={"removed": len(report.removed), "removed_bytes": report.removed_bytes},
                    now=self.clock(),
                )
        return report
