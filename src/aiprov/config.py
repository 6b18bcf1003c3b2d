"""Settings (environment `AIPROV_*`) and the container that wires ports to adapters, in one place."""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiprov.errors import Conflict, IntegrityError, InvalidInput, NotFound
from aiprov.extras import missing

if TYPE_CHECKING:
    from aiprov.adapters.backup import BackupReport
    from aiprov.adapters.db.registry import SqlRegistry, SqlRegistryUnit
    from aiprov.adapters.queue import ProcrastinateQueue
    from aiprov.core.note import Signer, Verifier
    from aiprov.ports import BlobStore
    from aiprov.sandbox import SandboxedModels, WorkerPool
    from aiprov.sandbox.spec import Limits
    from aiprov.scanning.limits import ScanLimits
    from aiprov.services.accounts import AccountService
    from aiprov.services.anchoring import AnchorService, ChainConfig
    from aiprov.services.audits import AuditService
    from aiprov.services.claims import ClaimService
    from aiprov.services.datasets import DatasetService
    from aiprov.services.evaluation import EvaluationService
    from aiprov.services.gc import GcService
    from aiprov.services.inference import InferenceService
    from aiprov.services.ipfs import IpfsService
    from aiprov.services.jobs import JobService
    from aiprov.services.model_page import ModelPages
    from aiprov.services.registry import RegistryService
    from aiprov.services.reputation import ReputationService
    from aiprov.services.signatures import SignatureService
    from aiprov.services.staking import StakeRecorder, StakeService
    from aiprov.services.transparency import LogService
    from aiprov.services.usage import UsageRecorder
    from aiprov.services.verification import VerificationService


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


class Settings(BaseSettings):
    """Configuration; every field can be set as `AIPROV_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AIPROV_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".aiprov")
    database_url: str | None = None
    """SQLAlchemy URL; default `sqlite:///<home>/registry.db`. PostgreSQL: postgresql://user@host/db."""
    blobs: str | None = None
    """Where blobs are stored: default the folder `<home>/blobs`; `s3://bucket/prefix` for an S3 store, reached
    with the standard AWS settings (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)."""
    actor: str = Field(default_factory=_default_actor)
    """Who is recorded as the author of pushes and the actor of events."""
    log_origin: str | None = None
    """The log's name in its checkpoints (the first line); used when `aiprov init` makes the log key."""
    log_verifier_key: str | None = None
    """The log verifier key this client trusts (`name+hexid+base64`); default `<home>/log.pub`."""
    log_key_file: Path | None = None
    """The log's Ed25519 signer key (note format); default `<home>/log.key`. Share it between machines that
    serve one PostgreSQL registry."""
    anonymous_reads: bool = True
    """API: whether requests without a token may read (list, show, download, log). Writes always need one."""
    max_body_mb: int = Field(default=16, ge=1)
    """API: the largest request body accepted, in MiB (413 beyond); streamed blob uploads have their own limit."""
    max_blob_mb: int = Field(default=64 * 1024, ge=1)
    """API: the largest blob one streamed upload (`PUT /api/v1/blobs/...`) may hold, in MiB (413 beyond)."""
    hf_lfs_ttl_s: float = Field(default=86_400.0, gt=0)
    """API: how long an upload URL of the Hugging Face LFS batch API stays good, in seconds: its PUT must begin,
    and the commit naming its object must come, within this time of the batch request."""
    hf_xet_token_ttl_s: float = Field(default=3_600.0, gt=0)
    """API: how long a Xet write token stays good, in seconds (huggingface_hub asks for a new one before this)."""
    workers: int = Field(default=2, ge=1)
    """Worker processes that load and run models (evaluation, inference); never the calling process."""
    worker_memory_mb: int = Field(default=2048, ge=512)
    """Address-space limit of each worker, in MiB."""
    worker_timeout_s: float = Field(default=300.0, gt=0)
    """How long a worker may take to load and run a model for one request (wall clock; CPU time likewise)."""
    sandbox: Literal["strict", "best-effort", "off"] = "best-effort"
    """How workers are confined (clean environment, network and IPC namespaces, Landlock, no_new_privs, seccomp):
    `strict` refuses to run any model when one protection is missing on this machine, `best-effort` runs and logs
    what is missing, `off` (for debugging a model the sandbox breaks) keeps only the clean environment and the
    resource limits. `aiprov doctor` shows each protection."""
    usage_batch_size: int = Field(default=512, ge=1, le=65_536)
    """API: the most usage events (inference, download) committed to the log in one transaction. A request is
    answered once its event is committed; the events that arrive during one commit share the next (group
    commit), and each batch signs a checkpoint."""
    header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """API: seconds a client has to send a request's head (request line and headers), from when the connection
    opens or the first byte of a further request on it arrives; past it the connection is closed (slowloris)."""
    token_cache_s: float = Field(default=5.0, ge=0, le=300)
    """API: how long a checked token is trusted without asking the database again; a revoked token is refused
    within this many seconds on every server process (0: every request asks the database)."""
    chain_rpc: str | None = None
    """EVM JSON-RPC URL for anchors and on-chain registrations (anvil, Sepolia, Polygon Amoy, a private chain)."""
    chain_contract: str | None = None
    """The AiprovRegistry address; default: the latest one `aiprov chain deploy` recorded in this hub."""
    stake_contract: str | None = None
    """The AiprovStaking address; default: the one the latest `aiprov chain deploy` recorded in this hub."""
    chain_private_key: SecretStr | None = None
    """Hex private key that signs chain transactions (or `--key-file`); never logged or printed."""
    chain_id: int | None = Field(default=None, ge=1)
    """The chain id to expect when this hub recorded no deployment of the contract (a verifier elsewhere)."""
    chain_from_block: int | None = Field(default=None, ge=0)
    """First block to search for anchors; default: the recorded deployment's block, else 0."""
    chain_receipt_timeout_s: float = Field(default=120.0, gt=0)
    """How long to wait for a transaction to be mined before sending it again with higher fees."""
    scan_max_ratio: int = Field(default=100, ge=1)
    """Scanning: a file may decompress (gzip, bz2, lzma/xz, zlib, deflated zip members, at any depth) to this
    many times its own size beyond `scan_ratio_allowance_mb`; past it the file is refused as unsafe."""
    scan_ratio_allowance_mb: int = Field(default=8, ge=0)
    """Scanning: MiB any file may decompress to whatever its ratio (small archives of text compress well)."""
    scan_max_decompressed_mb: int = Field(default=4096, ge=1)
    """Scanning: the most one file may decompress to, in MiB, whatever its size."""
    scan_max_seconds: float = Field(default=30.0, gt=0)
    """Scanning: how long the scan of one file may take (wall clock) before the file is refused as unsafe."""
    ipfs_cids: bool = True
    """Whether push records each file's and version's IPFS CIDs (computed in the same read, on another core)."""
    ipfs_api: str | None = None
    """A Kubo RPC API (e.g. http://127.0.0.1:5001) that `aiprov ipfs pin` imports CARs into."""
    ipfs_pinning_url: str | None = None
    """An IPFS Pinning Service API endpoint (e.g. https://api.pinata.cloud/psa) for `aiprov ipfs pin`."""
    ipfs_pinning_token: str | None = None
    """The bearer token of the pinning service."""
    jobs: Literal["inline", "queue"] = "inline"
    """Where evaluations and reproductions asked of the API run: `inline`, in the server's own workers while the
    request waits (the embedded default); `queue`, as jobs of a PostgreSQL queue (procrastinate) that `aiprov
    worker` processes run on any machine with the same database and blob settings (the API answers 202)."""
    jobs_stall_timeout_s: float = Field(default=30.0, ge=0.5, le=3600)
    """Jobs: a worker that sent no heartbeat for this many seconds is taken as dead, and its running jobs are put
    back in the queue for another worker (workers beat every quarter of it)."""
    jobs_attempts: int = Field(default=3, ge=1, le=100)
    """Jobs: how many times a job is tried in all when it fails for a reason that may pass (a database or blob
    store down, a worker killed); a job whose request is at fault (bad data, a model that raises) fails at once."""
    jobs_retry_wait_s: int = Field(default=5, ge=0, le=3600)
    """Jobs: seconds between a failed attempt and the next."""

    @property
    def scan_limits(self) -> ScanLimits:
        from aiprov.scanning.limits import MiB, ScanLimits

        return ScanLimits(
            max_ratio=self.scan_max_ratio,
            allowance=self.scan_ratio_allowance_mb * MiB,
            max_bytes=self.scan_max_decompressed_mb * MiB,
            max_seconds=self.scan_max_seconds,
        )

    @property
    def worker_limits(self) -> Limits:
        import math

        from aiprov.sandbox.spec import Limits

        return Limits(
            memory_bytes=self.worker_memory_mb * 2**20,
            cpu_seconds=math.ceil(self.worker_timeout_s),
            timeout_s=self.worker_timeout_s,
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'registry.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def quarantine_dir(self) -> Path:
        """Refused uploads, kept as evidence: outside the blob store, never referenced by a version."""
        return self.home / "quarantine"

    @property
    def resolved_log_key_file(self) -> Path:
        return self.log_key_file or self.home / "log.key"

    @property
    def default_origin(self) -> str:
        return self.log_origin or f"{socket.gethostname()}/aiprov"

    @property
    def trusted_checkpoint_file(self) -> Path:
        """The newest checkpoint this client has verified; advanced only after a consistency proof."""
        return self.home / "trusted-checkpoint"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Serving:
    """The API's long-lived parts: made on first use by whichever request thread comes first."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    usage_recorder: UsageRecorder | None = None
    inference: InferenceService | None = None


@dataclass
class Container:
    """The wired application: built once per process (CLI command, API app, test)."""

    settings: Settings
    clock: Callable[[], datetime] = field(default=utc_now)
    _serving: _Serving = field(default_factory=lambda: _Serving(), repr=False, compare=False)

    def require_home(self) -> None:
        """Raise NotFound unless `aiprov init` created the home (or a database URL points elsewhere)."""
        home = self.settings.home
        if not home.is_dir():
            raise NotFound(f"no aiprov home at {home}", hint="run `aiprov init` or set AIPROV_HOME")

    @cached_property
    def blobs(self) -> BlobStore:
        """The local folder, or the S3 store AIPROV_BLOBS names. Raises InvalidInput, MissingExtra (boto3)."""
        url = self.settings.blobs
        if url is None:
            from aiprov.adapters.blob_local import LocalBlobStore

            return LocalBlobStore(self.settings.blob_dir)
        if not url.startswith("s3://"):
            raise InvalidInput(f"AIPROV_BLOBS={url!r} is not s3://BUCKET[/PREFIX]", hint="unset it for <home>/blobs")
        try:
            from aiprov.adapters.blob_s3 import S3BlobStore
        except ImportError as e:
            raise missing("AIPROV_BLOBS=s3://…", e, "boto3") from e
        return S3BlobStore.from_environment(url, self.settings.home / "staging")

    @cached_property
    def db(self) -> SqlRegistry:
        """The registry database, whose every write unit that appends to the log signs a checkpoint over it."""
        from aiprov.adapters.db.engine import make_engine
        from aiprov.adapters.db.registry import SqlRegistry

        db = SqlRegistry(make_engine(self.settings.resolved_database_url))
        db.before_commit = self._publish_checkpoint
        return db

    @cached_property
    def checked_db(self) -> SqlRegistry:
        """`db`, once the home exists and the schema is current. Raises NotFound (no home) or SchemaError."""
        from aiprov.adapters.db.engine import check_schema

        self.require_home()
        check_schema(self.db.engine)
        return self.db

    @cached_property
    def registry(self) -> RegistryService:
        from aiprov.services.registry import RegistryService

        return RegistryService(
            self.checked_db,
            self.blobs,
            clock=self.clock,
            actor=self.settings.actor,
            quarantine=self.settings.quarantine_dir,
            cids=self.settings.ipfs_cids,
            scan_limits=self.settings.scan_limits,
        )

    @cached_property
    def ipfs(self) -> IpfsService:
        from aiprov.services.ipfs import IpfsService

        s = self.settings
        return IpfsService(
            self.registry, api_url=s.ipfs_api, pinning_url=s.ipfs_pinning_url, pinning_token=s.ipfs_pinning_token
        )

    def new_usage_recorder(self, **options: Any) -> UsageRecorder:
        """A usage recorder writing to this hub's log (the largest batch from the settings unless `options` give it).

        Raises NotFound (no home) or SchemaError. The API's own is `usage_recorder`.
        """
        from aiprov.services.usage import UsageRecorder

        options.setdefault("batch_size", self.settings.usage_batch_size)
        options.setdefault("max_queued", max(20_000, 4 * options["batch_size"]))
        return UsageRecorder(self.checked_db, **options)

    @property
    def usage_recorder(self) -> UsageRecorder:
        """The recorder every prediction and download of the API goes through; `close` writes what it holds.

        Made on first use, by whichever thread comes first. Raises NotFound (no home) or SchemaError.
        """
        serving = self._serving
        recorder = serving.usage_recorder
        if recorder is None:
            with serving.lock:
                if serving.usage_recorder is None:
                    serving.usage_recorder = self.new_usage_recorder()
                recorder = serving.usage_recorder
        return recorder

    @property
    def running_usage_recorder(self) -> UsageRecorder | None:
        """The API's usage recorder if it was made (asking makes nothing): for monitoring."""
        return self._serving.usage_recorder

    @property
    def running_inference(self) -> InferenceService | None:
        """The inference service if a prediction was served (asking makes nothing): to drop its cached references."""
        return self._serving.inference

    @property
    def running_worker_pool(self) -> WorkerPool | None:
        """The model workers' pool if a model has run (asking starts nothing): for monitoring."""
        return self.models.pool if "models" in self.__dict__ else None

    @property
    def inference(self) -> InferenceService:
        """Predictions with this hub's models, each logged through `usage_recorder`; made on first use."""
        serving = self._serving
        service = serving.inference
        if service is None:
            recorder = self.usage_recorder
            with serving.lock:
                if serving.inference is None:
                    from aiprov.services.inference import InferenceService

                    serving.inference = InferenceService(
                        self.db, self.blobs, self.models, recorder, clock=self.clock,
                        timeout_s=self.settings.worker_timeout_s,
                    )  # fmt: skip
                service = serving.inference
        return service

    def _publish_checkpoint(self, unit: SqlRegistryUnit) -> None:
        self.log.publish_in(unit)

    @cached_property
    def log_signer(self) -> Signer:
        from aiprov.adapters.keys import read_log_signer

        return read_log_signer(self.settings.resolved_log_key_file)

    @cached_property
    def accounts(self) -> AccountService:
        """API users and tokens (`aiprov user …`); the API authenticates every request with a token here."""
        from aiprov.services.accounts import AccountService

        return AccountService(
            self.checked_db, clock=self.clock, actor=self.settings.actor, cache_s=self.settings.token_cache_s
        )

    @cached_property
    def signatures(self) -> SignatureService:
        from aiprov.services.signatures import SignatureService

        return SignatureService(self.checked_db, clock=self.clock, actor=self.settings.actor)

    @cached_property
    def models(self) -> SandboxedModels:
        """Registered versions run in worker processes, started on first use and stopped by `close`."""
        from aiprov.sandbox import SandboxedModels, WorkerPool

        s = self.settings
        return SandboxedModels(self.blobs, WorkerPool(s.workers, s.worker_limits, sandbox=s.sandbox, private=[s.home]))

    @cached_property
    def gc(self) -> GcService:
        from aiprov.services.gc import GcService

        return GcService(self.checked_db, self.blobs, clock=self.clock, actor=self.settings.actor)

    @cached_property
    def datasets(self) -> DatasetService:
        from aiprov.services.datasets import DatasetService

        return DatasetService(
            self.checked_db,
            self.blobs,
            clock=self.clock,
            actor=self.settings.actor,
            scan_limits=self.settings.scan_limits,
        )

    @cached_property
    def evaluation(self) -> EvaluationService:
        from aiprov.services.evaluation import EvaluationService

        return EvaluationService(
            self.checked_db, self.datasets, lambda: self.models, clock=self.clock, actor=self.settings.actor
        )

    @cached_property
    def jobs(self) -> JobService:
        """Evaluations and reproductions: queued for `aiprov worker` when AIPROV_JOBS=queue, else run at once."""
        from aiprov.services.jobs import JobService

        queue = self.job_queue if self.settings.jobs == "queue" else None
        return JobService(self.checked_db, self.evaluation, queue, clock=self.clock, actor=self.settings.actor)

    @cached_property
    def job_queue(self) -> ProcrastinateQueue:
        """The PostgreSQL job queue (procrastinate). Raises InvalidInput on SQLite, MissingExtra without it."""
        from aiprov.adapters.queue import ProcrastinateQueue

        s = self.settings
        return ProcrastinateQueue(
            s.resolved_database_url,
            lambda job, final: self.jobs.run(job, final=final),
            attempts=s.jobs_attempts,
            retry_wait_s=s.jobs_retry_wait_s,
        )

    @cached_property
    def claims(self) -> ClaimService:
        from aiprov.services.claims import ClaimService

        return ClaimService(self.checked_db, self.datasets, clock=self.clock, actor=self.settings.actor)

    @cached_property
    def audits(self) -> AuditService:
        from aiprov.services.audits import AuditService

        return AuditService(
            self.checked_db, self.datasets, lambda: self.models, clock=self.clock, actor=self.settings.actor
        )

    @cached_property
    def reputation(self) -> ReputationService:
        """Reputations from the events table, or (`from_log`) from this hub's own tiles and the trusted log key."""
        from aiprov.services.reputation import ReputationService

        return ReputationService(
            self.checked_db,
            self.log.tile,
            lambda: self.log.latest().note,
            lambda: self.trusted_log_verifier,
            self.settings.trusted_checkpoint_file,
            cache=self.registry.scores,
        )

    @cached_property
    def model_pages(self) -> ModelPages:
        """What a model's web page shows, read in one transaction."""
        from aiprov.services.model_page import ModelPages

        return ModelPages(self.checked_db)

    @cached_property
    def verification(self) -> VerificationService:
        from aiprov.services.verification import VerificationService

        return VerificationService(
            self.db,
            self.blobs,
            self.log,
            trusted_verifier=self.trusted_log_verifier,
            trusted_checkpoint_file=self.settings.trusted_checkpoint_file,
        )

    @cached_property
    def trusted_log_verifier(self) -> Verifier:
        """The log key this home trusts when it verifies. Raises NotFound.

        AIPROV_LOG_VERIFIER_KEY, else `<home>/log.pub`, else the public half of the log key this home signs with (a
        server on another host has the key, from AIPROV_LOG_KEY_FILE, but no `log.pub`).
        """
        from aiprov.core.note import Verifier

        text = self.settings.log_verifier_key
        if text is None:
            path = self.settings.home / "log.pub"
            try:
                text = path.read_text().strip()
            except FileNotFoundError:
                if self.settings.resolved_log_key_file.exists():
                    return self.log_signer.verifier
                raise NotFound("no trusted log verifier key in this home", hint="set AIPROV_LOG_VERIFIER_KEY") from None
        return Verifier.parse(text)

    def anchoring(self, private_key: str | None = None, key_source: str | None = None) -> AnchorService:
        """Anchors and on-chain registrations; `private_key` (from `--key-file`) overrides AIPROV_CHAIN_PRIVATE_KEY."""
        from aiprov.services.anchoring import AnchorService

        config = chain_config(self.settings, private_key, key_source)
        return AnchorService(self.checked_db, self.log, config, clock=self.clock, actor=self.settings.actor)

    def staking(self, private_key: str | None = None, key_source: str | None = None) -> StakeService:
        """Stake on chain (AiprovStaking); `private_key` (from `--key-file`) overrides AIPROV_CHAIN_PRIVATE_KEY.

        Steps are sent with that key and logged in this home as its actor.
        """
        from aiprov.services.staking import HomeLedger, StakeService

        config = chain_config(self.settings, private_key, key_source)
        return StakeService(config, HomeLedger(self.stake_recorder, self.settings.actor))

    @cached_property
    def stake_recorder(self) -> StakeRecorder:
        """What logs staking steps from their transactions (a home's own, and `POST /api/v1/stake/steps`)."""
        from aiprov.services.staking import StakeRecorder

        return StakeRecorder(
            self.checked_db, chain_config(self.settings), clock=self.clock, origin=self.log_signer.name,
            claims=self.claims.get,
        )  # fmt: skip

    @cached_property
    def log(self) -> LogService:
        from aiprov.adapters.db.engine import check_schema
        from aiprov.services.transparency import LogService

        self.require_home()
        check_schema(self.db.engine)
        return LogService(self.db, self.log_signer, clock=self.clock)

    def init(self) -> str | None:
        """Create the home and the schema (or upgrade it); return the schema revision found before."""
        from aiprov.adapters.db.engine import migrate

        self._make_home()
        before = migrate(self.db.engine)
        self._init_log_key()
        if self.settings.jobs == "queue":
            self.job_queue.ensure_schema()
        return before

    def backup(self, dest: Path, progress: Callable[[str], None] | None = None) -> BackupReport:
        """Write a consistent backup of this hub (database, held blobs, log key) to the new directory `dest`."""
        from aiprov.adapters.backup import backup

        db = self.checked_db
        return backup(db.engine, self.blobs, self.settings.resolved_log_key_file, dest, progress)

    def restore(self, src: Path, progress: Callable[[str], None] | None = None) -> BackupReport:
        """Restore the backup in `src` into this home, whose database must be empty; then check its log.

        Raises IntegrityError unless the restored log has the backup's checkpoint: its root at that size and its
        signature by the restored key.
        """
        from aiprov.adapters.backup import restore
        from aiprov.core.checkpoint import Checkpoint
        from aiprov.core.note import open_note

        self._make_home()
        report = restore(src, self.db.engine, self.blobs, self.settings.resolved_log_key_file, progress)
        self._init_log_key()  # binds nothing new: the restored log_state already names the restored key
        signed = Checkpoint.parse(open_note(report.checkpoint, [self.log_signer.verifier]).text)
        if (signed.size, signed.root_hash) != (report.tree_size, report.root_hash):
            raise IntegrityError("the backup's checkpoint is not the one its manifest names")
        if self.log.root(report.tree_size) != report.root_hash:
            raise IntegrityError(f"the restored log's root at size {report.tree_size} is not the backup checkpoint's")
        return report

    def _make_home(self) -> None:
        """The home directory (mode 0700) and, for the local store, its blob folder. Raises InvalidInput."""
        home = self.settings.home
        try:
            home.mkdir(parents=True, exist_ok=True)
            if self.settings.blobs is None:
                self.settings.blob_dir.mkdir(exist_ok=True)
        except OSError as e:
            raise InvalidInput(f"cannot create the aiprov home at {home}: {e.strerror}") from e
        os.chmod(home, 0o700)

    def _init_log_key(self) -> None:
        """Make the log key if there is none, and bind the database's log to it (one log, one key)."""
        from aiprov.adapters.db import log
        from aiprov.adapters.keys import create_log_signer

        path = self.settings.resolved_log_key_file
        signer = self.log_signer if path.exists() else create_log_signer(path, self.settings.default_origin)
        self.__dict__["log_signer"] = signer
        with self.db.unit(write=True) as u:
            recorded = log.verifier_key(u.conn)
            if recorded is None:
                log.set_verifier_key(u.conn, str(signer.verifier))
            elif recorded != str(signer.verifier):
                raise Conflict(
                    f"the database's log is signed by {recorded.split('+')[0]!r} with another key than {path}",
                    hint="set AIPROV_LOG_KEY_FILE to the log's key, shared by every machine of this hub",
                )
        verifier_file = self.settings.home / "log.pub"
        if not verifier_file.exists():
            verifier_file.write_text(str(signer.verifier) + "\n")

    def local(self, what: str) -> Container:
        """Itself: a home can do everything (`HubServices.local`; a server's raises NotOnServer)."""
        return self

    def close(self) -> None:
        """Write what the usage recorder holds, then stop the model workers and close the database."""
        if self._serving.usage_recorder is not None:
            self._serving.usage_recorder.close()
        if "models" in self.__dict__:
            self.models.close()
        if "db" in self.__dict__:
            self.db.engine.dispose()


def chain_config(s: Settings, private_key: str | None = None, key_source: str | None = None) -> ChainConfig:
    """The chain settings (AIPROV_CHAIN_*); `private_key` (from `--key-file`) overrides AIPROV_CHAIN_PRIVATE_KEY."""
    from aiprov.services.anchoring import ChainConfig

    if private_key is None and s.chain_private_key is not None:
        private_key, key_source = s.chain_private_key.get_secret_value(), "AIPROV_CHAIN_PRIVATE_KEY"
    return ChainConfig(
        rpc_url=s.chain_rpc,
        contract=s.chain_contract,
        staking=s.stake_contract,
        private_key=private_key,
        key_source=key_source or "the chain key",
        expected_chain_id=s.chain_id,
        from_block=s.chain_from_block,
        receipt_timeout_s=s.chain_receipt_timeout_s,
    )


def load_settings(home: Path | None = None) -> Settings:
    """The settings of the environment, with `home` overriding AIPROV_HOME. Raises InvalidInput naming the bad ones."""
    from pydantic import ValidationError

    try:
        return Settings() if home is None else Settings(home=home)
    except ValidationError as e:
        problems = "; ".join(
            f"AIPROV_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in e.errors()
        )
        raise InvalidInput(f"invalid configuration: {problems}") from None


def load_container(home: Path | None = None) -> Container:
    """The container for the environment, with `home` overriding AIPROV_HOME."""
    return Container(load_settings(home))
