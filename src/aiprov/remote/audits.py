"""Claims, audits and reputation against a server, trusting it for nothing the result depends on.

A remote audit fetches what the hub serves publicly (the claim, the version's manifest, each file by its digest,
the dataset's bytes), checks every digest here, evaluates here in this machine's sandbox, and only submits the
signed result. A claim is built and signed here too (the private key never travels). `from_log` reads the
server's tiles and proves them against a checkpoint signed by the log key this client pinned.
"""

from __future__ import annotations

import builtins
import hashlib
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiprov.core.names import ModelName, Ref
from aiprov.errors import IntegrityError, InvalidInput, Unauthorized
from aiprov.records import AuditRecord, ClaimRecord, DatasetRecord, EvaluationRecord, FeedbackRecord, ReputationRecord
from aiprov.remote.client import HubClient
from aiprov.remote.services import RemoteLog, RemoteRegistry, ServerPins

if TYPE_CHECKING:
    from aiprov import signing
    from aiprov.records import VersionRecord
    from aiprov.sandbox.models import SandboxedModels
    from aiprov.services.audits import AuditTarget
    from aiprov.services.datasets import TestSet


class Caller:
    """Who this client's token belongs to (asked once): the account claims and audits are made as."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self._name: str | None = None

    def name(self, doing: str) -> str:
        if self._name is None:
            user = self.client.json("GET", "/user").get("user")
            if not user:
                raise Unauthorized(f"{doing} needs an API token", hint="--token T or AIPROV_TOKEN")
            self._name = str(user)
        return self._name


class RemoteClaims:
    """`ClaimService` against a server: claims are built and signed here and checked again by the server."""

    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry
        self.client = registry.client
        self.caller = Caller(registry.client)

    def claim(
        self,
        ref: str,
        *,
        metrics: builtins.list[str],
        benchmark: str | None = None,
        dataset: str | None = None,
        tolerance: float = 0.005,
        key: signing.PrivateKey | None = None,
    ) -> ClaimRecord:
        from aiprov.services import datasets
        from aiprov.services.claims import build_claim, check_tolerance

        check_tolerance(tolerance)
        if (benchmark is None) == (dataset is None):
            raise InvalidInput("claim on one of a benchmark or a dataset", hint="--benchmark NAME or --dataset O/N")
        if benchmark is not None:
            data = datasets.benchmark(benchmark)
            spec = (data.name, data.digest, data.task, data.split)
        else:
            assert dataset is not None
            record = self.dataset(dataset)
            spec = (record.full_name, record.digest, record.task, datasets.whole_split(record))
        _, version = self.registry.show(ref)
        made = build_claim(
            version, *spec, metrics, tolerance, publisher=self.caller.name("claiming"), now=datetime.now(UTC), key=key
        )
        return ClaimRecord.from_json(self.client.json("POST", "/claims", json={"claim": made.to_json()}))

    def dataset(self, name: str) -> DatasetRecord:
        parsed = ModelName.parse(name)
        return DatasetRecord.from_json(self.client.json("GET", f"/datasets/{quote(parsed.owner)}/{quote(parsed.name)}"))

    def get(self, claim_id: int) -> ClaimRecord:
        return ClaimRecord.from_json(self.client.json("GET", f"/claims/{int(claim_id)}"))

    def of_version(self, ref: str) -> builtins.list[ClaimRecord]:
        Ref.parse(ref)
        return [ClaimRecord.from_json(c) for c in self.client.json("GET", "/claims", params={"ref": ref})]

    def rate(self, ref: str, stars: int) -> FeedbackRecord:
        from aiprov.services.claims import check_stars

        body = {"ref": ref, "stars": check_stars(stars)}
        return FeedbackRecord.from_json(self.client.json("POST", "/ratings", json=body))

    def flag(self, ref: str, reason: str) -> FeedbackRecord:
        from aiprov.services.claims import check_reason

        body = {"ref": ref, "reason": check_reason(reason)}
        return FeedbackRecord.from_json(self.client.json("POST", "/flags", json=body))


class RemoteAudits:
    """`AuditService` against a server: fetched by digest and checked here, evaluated here, the result submitted."""

    def __init__(self, claims: RemoteClaims, home: Path) -> None:
        self.claims = claims
        self.registry = claims.registry
        self.client = claims.client
        self.home = home

    def target(self, claim_id: int | None, evaluation_id: int | None) -> AuditTarget:
        from aiprov.services.audits import AuditTarget

        if (claim_id is None) == (evaluation_id is None):
            raise InvalidInput("audit one claim or one evaluation", hint="aiprov audit CLAIM_ID, or --eval ID")
        if claim_id is not None:
            return AuditTarget.of_claim(self.claims.get(claim_id))
        document = self.client.json("GET", f"/evaluations/{int(evaluation_id or 0)}")
        return AuditTarget.of_evaluation(EvaluationRecord.from_json(document))

    def audit(
        self, claim_id: int | None = None, *, evaluation_id: int | None = None, key: signing.PrivateKey | None = None
    ) -> AuditRecord:
        """Audit on this machine; raises as `AuditService.audit`, and IntegrityError for bytes that do not hash."""
        from aiprov.services import audits
        from aiprov.services.evaluation import installed_packages

        target = self.target(claim_id, evaluation_id)
        auditor = self.claims.caller.name("auditing")
        audits.check_not_own(target, auditor)
        data = self._data(target)
        audits.check_data(target, data)
        _, version = self.registry.show(target.digest)
        audits.check_version(target, version)
        scratch = Path(tempfile.mkdtemp(prefix="aiprov-audit-"))
        models = None
        try:
            models = self._sandbox(version, scratch)
            metrics, duration = audits.run(models, version, data)
        finally:
            if models is not None:
                models.close()
            shutil.rmtree(scratch, ignore_errors=True)
        made = audits.build(
            target, metrics, duration, auditor=auditor, packages=installed_packages(), now=datetime.now(UTC), key=key
        )
        return AuditRecord.from_json(self.client.json("POST", "/audits", json={"audit": made.to_json()}))

    def _data(self, target: AuditTarget) -> TestSet:
        from aiprov.services import datasets

        if target.dataset.startswith("sklearn:"):
            return datasets.benchmark(target.dataset)
        record = self.claims.dataset(target.dataset)
        if record.digest != target.dataset_digest:
            raise IntegrityError(f"the server's {record.full_name} is {record.digest}, not {target.dataset_digest}")
        data = self._blob(record.digest)
        return datasets.dataset_test_set(record, data)

    def _blob(self, digest: str) -> bytes:
        h = hashlib.sha256()
        parts = []
        with self.client.stream(f"/blobs/{digest}") as response:
            for chunk in response.iter_bytes(1 << 20):
                h.update(chunk)
                parts.append(chunk)
        if f"sha256:{h.hexdigest()}" != digest:
            raise IntegrityError(f"the server sent bytes hashing to sha256:{h.hexdigest()} for blob {digest}")
        return b"".join(parts)

    def _sandbox(self, version: VersionRecord, scratch: Path) -> SandboxedModels:
        """A sandbox on this machine over a scratch blob store holding the version's files, each hash-checked."""
        from aiprov.adapters.blob_local import LocalBlobStore
        from aiprov.config import load_settings
        from aiprov.sandbox import SandboxedModels, WorkerPool

        blobs = LocalBlobStore(scratch / "blobs")
        for entry in version.manifest.entries:
            writer = blobs.writer(read_back=True)
            with self.client.stream(f"/blobs/{entry.sha256}") as response:
                for chunk in response.iter_bytes(1 << 20):
                    writer.write(chunk)
            writer.commit(expected=entry.sha256)  # IntegrityError unless the bytes are the manifest's
        s = load_settings(self.home)
        pool = WorkerPool(1, s.worker_limits, sandbox=s.sandbox, private=[s.home, scratch / "blobs"])
        return SandboxedModels(blobs, pool)

    def get(self, audit_id: int) -> AuditRecord:
        return AuditRecord.from_json(self.client.json("GET", f"/audits/{int(audit_id)}"))

    def of_claim(self, claim_id: int) -> builtins.list[AuditRecord]:
        return [AuditRecord.from_json(a) for a in self.client.json("GET", f"/claims/{int(claim_id)}/audits")]


class RemoteReputation:
    """`ReputationService` against a server; `from_log` trusts only the pinned log key."""

    def __init__(self, client: HubClient, log: RemoteLog, pins: ServerPins) -> None:
        self.client = client
        self.log = log
        self.pins = pins

    def all(self) -> builtins.list[ReputationRecord]:
        return [ReputationRecord.from_json(r) for r in self.client.json("GET", "/reputation")]

    def of(self, account: str) -> ReputationRecord:
        return ReputationRecord.from_json(self.client.json("GET", f"/reputation/{quote(account, safe='')}"))

    def from_log(self, account: str | None = None) -> builtins.list[ReputationRecord]:
        from aiprov.services import reputation

        verifier, _ = self.pins.verifier(self.log)
        note = self._get("checkpoint").decode()
        trusted = reputation.read_trusted(self.pins.trusted_checkpoint_file)
        return reputation.recompute(note, verifier, self._get, account, trusted)

    def _get(self, path: str) -> bytes:
        """A tlog-tiles resource (`checkpoint`, `tile/...`) served at the server's root."""
        with self.client.stream(f"/{path}", prefix="") as response:
            return response.read()
