"""Claims, ratings and flags: what accounts state about versions, each a transparency-log event.

A claim names the version by its digest (not by name), the dataset by its digest and the split, the metrics the
publisher says the version achieves and the tolerance an audit allows. With a key it is also an in-toto statement
(predicate `CLAIM_PREDICATE`), signed like an evaluation, kept in the event so the log alone carries it. A claim's
id is its log index: anyone holding the log can find it.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from aiprov.core import attestation
from aiprov.core.canonical import canonical_json
from aiprov.core.modelindex import CardResult
from aiprov.core.names import Ref
from aiprov.errors import InvalidInput, NotFound, VerificationError
from aiprov.ports import RegistryStore
from aiprov.records import ClaimRecord, FeedbackRecord, VersionRecord
from aiprov.services.datasets import DatasetService, TestSet, benchmark
from aiprov.services.evaluation import CLASSIFICATION_METRICS, REGRESSION_METRICS, installed_packages, sign_statement
from aiprov.signing import PrivateKey, key_fingerprint, open_bundle, public_key_from_pem, public_key_pem

CLAIM_PREDICATE = "https://aiprov.dev/claim/v1"

DEFAULT_TOLERANCE = 0.005
MAX_TOLERANCE = 1.0
"""A tolerance is absolute, in the metric's own units, and 0 <= tolerance <= MAX_TOLERANCE."""

MAX_REASON = 500


def parse_metrics(pairs: builtins.list[str], task: str) -> dict[str, float]:
    """`METRIC=VALUE` pairs a `task` produces. Raises InvalidInput for an unknown metric, a repeat or a bad value."""
    allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    out: dict[str, float] = {}
    if not pairs:
        raise InvalidInput("a claim states at least one metric", hint="--metric accuracy=0.97")
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().lower()
        if not sep:
            raise InvalidInput(f"--metric {pair!r} is not METRIC=VALUE")
        if name not in allowed:
            raise InvalidInput(
                f"a {task} evaluation does not produce the metric {name!r}", hint=f"metrics: {', '.join(allowed)}"
            )
        if name in out:
            raise InvalidInput(f"the metric {name!r} is claimed twice")
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"{value!r} in --metric {pair!r} is not a number") from None
        if not math.isfinite(number):
            raise InvalidInput(f"{value!r} in --metric {pair!r} is not a finite number")
        out[name] = number
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class CardClaim:
    """What one model-index result of a card claims: on a built-in benchmark, or on a dataset of the hub."""

    result: CardResult
    benchmark: str | None
    dataset: str | None


def card_claims(card: str) -> builtins.list[CardClaim]:
    """The claims a model card's model-index states (docs/audits.md, "Claims from a model card").

    A result's dataset id names a built-in benchmark (`iris`, `sklearn:iris`) or else a dataset registered on the
    hub (`owner/name`). Raises InvalidInput for a malformed model-index.
    """
    from aiprov.core.modelindex import card_results
    from aiprov.services.datasets import benchmark_name

    out = []
    for r in card_results(card):
        try:
            out.append(CardClaim(r, benchmark_name(r.dataset), None))
        except InvalidInput:  # not a built-in benchmark: a dataset of the hub, or an unknown name the claim refuses
            out.append(CardClaim(r, None, r.dataset))
    return out


def check_tolerance(tolerance: float) -> float:
    """`tolerance` if 0 <= tolerance <= MAX_TOLERANCE. Raises InvalidInput otherwise."""
    if not math.isfinite(tolerance) or not 0 <= tolerance <= MAX_TOLERANCE:
        raise InvalidInput(f"tolerance {tolerance!r} is out of range", hint=f"0 <= tolerance <= {MAX_TOLERANCE:g}")
    return float(tolerance)


def check_stars(stars: int) -> int:
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        raise InvalidInput(f"stars must be an integer from 1 to 5, not {stars!r}")
    return stars


def check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise InvalidInput("a flag needs a reason", hint='--reason "what is wrong"')
    if len(text) > MAX_REASON or not text.isprintable():
        raise InvalidInput(f"a flag's reason is printable text of at most {MAX_REASON} characters")
    return text


def claim_statement(claim: Mapping[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1 of a claim (`ClaimRecord.to_json()` without id and attestation)."""
    return attestation.version_statement(
        claim["model"],
        claim["version"],
        claim["digest"],
        CLAIM_PREDICATE,
        {
            "dataset": {"name": claim["dataset"], "digest": claim["dataset_digest"]},
            "task": claim["task"],
            "split": claim["split"],
            "metrics": claim["metrics"],
            "tolerance": claim["tolerance"],
            "packages": claim["packages"],
            "publisher": claim["publisher"],
            "claimedAt": claim["created_at"],
        },
    )


def build_claim(
    version: VersionRecord,
    dataset: str,
    dataset_digest: str,
    task: str,
    split: dict[str, Any],
    metrics: builtins.list[str],
    tolerance: float,
    *,
    publisher: str,
    now: datetime,
    key: PrivateKey | None,
) -> ClaimRecord:
    """The claim (id 0 until logged) that `version` scores `metrics` on the data, with this machine's packages."""
    made = ClaimRecord(
        id=0,
        model=version.full_name,
        version=version.number,
        digest=str(version.manifest.digest),
        dataset=dataset,
        dataset_digest=dataset_digest,
        task=task,
        split=split,
        metrics=parse_metrics(metrics, task),
        tolerance=check_tolerance(tolerance),
        packages=installed_packages(),
        publisher=publisher,
        created_at=now,
    )
    if key is None:
        return made
    bundle = sign_statement(claim_statement(made.to_json()), key).decode()
    pem = public_key_pem(key.public_key()).decode()
    return dataclasses.replace(made, attestation=bundle, key_fingerprint=key_fingerprint(key), public_key=pem)


def verify_claim(made: ClaimRecord) -> None:
    """Check the claim's attestation is its public key's signature over exactly this claim.

    Raises InvalidInput (no key, a malformed key or bundle), VerificationError.
    """
    if made.attestation is None or made.public_key is None:
        raise InvalidInput("a signed claim carries its attestation and the public key that verifies it")
    public_key = public_key_from_pem(made.public_key.encode())
    payload = open_bundle(made.attestation.encode(), public_key).envelope.payload
    if json.loads(payload) != json.loads(canonical_json(claim_statement(made.to_json()))):
        raise VerificationError("the signed claim statement does not match the claim submitted with it")
    if made.key_fingerprint != key_fingerprint(public_key):
        raise VerificationError("the claim's key fingerprint is not that of the public key sent with it")


class ClaimService:
    def __init__(
        self, db: RegistryStore, datasets: DatasetService, *, clock: Callable[[], datetime], actor: str
    ) -> None:
        self.db = db
        self.datasets = datasets
        self.clock = clock
        self.actor = actor

    def test_set(self, benchmark_name: str | None, dataset: str | None) -> TestSet:
        """The data a claim is about. Raises InvalidInput (not exactly one of the two), NotFound."""
        if (benchmark_name is None) == (dataset is None):
            raise InvalidInput("claim on one of a benchmark or a dataset", hint="--benchmark NAME or --dataset O/N")
        if benchmark_name is not None:
            return benchmark(benchmark_name)
        assert dataset is not None
        return self.datasets.test_set(dataset)

    def claim(
        self,
        ref: str,
        *,
        metrics: builtins.list[str],
        benchmark: str | None = None,
        dataset: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        key: PrivateKey | None = None,
        actor: str | None = None,
    ) -> ClaimRecord:
        """Record that version `ref` scores `metrics` (`METRIC=VALUE`) on the data, within `tolerance`.

        `actor` is the publisher (by default the hub's own actor).

        Raises InvalidInput (a metric the data's task does not produce, a tolerance out of range, a bad choice of
        data), NotFound.
        """
        tolerance = check_tolerance(tolerance)
        data = self.test_set(benchmark, dataset)
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            record = u.version_record(model, version)
        made = build_claim(
            record, data.name, data.digest, data.task, data.split, metrics, tolerance,
            publisher=self.actor if actor is None else actor, now=self.clock(), key=key,
        )  # fmt: skip
        return self.record(made)

    def record(self, made: ClaimRecord) -> ClaimRecord:
        """Log a claim built here or by a remote publisher; the returned record carries its id (its log index).

        It must name a registered version by its digest, with the data's digest, task and split as this hub has
        them, valid metrics and tolerance; a signed one must verify with the public key it carries. Raises InvalidInput,
        NotFound, VerificationError.
        """
        check_tolerance(made.tolerance)
        name = made.dataset.removeprefix("sklearn:") if made.dataset.startswith("sklearn:") else None
        data = self.test_set(name, None if name is not None else made.dataset)
        if (data.digest, data.task, data.split) != (made.dataset_digest, made.task, made.split):
            raise InvalidInput(f"the claim's data is not {made.dataset} as this hub has it (digest, task or split)")
        parse_metrics([f"{k}={v!r}" for k, v in made.metrics.items()], made.task)
        if made.attestation is not None or made.public_key is not None:
            verify_claim(made)
        with self.db.unit(write=True) as u:
            _, version = u.resolve(Ref.parse(f"{made.model}@{made.version}"))
            if version.digest != made.digest:
                raise InvalidInput(f"{made.model}@{made.version} does not have digest {made.digest}")
            index = u.add_event(
                actor=made.publisher,
                action="claim",
                subject=made.digest,
                model=made.model,
                details=made.details(),
                now=made.created_at,
            )
        return dataclasses.replace(made, id=index)

    def get(self, claim_id: int) -> ClaimRecord:
        """The claim at log index `claim_id`. Raises NotFound."""
        with self.db.unit() as u:
            event = u.event_at(claim_id) if 0 <= claim_id <= 2**62 else None
        if event is None or event.action != "claim":
            raise NotFound(
                f"no claim {claim_id}",
                hint="a claim's id is its log index (`aiprov show REF` lists a version's claims)",
            )
        return ClaimRecord.from_event(claim_id, event)

    def of_version(self, ref: str) -> builtins.list[ClaimRecord]:
        """Every claim about version `ref`, oldest first. Raises NotFound, InvalidInput."""
        with self.db.unit() as u:
            model, version = u.resolve(Ref.parse(ref))
            events = u.events(model=model.full_name, subject=version.digest, actions=["claim"], limit=10_000)
        return [ClaimRecord.from_event(e.leaf_index or 0, e) for e in reversed(events)]

    def rate(self, ref: str, stars: int, *, actor: str | None = None) -> FeedbackRecord:
        """Rate version `ref` 1 to 5 stars as `actor`; an account's last rating of a version is the one that counts."""
        return self._feedback(ref, "rate", {"stars": check_stars(stars)}, actor or self.actor)

    def flag(self, ref: str, reason: str, *, actor: str | None = None) -> FeedbackRecord:
        """Flag version `ref` with a reason as `actor`. Raises InvalidInput (empty or overlong reason), NotFound."""
        return self._feedback(ref, "flag", {"reason": check_reason(reason)}, actor or self.actor)

    def _feedback(self, ref: str, kind: str, details: dict[str, Any], actor: str) -> FeedbackRecord:
        now = self.clock()
        with self.db.unit(write=True) as u:
            model, version = u.resolve(Ref.parse(ref))
            index = u.add_event(
                actor=actor,
                action=kind,
                subject=version.digest,
                model=model.full_name,
                details={"version": version.number, **details},
                now=now,
            )
        return FeedbackRecord(
            id=index,
            kind=kind,
            model=model.full_name,
            version=version.number,
            digest=version.digest,
            account=actor,
            created_at=now,
            stars=details.get("stars"),
            reason=details.get("reason"),
        )
