"""What a model's web page shows, read in one transaction: a consistent snapshot at the cost of one unit.

The page used to ask six services in turn (evidence, versions, evaluations, usage, events, each parent), each its
own transaction; under a concurrent push they could even disagree. Here they are one read unit.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiprov.core.names import Ref
from aiprov.errors import AiprovError
from aiprov.ports import RegistryStore
from aiprov.records import EvaluationRecord, EventRecord, VersionRecord
from aiprov.services.usage import USAGE_ACTIONS
from aiprov.services.verification import Evidence, evidence_in


@dataclass(frozen=True, slots=True)
class ModelPageData:
    """A version and what its page shows around it, all read at one moment."""

    evidence: Evidence
    versions: list[VersionRecord]
    """The newest versions of the model (as many as asked for), oldest first."""
    evaluations: list[EvaluationRecord]
    """Every evaluation of every version of the model, by version."""
    usage: list[EventRecord]
    """The model's usage events (downloads, inferences), newest first."""
    events: list[EventRecord]
    """The model's newest events of any kind."""
    parents: list[tuple[str, VersionRecord | None]]
    """Each parent digest, with the version it is on this hub (None: registered elsewhere, or ambiguous)."""
    children: list[tuple[str, int]]
    """(model, number) of the versions made from this one."""


class ModelPages:
    """Reads a model page's data (`gather`) from the registry."""

    def __init__(self, db: RegistryStore) -> None:
        self.db = db

    def gather(self, ref: str, *, versions: int, events: int, usage: int) -> ModelPageData:
        """The page of the version `ref` (`versions`, `events`, `usage`: how many of each to read at most).

        Raises NotFound, InvalidInput (a malformed reference).
        """
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            evidence = evidence_in(u, model, version)
            parents: list[tuple[str, VersionRecord | None]] = []
            for digest in evidence.record.lineage.parents:
                try:
                    parents.append((digest, u.version_record(*u.resolve(Ref.parse(digest)))))
                except AiprovError:  # a parent registered elsewhere, or a digest several models share
                    parents.append((digest, None))
            return ModelPageData(
                evidence=evidence,
                versions=u.versions(model, versions),
                evaluations=u.evaluations_of_model(model),
                usage=u.events(model=model.full_name, actions=USAGE_ACTIONS, limit=usage),
                events=u.events(model=model.full_name, limit=events),
                parents=parents,
                children=u.children(version.digest),
            )
