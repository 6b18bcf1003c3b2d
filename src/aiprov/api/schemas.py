"""The API's wire schemas (Pydantic), separate from the core's types; shapes mirror the CLI's `--json` output."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An RFC 9457 problem body (`application/problem+json`); extra members such as `hint` may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    hint: str | None = None


class FileOut(Wire):
    path: str
    size: int
    sha256: str = Field(description="Lowercase hex SHA-256 of the file's bytes.")
    cid_v0: str | None = Field(default=None, description="IPFS CID as `ipfs add` computes it (CIDv0).")
    cid_v1: str | None = Field(default=None, description="IPFS CID as `ipfs add --cid-version=1` computes it.")


class LineageOut(Wire):
    parents: list[str]
    datasets: list[str]
    code_revision: str | None
    params: dict[str, str]
    metadata: dict[str, Any]


class VersionOut(Wire):
    name: str = Field(description="OWNER/NAME")
    version: int
    digest: str = Field(description="The version's id: `sha256:<hex>` of its canonical manifest.")
    files: list[FileOut]
    total_size: int
    cid_v0: str | None = Field(default=None, description="IPFS CIDv0 of the file, or of the directory.")
    cid_v1: str | None = Field(default=None, description="IPFS CIDv1 (raw leaves) of the file, or of the directory.")
    author: str
    created_at: str
    aliases: list[str]
    single_file: bool
    lineage: LineageOut


class ModelOut(Wire):
    name: str
    owner: str
    description: str
    license: str | None
    tags: list[str]
    created_at: str
    versions: int
    latest_version: int | None
    digest: str | None
    author: str | None
    total_size: int | None


class EvaluationSummaryOut(Wire):
    id: int
    dataset: str
    dataset_digest: str
    split: dict[str, Any]
    metrics: dict[str, float]
    evaluator: str
    created_at: str
    leaf_index: int
    signed: bool


class EvaluationOut(EvaluationSummaryOut):
    model: str
    version: int
    digest: str
    task: str
    packages: dict[str, str]
    duration_s: float
    key_fingerprint: str | None
    attestation: dict[str, Any] | None


class JobOut(Wire):
    """A queued evaluation or reproduction (`aiprov job status ID --json`); see docs/api.md, "Jobs"."""

    id: int
    kind: Literal["evaluate", "reproduce"]
    state: Literal["queued", "running", "succeeded", "failed"]
    request: dict[str, Any]
    actor: str
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    result: dict[str, Any] | None
    """Once succeeded: `{"evaluation": …, "reused": bool}` or `{"reproduction": …}`."""
    error: dict[str, Any] | None
    """Once failed: the problem body (type, title, status, detail, code, hint)."""


class ReproductionOut(Wire):
    """`aiprov eval --reproduce ID --json`: a re-run of a recorded evaluation, compared with the record."""

    id: int
    model: str
    version: int
    digest: str
    dataset: str
    dataset_digest: str = Field(description="The digest of the data the re-run scored (it differs if the data did).")
    identical: bool = Field(description="True when every metric, the dataset digest and the split are the same.")
    recorded: dict[str, float]
    metrics: dict[str, float]
    differences: list[dict[str, Any]] = Field(description='`{"field", "recorded", "now"}` for each difference.')
    packages: dict[str, str] = Field(description="The packages the re-run used.")
    recorded_packages: dict[str, str]


class ClaimSummaryOut(Wire):
    id: int = Field(description="The claim's id: its log index.")
    dataset: str
    metrics: dict[str, float]
    tolerance: float
    publisher: str


class VersionDetailOut(VersionOut):
    """`aiprov show --json`: the version with its model's metadata, evaluations, claims and author's reputation."""

    description: str
    license: str | None
    tags: list[str]
    versions: int
    evaluations: list[EvaluationSummaryOut]
    claims: list[ClaimSummaryOut]
    author_reputation: int = Field(description="The author's reputation score (see docs/audits.md).")


class AliasIn(Wire):
    version: str = Field(
        description="The version the alias points at: a number, another alias (`@prod` or `prod`) or a digest.",
        min_length=1,
        max_length=200,
    )


class AliasOut(VersionOut):
    alias: str
    previous: int | None = Field(description="The version number the alias pointed at before, if any.")


class EvaluationIn(Wire):
    """Evaluate on exactly one of a scikit-learn benchmark (`iris`, `sklearn:digits`, …) or a registered dataset."""

    benchmark: str | None = Field(default=None, min_length=1, max_length=128)
    dataset: str | None = Field(default=None, min_length=1, max_length=193, description="OWNER/NAME")

    @model_validator(mode="after")
    def _exactly_one(self) -> EvaluationIn:
        if (self.benchmark is None) == (self.dataset is None):
            raise ValueError("give exactly one of benchmark or dataset")
        return self


class EventOut(Wire):
    id: int
    time: str
    actor: str
    action: str
    subject: str
    model: str | None
    details: dict[str, Any]
    leaf_index: int | None = Field(default=None, description="The event's log index (compare with `/log/…`).")


class CheckOut(Wire):
    check: str = Field(description="A stable check id: `bytes`, `log.inclusion`, `alias:prod`, `signature:1`, …")
    ok: bool
    detail: str
    key_fingerprint: str | None = None


class VerifyOut(Wire):
    name: str
    version: int
    digest: str
    ok: bool
    checks: list[CheckOut]


class EntryOut(Wire):
    index: int
    leaf_hash: str
    event: dict[str, Any]


class InclusionOut(Wire):
    index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]
    root: str


class ConsistencyOut(Wire):
    size1: int
    size2: int
    hashes: list[str]
    root1: str
    root2: str


class CallerOut(Wire):
    user: str | None = Field(description="None for an anonymous caller.")
    scopes: list[str]
    admin: bool


class UserIn(Wire):
    name: str = Field(min_length=1, max_length=64, description="The user's name, which is its namespace.")
    admin: bool = False
    scopes: list[str] = Field(default_factory=list, max_length=3, description="Default: read, write (+ admin).")


class TokenIn(Wire):
    scopes: list[str] = Field(default_factory=list, max_length=3)


class NewTokenOut(Wire):
    """A new token: `token` is shown this once and never again."""

    user: str
    token: str
    token_id: str
    scopes: list[str]
    admin: bool


class TokenOut(Wire):
    token_id: str
    user: str
    scopes: list[str]
    created_at: str
    revoked_at: str | None


class UserOut(Wire):
    name: str
    admin: bool
    created_at: str
    tokens: list[TokenOut]


class SignatureOut(Wire):
    key_fingerprint: str
    signer: str
    created_at: str
    bundle: str = Field(description="The OpenSSF model-signing bundle (Sigstore bundle JSON).")
    public_key: str = Field(description="PEM of the public key that verifies it.")


class RegistrationOut(Wire):
    leaf_index: int = Field(description="The log index of the event that registered the version.")
    event: dict[str, Any] = Field(description="The registry's copy of that event (compare it with the log's).")


class EvidenceOut(Wire):
    """What a client needs to verify a version itself: check the signatures, then prove the event in the log."""

    digest: str
    signatures: list[SignatureOut]
    registration: RegistrationOut
    history: list[int] = Field(
        default_factory=list,
        description="The log indices of the model's push and alias events: the entries the served rows rest on.",
    )
    formats: dict[str, str | None] = Field(
        default_factory=dict,
        description="Each file's format as the registry holds it (what `ls --format` filters on), by path.",
    )


class SignatureIn(Wire):
    """A bundle made by the author (the private key never leaves the author's machine) and its public key."""

    bundle: str = Field(min_length=2, max_length=1_000_000)
    public_key: str = Field(min_length=20, max_length=10_000, description="PEM")


class SignedOut(Wire):
    name: str
    version: int
    digest: str
    key_fingerprint: str
    recorded: bool = Field(description="False when this key had signed the version already.")


class PinOut(Wire):
    ref: str = Field(description="The version pinned, `owner/name@N`.")
    cid: str = Field(description="The root CID pinned.")
    via: str = Field(description="`kubo` (RPC API) or `pinning-service` (IPFS Pinning Service API).")
    endpoint: str
    status: str = Field(description="`pinned` once the endpoint says so.")
    request_id: str | None = Field(description="The pinning service's request id (none for Kubo).")


class DatasetIn(Wire):
    """Register an uploaded blob (`PUT /api/v1/blobs/...`) as a dataset."""

    name: str = Field(min_length=3, max_length=200, description="OWNER/NAME")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="The uploaded CSV or Parquet file's digest.")
    target: str = Field(min_length=1, max_length=256)
    task: str | None = Field(default=None, pattern=r"^(classification|regression)$")


class DatasetOut(Wire):
    name: str
    digest: str
    format: str
    target: str
    task: str
    rows: int
    features: list[str]
    size: int
    author: str
    created_at: str
    new: bool | None = None


class ClaimSubmit(Wire):
    """A claim built (and, when signed, signed) by its publisher: the `aiprov claim --json` document."""

    claim: dict[str, Any] = Field(
        description="The claim, as `aiprov claim --json` prints it (id ignored; a signed one with its public key)."
    )


class AuditSubmit(Wire):
    """An audit run by its auditor on its own machine: the `aiprov audit --json` document."""

    audit: dict[str, Any] = Field(
        description="The audit, as `aiprov audit --json` prints it (id ignored; a signed one with its public key)."
    )


class RatingIn(Wire):
    ref: str = Field(min_length=1, max_length=300, description="The version: OWNER/NAME[@N|@ALIAS] or a digest.")
    stars: int = Field(ge=1, le=5)


class FlagIn(Wire):
    ref: str = Field(min_length=1, max_length=300, description="The version: OWNER/NAME[@N|@ALIAS] or a digest.")
    reason: str = Field(min_length=1, max_length=500)


class StakeStepIn(Wire):
    """A mined staking transaction to log as the caller: the server reads it from the chain itself."""

    tx: str = Field(max_length=66, description="The transaction hash (0x and 64 hex digits).")
    claim_id: str | None = Field(
        default=None, max_length=128, description="For a `claim` transaction: the log claim id it stakes."
    )
    proof: str = Field(
        max_length=140,
        description="The sender's EIP-191 signature (0x…) of the step's proof message (docs/staking.md, Proofs).",
    )


class StakeVerdictIn(Wire):
    """An auditor's signed verdict to log (nothing is sent on chain)."""

    verdict: dict[str, Any] = Field(description="The verdict as `aiprov stake verdict --json` prints it.")
    claim_id: str | None = Field(default=None, max_length=128, description="The log claim id it judges, if known.")
    proof: str = Field(max_length=140, description="The signer's EIP-191 signature of the verdict's proof message.")
