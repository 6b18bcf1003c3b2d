"""Ports: the typed interfaces services depend on. Adapters implement them; each has one contract test.

- `RegistryStore` / `RegistryUnit`: the registry database, one transaction at a time (`adapters.db.registry`,
  tested on SQLite and PostgreSQL by tests/test_registry.py and tests/test_migrations.py);
- `LogStore` / `LogUnit`: the transparency log's part of the same transactions (tests/test_log_store.py);
- `BlobStore` / `BlobWriter`: content-addressed bytes (local folder or S3; tests/blobs/test_blob_contract.py);
- `ChainReader`: anchored checkpoints and registrations on an EVM chain (tests/chain/).

A unit hands out model and version *handles* (`resolve`) that a service passes back in and reads only through
`ModelHandle` and `VersionHandle`; everything else leaves the database as a record of `aiprov.records`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiprov.core.digest import Digest
from aiprov.records import AnchoredCheckpoint, ChainRegistration

if TYPE_CHECKING:
    from aiprov.core.events import Event
    from aiprov.core.manifest import Manifest
    from aiprov.core.merkle import CompactRange, Node
    from aiprov.core.names import ModelName, Ref
    from aiprov.core.unixfs import BlockPlace
    from aiprov.records import (
        DatasetRecord,
        EvaluationRecord,
        EventRecord,
        IpfsCids,
        JobRecord,
        LfsGrant,
        Lineage,
        ModelFilter,
        ModelRecord,
        SignatureRecord,
        TokenGrant,
        TokenRecord,
        UserRecord,
        VersionRecord,
        XetToken,
        XetXorb,
    )


# the registry and the log --------------------------------------------------------------------------------------


class ModelHandle(Protocol):
    """A model as a unit hands it out: what services may read of it."""

    @property
    def id(self) -> int: ...
    @property
    def owner(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def full_name(self) -> str: ...


class VersionHandle(Protocol):
    """A version as a unit hands it out: what services may read of it."""

    @property
    def id(self) -> int: ...
    @property
    def model_id(self) -> int: ...
    @property
    def number(self) -> int: ...
    @property
    def digest(self) -> str:
        """The manifest digest, `sha256:<hex>`."""
        ...


class LogUnit(Protocol):
    """The transparency log inside one transaction: entries, Merkle nodes, tiles and signed checkpoints."""

    def log_size(self) -> int: ...
    def log_edge(self) -> CompactRange: ...
    def log_entry(self, index: int) -> tuple[bytes, bytes]:
        """(data, leaf hash) of entry `index`. Raises NotFound."""
        ...

    def log_nodes(self, wanted: Iterable[Node]) -> dict[Node, bytes]: ...
    def log_tile(self, level: int, index: int, width: int) -> bytes: ...
    def log_bundle(self, index: int, width: int) -> list[bytes]: ...
    def latest_checkpoint(self) -> tuple[int, str] | None: ...
    def add_checkpoint(self, size: int, root_hash: bytes, note: str, time: datetime) -> None: ...


class LogStore(Protocol):
    """Transactions over the log (the registry database: entries are appended with the state they record)."""

    def unit(self, write: bool = False, *, checkpoint: bool | None = None) -> AbstractContextManager[LogUnit]: ...


class RegistryUnit(LogUnit, Protocol):
    """The registry's reads and writes within one transaction; every write also appends its event to the log."""

    # models and versions
    def model_row(self, name: ModelName) -> ModelHandle | None: ...
    def require_model(self, name: ModelName) -> ModelHandle: ...
    def upsert_model(
        self, name: ModelName, description: str | None, license: str | None, tags: Sequence[str], now: datetime
    ) -> ModelHandle: ...
    def version_by_digest(self, model: ModelHandle, digest: str) -> VersionHandle | None: ...
    def versions_by_digest_prefix(self, model: ModelHandle, prefix: str, limit: int = 2) -> Sequence[VersionHandle]: ...
    def add_version(
        self,
        model: ModelHandle,
        manifest: Manifest,
        author: str,
        lineage: Lineage,
        now: datetime,
        single_file: bool,
        cids: IpfsCids | None = None,
        formats: Mapping[str, str] | None = None,
    ) -> VersionHandle:
        """`formats`: each file's detected format, by path (stored for the format filter)."""
        ...

    def resolve(self, ref: Ref) -> tuple[ModelHandle, VersionHandle]:
        """The model and version `ref` names. Raises NotFound, InvalidInput."""
        ...

    def set_alias(self, model: ModelHandle, alias: str, version: VersionHandle) -> int | None: ...
    def version_record(self, model: ModelHandle, version: VersionHandle) -> VersionRecord: ...
    def versions(self, model: ModelHandle, newest: int | None = None) -> list[VersionRecord]:
        """Oldest first; with `newest`, only that many of the latest."""
        ...

    def children(self, digest: str, limit: int = 100) -> list[tuple[str, int]]:
        """(model, number) of the versions naming `digest` as a parent, oldest first."""
        ...

    def model_record(self, model: ModelHandle) -> ModelRecord: ...
    def list_models(self, f: ModelFilter, limit: int | None = None) -> list[ModelRecord]: ...
    def page_models(
        self, f: ModelFilter, sort: str, offset: int, limit: int, *, scores: Mapping[str, int] | None = None
    ) -> tuple[int, list[ModelRecord]]:
        """How many models match `f`, and one page of them in the order `sort` (MODEL_SORTS, `metric:NAME`) names.

        `scores`: the accounts' reputations, which `sort="reputation"` ranks by.
        """
        ...

    def blob_in_use(self, sha256_hex: str) -> bool: ...
    def versions_sharing_blob(self, sha256_hex: str) -> int: ...
    # IPFS blocks and CIDs
    def add_block_places(self, places: Iterable[tuple[str, BlockPlace]]) -> None: ...
    def block_place(self, cid: str) -> tuple[str, BlockPlace] | None: ...
    def set_cids(self, version: VersionHandle, cids: IpfsCids) -> None: ...
    def by_cid(self, cid: str) -> Sequence[tuple[ModelHandle, VersionHandle, str | None]]: ...
    # signatures
    def add_signature(
        self, version: VersionHandle, bundle: str, public_key: str, fingerprint: str, signer: str, now: datetime
    ) -> bool: ...
    def signatures(self, version: VersionHandle) -> list[SignatureRecord]: ...
    def file_formats(self, version: VersionHandle) -> dict[str, str | None]:
        """Each file's format as the scanner detected it at push (`version_files.format`), by path."""
        ...

    # events
    def registration_event(self, model: ModelHandle, version: VersionHandle) -> tuple[int, Event]: ...
    def event_leaves(self, model: str, actions: Sequence[str]) -> list[int]: ...
    def event_at(self, leaf_index: int) -> EventRecord | None: ...
    def events_in_log_order(self, actions: Sequence[str], start: int = 0) -> list[EventRecord]: ...
    def add_event(
        self, *, actor: str, action: str, subject: str, model: str | None, details: dict[str, Any], now: datetime
    ) -> int:
        """Record an event and append it to the log in this transaction; its leaf index."""
        ...

    def add_events(self, events: Sequence[Event]) -> int: ...
    def events(
        self,
        *,
        model: str | None = None,
        subject: str | None = None,
        actor: str | None = None,
        actions: Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[EventRecord]: ...
    # accounts
    def user(self, name: str) -> UserRecord | None: ...
    def users(self) -> list[UserRecord]: ...
    def add_user(self, name: str, admin: bool, now: datetime) -> UserRecord:
        """Raises Conflict if the name is taken."""
        ...

    def add_token(
        self, user: str, token_id: str, token_hash: str, scopes: tuple[str, ...], now: datetime
    ) -> TokenRecord: ...
    def token(self, token_id: str) -> TokenRecord | None: ...
    def revoke_token(self, token_id: str, now: datetime) -> TokenRecord: ...
    def token_grant(self, token_hash: str) -> TokenGrant | None: ...
    # grants of the Hugging Face LFS batch API
    def add_lfs_grant(self, grant: LfsGrant, now: datetime) -> None: ...
    def lfs_grant(self, capability_hash: str) -> LfsGrant | None: ...
    def move_lfs_grant(self, capability_hash: str, from_state: str, to_state: str) -> bool:
        """Move the grant if it is in `from_state` (atomic: of two callers one wins); whether it was."""
        ...

    def lfs_grants_of(self, account: str, model: str, sha256: Digest) -> list[LfsGrant]: ...
    def prune_lfs_grants(self, now: datetime) -> int: ...
    # Xet write tokens and the xorbs sent with them
    def add_xet_token(self, token: XetToken, now: datetime) -> None: ...
    def xet_token(self, token_hash: str) -> XetToken | None: ...
    def add_xet_xorb(self, xorb: XetXorb, now: datetime) -> None: ...
    def xet_xorbs_of(self, account: str, model: str, xorb: str) -> list[XetXorb]: ...
    def prune_xet(self, now: datetime) -> int: ...
    # datasets and evaluations
    def dataset(self, full_name: str) -> DatasetRecord | None: ...
    def datasets(self) -> list[DatasetRecord]: ...
    def add_dataset(self, record: DatasetRecord, leaf_index: int) -> None: ...
    def add_evaluation(self, version: VersionHandle, record: EvaluationRecord) -> EvaluationRecord: ...
    def evaluation(self, evaluation_id: int) -> EvaluationRecord: ...
    def evaluations_of(self, model: ModelHandle, version: VersionHandle) -> list[EvaluationRecord]: ...
    def evaluations_of_model(self, model: ModelHandle) -> list[EvaluationRecord]: ...
    # jobs (evaluations and reproductions queued for `aiprov worker`)
    def add_job(self, kind: str, key: str, request: dict[str, Any], actor: str, now: datetime) -> JobRecord: ...
    def set_job_queue_id(self, job_id: int, queue_id: int) -> None: ...
    def job(self, job_id: int) -> JobRecord: ...
    def active_job(self, key: str) -> JobRecord | None: ...
    def start_job(self, job_id: int, now: datetime) -> JobRecord: ...
    def requeue_job(self, job_id: int) -> None: ...
    def finish_job(
        self, job_id: int, now: datetime, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None
    ) -> JobRecord: ...
    def driver_connection(self) -> Any: ...


class JobQueue(Protocol):
    """Where jobs wait for `aiprov worker`: procrastinate on PostgreSQL (`adapters.queue`)."""

    def defer(self, unit: RegistryUnit, job_id: int, lock: str) -> int:
        """Enqueue job `job_id` inside `unit`'s transaction (committed or rolled back with it); the queue's id.

        No two jobs with the same `lock` run at once. Raises BackendError.
        """
        ...


class RegistryStore(Protocol):
    """The registry database: transactions, committed when the block ends and rolled back if it raises."""

    def unit(self, write: bool = False, *, checkpoint: bool | None = None) -> AbstractContextManager[RegistryUnit]:
        """A transaction; only a `write` unit may change anything, and write units run one at a time."""
        ...


class EventAppender(Protocol):
    """Appends batches of events to the log on a connection of its own (the usage recorder's fast path)."""

    def append(self, events: Sequence[Event]) -> int:
        """Append `events` in one transaction; the first one's leaf index."""
        ...

    def close(self) -> None: ...


class EventStore(RegistryStore, Protocol):
    """The registry as the usage recorder needs it: transactions, and appenders with their own connections."""

    @property
    def dialect(self) -> str:
        """The database's SQLAlchemy dialect name: `sqlite` or `postgresql`."""
        ...

    def event_writer(self, *, busy_timeout_ms: int | None = None) -> EventAppender: ...


# blobs ---------------------------------------------------------------------------------------------------------


class ChainReader(Protocol):
    """What `verify --chain` reads from an EVM chain: anchored checkpoints (from its events) and registrations."""

    @property
    def description(self) -> str:
        """Which contract on which chain, for reports (e.g. `registry 0xAb… on chain 11155111`)."""
        ...

    def anchors(self, origin: str) -> list[AnchoredCheckpoint]:
        """Every checkpoint of log `origin` anchored on chain, oldest first. Raises ChainError."""
        ...

    def registration(self, digest: bytes) -> ChainRegistration | None:
        """The on-chain registration of a version digest (32 bytes), or None. Raises ChainError."""
        ...


class BlobWriter(Protocol):
    """Receives a blob's bytes, hashing them as they come; nothing is visible until `commit`."""

    def write(self, data: bytes | memoryview) -> object: ...

    def staged(self) -> Path:
        """Finish writing; return a local file that holds exactly the bytes written, readable until commit/abort.

        Nothing is visible in the store yet: push scans this file, then commits or aborts. Raises BackendError.
        """
        ...

    def commit(self, expected: Digest | None = None) -> tuple[Digest, bool]:
        """Publish the blob under its digest; return (digest, stored_new).

        Raises IntegrityError (and publishes nothing) if `expected` is given and the bytes do not match it.
        """
        ...

    def abort(self) -> None: ...


class ResumableWriter(BlobWriter, Protocol):
    """A blob writer whose bytes survive a cut: `suspend` keeps them under a key so a later writer continues.

    `abort` discards the partial bytes; `commit` publishes them exactly as `BlobWriter.commit` does.
    """

    @property
    def offset(self) -> int:
        """How many bytes have been received so far, including those of earlier, suspended writers."""
        ...

    def suspend(self) -> None:
        """Stop writing and keep the bytes received so far for a writer opened later with the same key."""
        ...


class BlobStore(Protocol):
    """Content-addressed storage: a blob is stored once, under the SHA-256 of its bytes."""

    def exists(self, digest: Digest) -> bool: ...

    def writer(self, *, read_back: bool = False) -> BlobWriter:
        """A writer for a new blob; `read_back`: its bytes are read again soon (push scans its staged blob)."""
        ...

    def read(self, digest: Digest) -> Iterator[bytes]:
        """Yield the blob's bytes; raise IntegrityError at the end if they do not match `digest`.

        Raises NotFound if the blob is missing. Callers must not trust what they received until the iterator is
        exhausted.
        """
        ...

    def read_range(self, digest: Digest, offset: int, length: int) -> Iterator[bytes]:
        """Yield `length` bytes of the blob from `offset`, NOT checked against the blob's digest.

        The caller checks them another way (an IPFS block against its CID). Raises NotFound, BackendError,
        InvalidInput (past the end).
        """
        ...

    def size(self, digest: Digest) -> int: ...

    def resumable(self, key: str, offset: int | None = None) -> ResumableWriter:
        """A writer that continues the partial upload `key` (letters, digits, `-`, `_`) at `offset`.

        `offset` None continues after every byte kept; 0 starts over; a smaller offset drops the bytes after it.
        Raises Busy (a Conflict) at once if another writer holds the key, Conflict if `offset` is beyond the
        bytes kept, BackendError.
        """
        ...

    def partial_size(self, key: str) -> int:
        """How many bytes the partial upload `key` holds (0 when there is none)."""
        ...

    def materialize(self, digest: Digest, target: Path) -> None:
        """Make the blob readable as the new file `target`: a hard link when possible, else a verified copy.

        Raises NotFound if the blob is missing, IntegrityError if a copy does not match, BackendError.
        """
        ...

    def stored(self) -> Iterator[tuple[Digest, int, float]]:
        """Every stored blob as (digest, size in bytes, modification time as a POSIX timestamp)."""
        ...

    def delete(self, digest: Digest) -> bool:
        """Remove a blob nothing refers to (garbage collection); False if it was not there. Raises BackendError."""
        ...
