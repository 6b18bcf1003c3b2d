"""Audits: an independent re-run of a claim or an evaluation from its digests, with a verdict, logged.

The auditor evaluates the exact bytes the claim names (its version digest, never its name), on data whose digest
and split must be the recorded ones, in a sandboxed worker, and compares every claimed metric: `confirmed` when
each measured value is within the tolerance of the claimed one, else `refuted`. The publisher's numbers are only
compared, never used. The auditor's library versions are recorded, with every difference from the publisher's
environment. Signed, an audit is an in-toto statement of predicate `AUDIT_PREDICATE`, kept in its log event.

What is pure (comparing, the statement, the environment report) is a function here, so the remote auditor
(`aiprov --server URL audit`) runs the same code on its own machine and only submits the result.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiprov.core import attestation
from aiprov.core.canonical import canonical_json
from aiprov.core.names import Ref
from aiprov.errors import Forbidden, InvalidInput, NotFound, VerificationError
from aiprov.ports import RegistryStore
from aiprov.records import AuditRecord, ClaimRecord, EvaluationRecord, VersionRecord
from aiprov.sandbox.models import SandboxedModels
from aiprov.services.datasets import DatasetService, TestSet, benchmark
from aiprov.services.evaluation import compute_metrics, installed_packages, sign_statement
from aiprov.signing import PrivateKey, key_fingerprint, open_bundle, public_key_from_pem, public_key_pem

AUDIT_PREDICATE = "https://aiprov.dev/audit/v1"

EVALUATION_TOLERANCE = 0.0
"""An audited evaluation must reproduce exactly: its metrics are measurements, not promises with a margin."""

VERDICTS = ("confirmed", "refuted")

MAX_ID = 2**62
"""Ids (log indices, evaluation ids) above this name nothing (and would overflow a database integer)."""


@dataclass(frozen=True, slots=True)
class AuditTarget:
    """What an audit checks: a claim, or an evaluation taken as a claim of its own metrics by its evaluator."""

    kind: str
    id: int
    leaf: int
    model: str
    version: int
    digest: str
    dataset: str
    dataset_digest: str
    task: str
    split: dict[str, Any]
    metrics: dict[str, float]
    tolerance: float
    packages: dict[str, str]
    publisher: str

    @classmethod
    def of_claim(cls, c: ClaimRecord) -> AuditTarget:
        return cls(
            "claim", c.id, c.id, c.model, c.version, c.digest, c.dataset, c.dataset_digest, c.task, c.split,
            c.metrics, c.tolerance, c.packages, c.publisher,
        )  # fmt: skip

    @classmethod
    def of_evaluation(cls, e: EvaluationRecord) -> AuditTarget:
        return cls(
            "evaluation", e.id, e.leaf_index, e.model, e.version, e.digest, e.dataset, e.dataset_digest, e.task,
            e.split, e.metrics, EVALUATION_TOLERANCE, e.packages, e.evaluator,
        )  # fmt: skip


def compare(claimed: Mapping[str, float], measured: Mapping[str, float], tolerance: float) -> tuple[str, list[Any]]:
    """The verdict and one row per claimed metric: `confirmed` iff every one was measured within `tolerance`."""
    rows: list[dict[str, Any]] = []
    for name in sorted(claimed):
        value = measured.get(name)
        delta = None if value is None else value - claimed[name]
        ok = delta is not None and abs(delta) <= tolerance
        rows.append({"metric": name, "claimed": claimed[name], "measured": value, "delta": delta, "ok": ok})
    return ("confirmed" if rows and all(r["ok"] for r in rows) else "refuted"), rows


def environment_mismatch(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per package whose version differs (or is missing on one side) between the two environments."""
    return [
        {"package": name, "recorded": recorded.get(name), "audit": now.get(name)}
        for name in sorted(set(recorded) | set(now))
        if recorded.get(name) != now.get(name)
    ]


def check_data(target: AuditTarget, data: TestSet) -> None:
    """Refuse to audit on other data than recorded. Raises VerificationError naming what differs."""
    if data.digest != target.dataset_digest:
        raise VerificationError(
            f"the dataset {target.dataset} here hashes to {data.digest}, not the recorded {target.dataset_digest}",
            hint="an audit runs on the recorded data only",
        )
    if data.split != target.split:
        raise VerificationError(f"the split of {target.dataset} here is {data.split}, not the recorded {target.split}")


def check_not_own(target: AuditTarget, auditor: str) -> None:
    """Raises Forbidden when `auditor` stands behind `target`: nobody audits their own claim or evaluation."""
    if auditor == target.publisher:
        raise Forbidden(f"{auditor} published {target.kind} {target.id}: an audit must come from someone else")


def check_version(target: AuditTarget, version: VersionRecord) -> None:
    if str(version.manifest.digest) != target.digest:
        raise VerificationError(f"the version found has digest {version.manifest.digest}, not {target.digest}")


def run(models: SandboxedModels, version: VersionRecord, data: TestSet) -> tuple[dict[str, float], float]:
    """The metrics of `version` on `data`, measured in a sandboxed worker, and the seconds it took."""
    start = time.perf_counter()
    prediction = models.predict(version, data.x, proba=data.task == "classification")
    duration = round(time.perf_counter() - start, 3)
    return compute_metrics(data.task, data.y, prediction), duration


def build(
    target: AuditTarget,
    metrics: dict[str, float],
    duration_s: float,
    *,
    auditor: str,
    packages: dict[str, str],
    now: datetime,
    key: PrivateKey | None,
) -> AuditRecord:
    """The audit of `target` given what was measured (id 0 until logged), signed with `key` when given."""
    verdict, differences = compare(target.metrics, metrics, target.tolerance)
    made = AuditRecord(
        id=0,
        target=target.kind,
        target_id=target.id,
        target_leaf=target.leaf,
        model=target.model,
        version=target.version,
        digest=target.digest,
        dataset=target.dataset,
        dataset_digest=target.dataset_digest,
        split=target.split,
        claimed=target.metrics,
        tolerance=target.tolerance,
        metrics=metrics,
        verdict=verdict,
        differences=differences,
        packages=packages,
        environment_mismatch=environment_mismatch(target.packages, packages),
        publisher=target.publisher,
        auditor=auditor,
        duration_s=duration_s,
        created_at=now,
    )
    if key is None:
        return made
    bundle = sign_statement(audit_statement(made), key).decode()
    pem = public_key_pem(key.public_key()).decode()
    return dataclasses.replace(made, attestation=bundle, key_fingerprint=key_fingerprint(key), public_key=pem)


def audit_statement(record: AuditRecord) -> dict[str, Any]:
    """The in-toto Statement v1 of an audit: the audited version as subject, the re-run and verdict as predicate."""
    document = record.to_json()
    predicate = {k: v for k, v in document.items() if k not in ("id", "attestation", "key_fingerprint", "public_key")}
    return attestation.version_statement(record.model, record.version, record.digest, AUDIT_PREDICATE, predicate)


def verify_audit(record: AuditRecord) -> None:
    """Check the record's attestation is its public key's signature over exactly this audit.

    Raises InvalidInput (no attestation or key, a malformed one), VerificationError (bad signature, or a statement
    of another audit or with other numbers).
    """
    if record.attestation is None or record.public_key is None:
        raise InvalidInput("a signed audit carries its attestation and the public key that verifies it")
    public_key = public_key_from_pem(record.public_key.encode())
    payload = open_bundle(record.attestation.encode(), public_key).envelope.payload
    if json.loads(payload) != json.loads(canonical_json(audit_statement(record))):
        raise VerificationError("the signed audit statement does not match the audit submitted with it")
    if record.key_fingerprint != key_fingerprint(public_key):
        raise VerificationError("the audit's key fingerprint is not that of the public key sent with it")


class AuditService:
    def __init__(
        self,
        db: RegistryStore,
        datasets: DatasetService,
        models: Callable[[], SandboxedModels],
        *,
        clock: Callable[[], datetime],
        actor: str,
        environment: Callable[[], dict[str, str]] = installed_packages,
    ) -> None:
        self.db = db
        self.datasets = datasets
        self._models = models
        self.clock = clock
        self.actor = actor
        self.environment = environment

    def target(self, claim_id: int | None = None, evaluation_id: int | None = None) -> AuditTarget:
        """The claim or evaluation to audit (exactly one). Raises InvalidInput, NotFound."""
        if (claim_id is None) == (evaluation_id is None):
            raise InvalidInput("audit one claim or one evaluation", hint="aiprov audit CLAIM_ID, or --eval ID")
        wanted = claim_id if claim_id is not None else evaluation_id
        if wanted is None or not 0 <= wanted <= MAX_ID:
            raise NotFound(f"no {'claim' if claim_id is not None else 'evaluation'} {wanted}")
        with self.db.unit() as u:
            if evaluation_id is not None:
                return AuditTarget.of_evaluation(u.evaluation(evaluation_id))
            assert claim_id is not None
            event = u.event_at(claim_id)
        if event is None or event.action != "claim":
            raise NotFound(f"no claim {claim_id}", hint="a claim's id is its log index")
        return AuditTarget.of_claim(ClaimRecord.from_event(claim_id, event))

    def audit(
        self,
        claim_id: int | None = None,
        *,
        evaluation_id: int | None = None,
        key: PrivateKey | None = None,
        actor: str | None = None,
    ) -> AuditRecord:
        """Re-run the claim (or evaluation) on this hub's copy of its bytes and data, compare, record the verdict.

        `actor` is the auditor (by default the hub's own actor).

        Raises InvalidInput, NotFound, Forbidden (the auditor published it), VerificationError (the data here is
        not the recorded data), IntegrityError, UnsafeModelError, ModelExecutionError, BackendError.
        """
        auditor = self.actor if actor is None else actor
        target = self.target(claim_id, evaluation_id)
        check_not_own(target, auditor)
        sklearn = target.dataset.startswith("sklearn:")
        data = benchmark(target.dataset) if sklearn else self.datasets.test_set(target.dataset)
        check_data(target, data)
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(target.digest))
            record = u.version_record(model, version)
        check_version(target, record)
        metrics, duration = run(self._models(), record, data)
        made = build(target, metrics, duration, auditor=auditor, packages=self.environment(), now=self.clock(), key=key)
        return self.record(made)

    def record(self, made: AuditRecord) -> AuditRecord:
        """Log an audit (built here, or submitted by a remote auditor); the returned record carries its id.

        The audit must be of a known target with the target's digests and claimed numbers, by someone other than
        its publisher, with a verdict that follows from its numbers; a signed one must verify with the key it carries.
        Raises InvalidInput, NotFound, Forbidden, VerificationError.
        """
        claim_id, evaluation_id = (made.target_id, None) if made.target == "claim" else (None, made.target_id)
        if made.target not in ("claim", "evaluation"):
            raise InvalidInput(f"an audit's target is a claim or an evaluation, not {made.target!r}")
        target = self.target(claim_id, evaluation_id)
        check_not_own(target, made.auditor)
        expected = build(
            target, made.metrics, made.duration_s, auditor=made.auditor, packages=made.packages,
            now=made.created_at, key=None,
        )  # fmt: skip
        unsigned = dataclasses.replace(made, attestation=None, key_fingerprint=None, public_key=None)
        if unsigned != expected:
            raise InvalidInput(f"the audit does not match {target.kind} {target.id} or its verdict does not follow")
        if made.attestation is not None or made.public_key is not None:
            verify_audit(made)
        with self.db.unit(write=True) as u:
            index = u.add_event(
                actor=made.auditor,
                action="audit",
                subject=made.digest,
                model=made.model,
                details=made.details(),
                now=made.created_at,
            )
        return dataclasses.replace(made, id=index)

    def get(self, audit_id: int) -> AuditRecord:
        """The audit at log index `audit_id`. Raises NotFound."""
        with self.db.unit() as u:
            event = u.event_at(audit_id) if audit_id >= 0 else None
        if event is None or event.action != "audit":
            raise NotFound(f"no audit {audit_id}")
        return audit_from_event(audit_id, event)

    def of_claim(self, claim_id: int) -> builtins.list[AuditRecord]:
        """Every audit of claim `claim_id`, oldest first. Raises NotFound."""
        claim = self.target(claim_id)
        with self.db.unit() as u:
            events = u.events(model=claim.model, subject=claim.digest, actions=["audit"], limit=10_000)
        return [
            audit_from_event(e.leaf_index or 0, e)
            for e in reversed(events)
            if e.details.get("target") == "claim" and e.details.get("claim_id") == claim_id
        ]


def audit_from_event(leaf_index: int, event: Any) -> AuditRecord:
    """The audit an `audit` event at `leaf_index` records."""
    d = event.details
    target = str(d.get("target"))
    target_id = d["claim_id"] if target == "claim" else d["evaluation_id"]
    return AuditRecord.from_json(
        {
            **d,
            "id": leaf_index,
            "model": event.model,
            "digest": event.subject,
            "auditor": event.actor,
            "created_at": event.time.isoformat(),
            "target_id": target_id,
            "target_leaf": target_id if target == "claim" else d["evaluation_leaf"],
            "attestation": None if d.get("attestation") is None else json.loads(d["attestation"]),
        }
    )
