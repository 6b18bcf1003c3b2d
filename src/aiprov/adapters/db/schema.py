"""The registry's tables (SQLAlchemy 2 declarative). Changes go through an Alembic migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_models_owner_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    full_name: Mapped[str] = mapped_column(String(193), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    license: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    tags: Mapped[list[TagRow]] = relationship(cascade="all, delete-orphan", lazy="select")


class TagRow(Base):
    __tablename__ = "model_tags"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
        UniqueConstraint("model_id", "digest", name="uq_versions_model_digest"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    number: Mapped[int]
    digest: Mapped[str] = mapped_column(String(71), index=True)
    manifest: Mapped[str] = mapped_column(Text)
    total_size: Mapped[int] = mapped_column(BigInteger)
    file_count: Mapped[int]
    single_file: Mapped[bool]
    """Pushed as one file rather than a directory (signatures name the model differently)."""
    author: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime]
    code_revision: Mapped[str | None] = mapped_column(String(256))
    lineage: Mapped[dict[str, Any]]
    cid_v0: Mapped[str | None] = mapped_column(String(64), index=True)
    """The IPFS CID `ipfs add` (Kubo's default, CIDv0) gives the model: the file's, or the directory's."""
    cid_v1: Mapped[str | None] = mapped_column(String(64), index=True)
    """The same with `ipfs add --cid-version=1` (raw leaves, base32). Both None until computed (rows older than
    0004, or pushed with AIPROV_IPFS_CIDS=false)."""


class VersionFileRow(Base):
    """One row per file, so blobs shared between versions can be found without parsing manifests."""

    __tablename__ = "version_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    cid_v0: Mapped[str | None] = mapped_column(String(64), index=True)
    """The file's IPFS CIDs (Kubo's CIDv0 and `--cid-version=1`); None until computed (rows older than 0004)."""
    cid_v1: Mapped[str | None] = mapped_column(String(64), index=True)
    format: Mapped[str | None] = mapped_column(String(32), index=True)
    """The format the scanner detected in the bytes (`safetensors`, `onnx`, `pickle`, ...); None for rows older
    than 0006. The push event's `file_scans` records the same."""


class IpfsBlockRow(Base):
    """Where a block of a stored file's UnixFS DAG comes from, so the gateway can serve any block by its CID.

    The block is rebuilt from `length` bytes at `offset` of the blob, as the node `depth` levels above the leaves
    (0: a leaf). One row per CID: identical blocks (of other files or versions) are the same bytes.
    """

    __tablename__ = "ipfs_blocks"

    cid: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    offset: Mapped[int] = mapped_column(BigInteger)
    length: Mapped[int] = mapped_column(BigInteger)
    depth: Mapped[int] = mapped_column(SmallInteger)


class ParentRow(Base):
    __tablename__ = "version_parents"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    parent_digest: Mapped[str] = mapped_column(String(71), primary_key=True, index=True)


class AliasRow(Base):
    __tablename__ = "aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))


class EventRow(Base):
    """The append-only usage and change log: rows are inserted, never updated or deleted."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_model_id", "model", "id"), Index("ix_events_action", "action", "leaf_index"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(71), index=True)
    model: Mapped[str | None] = mapped_column(String(193))
    details: Mapped[dict[str, Any]]
    leaf_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    """Where the event's canonical JSON sits in the transparency log (its leaf index)."""


class SignatureRow(Base):
    """A model-signing bundle recorded for a version, with the public key that verifies it."""

    __tablename__ = "signatures"
    __table_args__ = (UniqueConstraint("version_id", "key_fingerprint", name="uq_signatures_version_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    bundle: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    signer: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class DatasetRow(Base):
    """A user dataset (CSV or Parquet) registered by the digest of its bytes, which are one blob."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_datasets_owner_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    full_name: Mapped[str] = mapped_column(String(193), unique=True)
    digest: Mapped[str] = mapped_column(String(71), index=True)
    format: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(256))
    task: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(BigInteger)
    features: Mapped[list[str]] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(BigInteger)
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    leaf_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    """The log leaf of the event that registered it."""


class EvaluationRow(Base):
    """A model version's metrics on a dataset and split; recorded once, with the log event that announced it."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    model_digest: Mapped[str] = mapped_column(String(71), index=True)
    dataset: Mapped[str] = mapped_column(String(193))
    """`sklearn:<benchmark>` or the OWNER/NAME of a user dataset."""
    dataset_digest: Mapped[str] = mapped_column(String(71))
    task: Mapped[str] = mapped_column(String(16))
    split: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    packages: Mapped[dict[str, Any]]
    duration_s: Mapped[float] = mapped_column(Float)
    evaluator: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    attestation: Mapped[str | None] = mapped_column(Text)
    """The signed in-toto statement (a Sigstore bundle with a DSSE envelope), when the evaluator signed it."""
    key_fingerprint: Mapped[str | None] = mapped_column(String(64))
    leaf_index: Mapped[int] = mapped_column(BigInteger, unique=True)


class EvaluationMetricRow(Base):
    """One metric of an evaluation, as a row, so listings filter on metrics with an index, on any database."""

    __tablename__ = "evaluation_metrics"
    __table_args__ = (Index("ix_evaluation_metrics_name_value", "name", "value"),)

    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class UserRow(Base):
    """An account of the API: its name is the namespace (`name/*`) it may write under."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool]
    created_at: Mapped[datetime]


class TokenRow(Base):
    """An API token of a user, stored only as the SHA-256 of the token; `token_id` is the public part."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_id: Mapped[str] = mapped_column(String(16), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(64))
    """Comma-separated, sorted: `read`, `write`, `admin`."""
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class HfLfsUploadRow(Base):
    """A grant of the Hub's LFS batch API: `account` may put the object `sha256` into `model` until `expires_at`.

    `capability_hash` is the SHA-256 of the upload URL's secret id (None when the object was stored already and
    no upload is needed); `state` is `pending`, `uploading` (a PUT holds it), `uploaded` or `stored`.
    """

    __tablename__ = "hf_lfs_uploads"
    __table_args__ = (Index("ix_hf_lfs_uploads_grant", "account", "model", "sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    capability_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    account: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(193))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class HfXetTokenRow(Base):
    """A Xet write token: `account` may send xorbs and shards for `model` until `expires_at`.

    `token_hash` is the SHA-256 of the random token the client sends; the token itself is never stored.
    """

    __tablename__ = "hf_xet_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(193))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class HfXetXorbRow(Base):
    """A xorb `account` sent for `model`: its Xet hash (`xorb`) and the blob (`sha256`, `size`) holding its bytes."""

    __tablename__ = "hf_xet_xorbs"
    __table_args__ = (Index("ix_hf_xet_xorbs_owner", "account", "model", "xorb"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(193))
    xorb: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


# The transparency log (RFC 9162), stored as the C2SP tlog-tiles it serves. Written only through
# adapters/db/log.py, inside the transaction of the state change each entry records.


class LogTileRow(Base):
    """A C2SP tlog-tiles hash tile: up to 256 hashes of node level 8 * `level`, concatenated.

    Level 0 tiles hold the leaf hashes. The rightmost tile of a level is partial and grows in place; every other
    tile is full and never changes. Nodes between tile levels are recomputed from a tile when a proof needs them.
    """

    __tablename__ = "log_tiles"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy's declarative convention

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LogBundleRow(Base):
    """A C2SP tlog-tiles entry bundle: entries 256 * idx … (up to 256), each with a big-endian uint16 length."""

    __tablename__ = "log_bundles"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class LogStateRow(Base):
    """One row: the tree size, its right edge (compact range), and the log's verifier key."""

    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    edge: Mapped[bytes] = mapped_column(LargeBinary)
    verifier_key: Mapped[str | None] = mapped_column(Text)


class LogCheckpointRow(Base):
    """Every signed checkpoint the log issued, by tree size."""

    __tablename__ = "log_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    time: Mapped[datetime]


class JobRow(Base):
    """An evaluation or reproduction asked of the hub's workers (`aiprov worker`), and how it ended.

    The queue itself is procrastinate's (`procrastinate_jobs`, `queue_id` there); this row is what aiprov answers
    about the job and what it reuses: `key` names the work (model version digest, dataset digest, split), so one
    active job per key runs and a finished identical evaluation is found again.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """`evaluate` or `reproduce`."""
    key: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    """queued, running, succeeded or failed."""
    request: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(128))
    queue_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The problem body (RFC 9457 fields and aiprov's `code`) of a failed job."""
