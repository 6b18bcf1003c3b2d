"""The hub interface: what the CLI and the Python API ask of a hub, local or remote.

Two classes satisfy `HubServices`: `config.Container` (a home on this machine) and `remote.RemoteContainer` (an
aiprov server, over its API). mypy checks both against these protocols (`tests/test_interface.py` holds the
assignments it checks, and asserts at run time that every member exists on both sides), so the two cannot drift.

What only a home can do (accounts, gc, init, serving, the chain, tile export, rescans, signed evaluations) is not
part of the shared interface: it is the explicit capability `HubServices.local(what)`, which gives the
`Container` or raises `NotOnServer`. There is no attribute fallback on either side.
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiprov import signing
    from aiprov.adapters.files import ProgressFactory
    from aiprov.config import Container
    from aiprov.core.events import Event
    from aiprov.core.note import Verifier
    from aiprov.ports import ChainReader
    from aiprov.records import (
        AuditRecord,
        ClaimRecord,
        DatasetRecord,
        EvaluationRecord,
        EventRecord,
        FeedbackRecord,
        JobRecord,
        ModelFilter,
        ModelRecord,
        Reproduction,
        ReputationRecord,
        VersionRecord,
    )
    from aiprov.sandbox import Prediction
    from aiprov.services.ipfs import CidReport, ExportResult, ImportResult, PinResult
    from aiprov.services.registry import PushRequest, PushResult
    from aiprov.services.signatures import SignResult
    from aiprov.services.staking import StakeService
    from aiprov.services.transparency import ConsistencyProof, InclusionProof
    from aiprov.services.verification import VerifyReport


class HubRegistry(Protocol):
    """Models and versions: `RegistryService` and `RemoteRegistry`."""

    def push(self, path: Path, request: PushRequest, progress: ProgressFactory | None = None) -> PushResult: ...
    def list(self, f: ModelFilter, sort: str = "name") -> builtins.list[ModelRecord]: ...
    def show(self, ref: str) -> tuple[ModelRecord, VersionRecord]: ...
    def versions(self, name: str) -> builtins.list[VersionRecord]: ...
    def usage(self, ref: str, limit: int = 1000) -> builtins.list[EventRecord]: ...
    def alias(self, ref: str, alias: str) -> tuple[VersionRecord, int | None]: ...
    def pull(
        self, ref: str, dest: Path, *, force: bool = False, progress: ProgressFactory | None = None
    ) -> VersionRecord: ...


class SignedNote(Protocol):
    @property
    def note(self) -> str:
        """The checkpoint as a C2SP signed note, exactly as signed."""
        ...


class HubLog(Protocol):
    """The transparency log's reads: `LogService` and `RemoteLog` (which checks each answer before returning it)."""

    def latest(self) -> SignedNote: ...
    def entry(self, index: int) -> tuple[bytes, bytes, Event]: ...
    def inclusion(self, index: int, size: int | None = None) -> InclusionProof: ...
    def consistency(self, size1: int, size2: int | None = None) -> ConsistencyProof: ...


class HubLogKey(Protocol):
    """The log's public key: the local `Signer` and the server's key as it serves it."""

    @property
    def verifier(self) -> Verifier: ...


class HubEvaluations(Protocol):
    """`EvaluationService` and `RemoteEvaluations`."""

    def evaluate(
        self,
        ref: str,
        *,
        benchmark: str | None = None,
        dataset: str | None = None,
        key: signing.PrivateKey | None = None,
    ) -> EvaluationRecord: ...
    def get(self, evaluation_id: int) -> EvaluationRecord: ...
    def of_version(self, ref: str) -> builtins.list[EvaluationRecord]: ...
    def reproduce(self, evaluation_id: int) -> Reproduction: ...


class HubJobs(Protocol):
    """Evaluations and reproductions that a hub may queue: `JobService` and `RemoteJobs`.

    Each answers the result when the hub ran it at once (a home, or a server without a queue), or a `JobRecord`
    when it was queued for `aiprov worker` (a hub with AIPROV_JOBS=queue); `get` reads a job again.
    """

    def evaluate(
        self, ref: str, *, benchmark: str | None = None, dataset: str | None = None
    ) -> EvaluationRecord | JobRecord: ...
    def reproduce(self, evaluation_id: int) -> Reproduction | JobRecord: ...
    def get(self, job_id: int) -> JobRecord: ...


class HubClaims(Protocol):
    """Claims, ratings and flags: `ClaimService` and `RemoteClaims` (which signs here: the key never travels)."""

    def claim(
        self,
        ref: str,
        *,
        metrics: builtins.list[str],
        benchmark: str | None = None,
        dataset: str | None = None,
        tolerance: float = ...,
        key: signing.PrivateKey | None = None,
    ) -> ClaimRecord: ...
    def get(self, claim_id: int) -> ClaimRecord: ...
    def of_version(self, ref: str) -> builtins.list[ClaimRecord]: ...
    def rate(self, ref: str, stars: int) -> FeedbackRecord: ...
    def flag(self, ref: str, reason: str) -> FeedbackRecord: ...


class HubAudits(Protocol):
    """`AuditService` and `RemoteAudits` (which re-runs on this machine and submits only the result)."""

    def audit(
        self, claim_id: int | None = None, *, evaluation_id: int | None = None, key: signing.PrivateKey | None = None
    ) -> AuditRecord: ...
    def get(self, audit_id: int) -> AuditRecord: ...
    def of_claim(self, claim_id: int) -> builtins.list[AuditRecord]: ...


class HubReputation(Protocol):
    """`ReputationService` and `RemoteReputation` (whose `from_log` reads the server's tiles, proven here)."""

    def all(self) -> builtins.list[ReputationRecord]: ...
    def of(self, account: str) -> ReputationRecord: ...
    def from_log(self, account: str | None = None) -> builtins.list[ReputationRecord]: ...


class HubDatasets(Protocol):
    """`DatasetService` and `RemoteDatasets`."""

    def add(self, path: Path, name: str, target: str, task: str | None = None) -> tuple[DatasetRecord, bool]: ...
    def get(self, name: str) -> DatasetRecord: ...
    def list(self) -> builtins.list[DatasetRecord]: ...


class HubSignatures(Protocol):
    """`SignatureService` and `RemoteSignatures` (which signs here: the private key never travels)."""

    def sign(self, ref: str, key: signing.PrivateKey) -> SignResult: ...


class HubVerification(Protocol):
    """`VerificationService` and `RemoteVerification`."""

    def verify(
        self,
        ref: str,
        *,
        path: Path | None = None,
        hf_snapshot: bool = False,
        bundle: bytes | None = None,
        public_key: signing.PublicKey | None = None,
        chain: ChainReader | None = None,
    ) -> VerifyReport: ...
    def rows(self, ref: str) -> VerifyReport: ...


class HubInference(Protocol):
    """Models run where the hub keeps them: `InferenceService` and `RemoteInference`.

    On a home, this machine's sandboxed workers; on a server, its workers over its API. `actor` is whom a home
    records the use for; a server records its token's user.
    """

    def load(self, ref: str) -> VersionRecord: ...
    def run(self, ref: str, rows: builtins.list[Any], *, actor: str, proba: bool) -> Prediction: ...


class HubIpfs(Protocol):
    """`IpfsService` and `RemoteIpfs`."""

    def of_ref(self, ref: str, version: int) -> CidReport: ...
    def export(self, ref: str, out: Path, version: int) -> ExportResult: ...
    def import_car(self, path: Path, request: PushRequest, file_name: str | None = None) -> ImportResult: ...
    def pin(self, ref: str, version: int) -> PinResult: ...


class HubServices(Protocol):
    """The declared hub interface the CLI and the Python API share: `Container` and `RemoteContainer`."""

    @property
    def registry(self) -> HubRegistry: ...
    @property
    def log(self) -> HubLog: ...
    @property
    def log_signer(self) -> HubLogKey: ...
    @property
    def evaluation(self) -> HubEvaluations: ...
    @property
    def jobs(self) -> HubJobs: ...
    @property
    def datasets(self) -> HubDatasets: ...
    @property
    def signatures(self) -> HubSignatures: ...
    @property
    def verification(self) -> HubVerification: ...
    @property
    def ipfs(self) -> HubIpfs: ...
    @property
    def claims(self) -> HubClaims: ...
    @property
    def audits(self) -> HubAudits: ...
    @property
    def reputation(self) -> HubReputation: ...
    @property
    def inference(self) -> HubInference: ...
    def staking(self, private_key: str | None = None, key_source: str | None = None) -> StakeService:
        """Stake on chain, sending with `private_key` (default AIPROV_CHAIN_PRIVATE_KEY) from this machine.

        The same service on both sides; only its ledger differs (the home's log, or the server's steps routes).
        """
        ...

    def local(self, what: str) -> Container:
        """The home's own container, for what only a home can do. Raises NotOnServer against a server."""
        ...

    def close(self) -> None: ...


def members(protocol: type[Any]) -> builtins.list[str]:
    """The names a protocol declares (its methods and properties), in definition order."""
    return [name for name in vars(protocol) if not name.startswith("_")]
