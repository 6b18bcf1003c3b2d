"""The service methods the CLI calls, done against an aiprov server: same arguments, same records back.

What the client can check itself, it checks: a version's manifest must hash to the digest the server gives, a
pulled file must hash to its manifest entry before it is renamed into place, a log entry must hash to its leaf,
and a proof must lead to the root it claims.
"""

from __future__ import annotations

import builtins
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiprov.adapters.files import (
    LocalFile,
    Progress,
    ProgressFactory,
    atomic_file,
    hash_file,
    model_files,
    parallel_map,
    staged_directory,
)
from aiprov.core import merkle
from aiprov.core.canonical import canonical_json
from aiprov.core.digest import Digest
from aiprov.core.events import Event
from aiprov.core.manifest import Manifest, ManifestEntry, check_relative_path, refuse_git_paths
from aiprov.core.names import ModelName, Ref
from aiprov.errors import AiprovError, BackendError, Busy, Conflict, IntegrityError, InvalidInput, VerificationError
from aiprov.records import (
    DatasetRecord,
    EvaluationRecord,
    EventRecord,
    ModelRecord,
    Reproduction,
    VersionRecord,
    parse_time,
)
from aiprov.remote.client import HubClient
from aiprov.scanning.report import FileReport, Finding, ScanReport

if TYPE_CHECKING:
    from aiprov import signing
    from aiprov.core.note import Verifier
    from aiprov.ports import ChainReader
    from aiprov.records import ModelFilter
    from aiprov.sandbox.spec import Prediction
    from aiprov.services.registry import PushRequest, PushResult
    from aiprov.services.signatures import SignResult
    from aiprov.services.transparency import ConsistencyProof, InclusionProof
    from aiprov.services.verification import Evidence, VerifyReport

UPLOAD_CHUNK = 1024 * 1024
UPLOAD_ATTEMPTS = 4
"""A cut upload is continued from the server's kept offset this many times before giving up."""
DOWNLOAD_ATTEMPTS = 4
"""A cut download is continued (`Range: bytes=N-`) this many times before giving up."""


# records from the wire -----------------------------------------------------------------------------------------


def scan_from_json(value: dict[str, Any]) -> ScanReport:
    files = tuple(
        FileReport(
            str(f["path"]),
            str(f["format"]),
            f["verdict"],
            tuple(Finding(str(x["reason"]), str(x["detail"])) for x in f.get("findings") or ()),
        )
        for f in value.get("files") or ()
    )
    return ScanReport(value.get("verdict", "safe"), files)


def model_path(name: str) -> str:
    """The API path of the model `owner/name` (`/models/owner/name`, each part quoted)."""
    parsed = ModelName.parse(name)
    return f"/models/{quote(parsed.owner)}/{quote(parsed.name)}"


# registry ------------------------------------------------------------------------------------------------------


class RemoteRegistry:
    """`RegistryService`'s commands against a server."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    def push(self, path: Path, request: PushRequest, progress: ProgressFactory | None = None) -> PushResult:
        """Hash the model locally, upload the blobs the server lacks (continuing cut uploads), then commit.

        The server scans the committed files as a local push does. Raises InvalidInput, Unauthorized,
        Forbidden, UnsafeModelError (the server kept the evidence), BackendError.
        """
        from aiprov.services.registry import PushResult

        name = ModelName.parse(request.name)
        files = model_files(path)
        total = sum(f.size for f in files)
        advance = progress(2 * total) if progress else None  # hashing, then uploading
        entries = parallel_map(lambda f: hash_file(f, progress=advance), files)
        manifest = Manifest.build(entries)
        by_digest = {e.sha256: f for f, e in zip(files, entries, strict=True)}
        new_blobs = new_bytes = 0
        for digest, file in by_digest.items():
            if self.upload_blob(digest, file, advance):
                new_blobs += 1
                new_bytes += file.size
        body = {
            "files": [e.to_json() for e in manifest.entries],
            "description": request.description,
            "license": request.license,
            "tags": list(request.tags),
            "parents": list(request.parents),
            "datasets": list(request.datasets),
            "code_revision": request.code_revision,
            "params": dict(request.params or {}),
            "metadata": dict(request.metadata or {}),
            "single_file": path.is_file(),
        }
        result = self.client.json("POST", f"{model_path(str(name))}/versions", json=body)
        return PushResult(
            VersionRecord.from_json(result),
            bool(result.get("deduplicated")),
            new_blobs,
            new_bytes,
            scan_from_json(result.get("scan") or {}),
        )

    def upload_blob(self, digest: Digest, file: LocalFile, progress: Progress | None) -> bool:
        """Upload one blob unless the server has it; return whether it was stored new.

        A cut connection is continued where the server says its kept bytes end. While another upload of the
        same bytes by the same user is in flight (the same model pushed twice at once), the server waits for it.
        """
        url = f"/blobs/{digest}"
        last: AiprovError | None = None
        for _ in range(UPLOAD_ATTEMPTS):
            status = self.client.json("GET", f"{url}/status")
            if status.get("stored"):
                if progress:
                    progress(file.size)
                return False
            offset = min(int(status.get("offset") or 0), file.size)
            headers = {"Content-Length": str(file.size - offset)}
            params = {}
            if offset == file.size and offset:
                # Every byte is kept (or being written by our other upload, about to publish): an empty PUT at
                # the end publishes them, or finds them stored; a Content-Range cannot name zero bytes.
                params["offset"] = str(offset)
            elif offset:
                headers["Content-Range"] = f"bytes {offset}-{file.size - 1}/{file.size}"
            try:
                response = self.client.request(
                    "PUT", url, content=_read_from(file, offset, progress), headers=headers, params=params
                )
            except BackendError as e:  # a cut: the server kept what arrived
                last = e
                continue
            except Busy:  # the server already waited for our other upload of these bytes: it is stuck
                raise
            except Conflict as e:  # the offset read moved meanwhile (our concurrent upload ended): read it again
                last = e
                continue
            return bool(response.json().get("new"))
        assert last is not None
        raise BackendError(f"uploading {file.path} failed {UPLOAD_ATTEMPTS} times: {last.message}")

    def list(self, f: ModelFilter, sort: str = "name") -> builtins.list[ModelRecord]:
        given = {"author": f.author, "name": f.name_glob, "tag": f.tag, "search": f.search, "format": f.format}
        params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if sort != "name":
            params["sort"] = sort
        if f.min_metrics:
            params["min"] = [f"{metric}={value!r}" for metric, value in f.min_metrics]
        return [ModelRecord.from_json(m) for m in self.client.json("GET", "/models", params=params)]

    def show_json(self, ref: str) -> dict[str, Any]:
        """The server's `show --json` document of `ref`. Raises NotFound, InvalidInput."""
        Ref.parse(ref)
        detail: dict[str, Any] = self.client.json("GET", f"/versions/{quote(ref, safe='/@:')}")
        return detail

    def show(self, ref: str) -> tuple[ModelRecord, VersionRecord]:
        detail = self.show_json(ref)
        version = VersionRecord.from_json(detail)
        model = ModelRecord(
            owner=version.owner,
            name=version.name,
            description=str(detail.get("description") or ""),
            license=detail.get("license"),
            tags=tuple(detail.get("tags") or ()),
            created_at=version.created_at,
            latest=None,
            version_count=int(detail.get("versions") or 0),
        )
        return model, version

    def versions(self, name: str) -> builtins.list[VersionRecord]:
        return [VersionRecord.from_json(v) for v in self.client.json("GET", f"{model_path(name)}/versions")]

    def usage(self, ref: str, limit: int = 1000) -> builtins.list[EventRecord]:
        """Events about a model or one version, newest first (a version's are picked from its model's events)."""
        parsed = Ref.parse(ref)
        if parsed.model is not None and parsed.number is None and parsed.alias is None:
            events = self.client.json("GET", f"{model_path(str(parsed.model))}/events", params={"limit": limit})
            return [EventRecord.from_json(e) for e in events]
        _, version = self.show(ref)
        events = self.client.json("GET", f"{model_path(version.full_name)}/events", params={"limit": 10_000})
        subject = str(version.manifest.digest)
        return [EventRecord.from_json(e) for e in events if e.get("subject") == subject][:limit]

    def alias(self, ref: str, alias: str) -> tuple[VersionRecord, int | None]:
        _, version = self.show(ref)
        body = self.client.json(
            "PUT", f"{model_path(version.full_name)}/aliases/{quote(alias)}", json={"version": str(version.number)}
        )
        previous = body.get("previous")
        return VersionRecord.from_json(body), None if previous is None else int(previous)

    def pull(
        self, ref: str, dest: Path, *, force: bool = False, progress: ProgressFactory | None = None
    ) -> VersionRecord:
        """Download the files of `ref` under `dest`, all hashed and checked before any appears (as a local pull).

        Raises NotFound, IntegrityError (naming the file), InvalidInput, BackendError; `dest` is then unchanged.
        """
        from aiprov.services.registry import RegistryService

        _, record = self.show(ref)
        refuse_git_paths((e.path for e in record.manifest.entries), record.ref)
        todo = [e for e in record.manifest.entries if not RegistryService._already_there(dest, e, force)]
        advance = progress(sum(e.size for e in todo)) if progress else None
        base = f"{model_path(record.full_name)}/versions/{record.number}/files/"
        with staged_directory(dest, [e.path for e in todo]) as staging:
            for entry in todo:
                self._download(base + quote(entry.path), entry, staging, advance)
        return record

    def _download(self, url: str, entry: ManifestEntry, dest: Path, progress: Progress | None) -> None:
        """Download one file to a temporary name; rename it into place once its size and SHA-256 match.

        A cut transfer is continued where it stopped (`Range: bytes=N-`), up to DOWNLOAD_ATTEMPTS times.
        """
        target = dest / check_relative_path(entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        with atomic_file(target) as f:
            last: BackendError | None = None
            for _ in range(DOWNLOAD_ATTEMPTS):
                headers = {"Range": f"bytes={size}-"} if size else {}
                try:
                    with self.client.stream(url, headers=headers) as response:
                        if size and response.status_code != 206:
                            raise BackendError(f"the server cannot continue the download of {entry.path}")
                        for chunk in response.iter_bytes(UPLOAD_CHUNK):
                            h.update(chunk)
                            size += len(chunk)
                            f.write(chunk)
                            if progress:
                                progress(len(chunk))
                    break
                except BackendError as e:  # a cut: keep what arrived, ask for the rest
                    last = e
                    if size >= entry.size:
                        break
            else:
                assert last is not None
                raise BackendError(f"downloading {entry.path} failed {DOWNLOAD_ATTEMPTS} times: {last.message}")
            if size != entry.size or h.hexdigest() != entry.sha256.hex:
                raise IntegrityError(
                    f"{entry.path}: received {size} bytes hashing to sha256:{h.hexdigest()}, "
                    f"not the manifest's {entry.size} bytes {entry.sha256}"
                )


def _read_from(file: LocalFile, offset: int, progress: Progress | None) -> Iterator[bytes]:
    """The file's bytes from `offset`, in chunks (an httpx streaming body: the file is never read whole)."""
    try:
        with open(file.location, "rb") as f:
            f.seek(offset)
            while chunk := f.read(UPLOAD_CHUNK):
                if progress:
                    progress(len(chunk))
                yield chunk
    except OSError as e:
        raise InvalidInput(f"cannot read {file.location}: {e.strerror}") from e


# evaluations, log, verification --------------------------------------------------------------------------------


class RemoteEvaluations:
    def __init__(self, client: HubClient) -> None:
        self.client = client

    def of_version(self, ref: str) -> builtins.list[EvaluationRecord]:
        parsed = Ref.parse(ref)
        if parsed.model is None or parsed.number is None:
            raise InvalidInput(f"{ref!r} is not OWNER/NAME@N")
        path = f"{model_path(str(parsed.model))}/evaluations"
        found = self.client.json("GET", path, params={"version": parsed.number})
        return [EvaluationRecord.from_json(e) for e in found]

    def evaluate(
        self,
        ref: str,
        *,
        benchmark: str | None = None,
        dataset: str | None = None,
        key: signing.PrivateKey | None = None,
    ) -> EvaluationRecord:
        """Run the evaluation on the server (in its sandboxed workers); the caller is recorded as the evaluator."""
        if key is not None:
            raise InvalidInput(
                "--key signs an evaluation on the machine that runs it; against a server it is not sent",
                hint="evaluate without --key, or run `aiprov eval --key` on the hub's machine",
            )
        from aiprov.remote.jobs import RemoteJobs, failure, wait

        jobs = RemoteJobs(self.client)
        answer = jobs.evaluate(ref, benchmark=benchmark, dataset=dataset)
        if isinstance(answer, EvaluationRecord):
            return answer
        job = wait(jobs.get, answer)  # a server with a queue: its workers run it
        if job.state == "failed":
            raise failure(job)
        return job.evaluation()

    def get(self, evaluation_id: int) -> EvaluationRecord:
        return EvaluationRecord.from_json(self.client.json("GET", f"/evaluations/{evaluation_id}"))

    def reproduce(self, evaluation_id: int) -> Reproduction:
        """Have the server re-run evaluation `evaluation_id` on its workers and compare (nothing is recorded)."""
        from aiprov.remote.jobs import RemoteJobs, failure, wait

        jobs = RemoteJobs(self.client)
        answer = jobs.reproduce(evaluation_id)
        if isinstance(answer, Reproduction):
            return answer
        job = wait(jobs.get, answer)
        if job.state == "failed":
            raise failure(job)
        return job.reproduction(self.get(evaluation_id))


class RemoteInference:
    """`InferenceService` against a server: the model is scanned, loaded and run by the server's workers.

    `POST .../load`, then `POST .../predict`, pinned to one version by number; each prediction is the token's
    user's usage event. Loading and predicting need a token with the write scope.
    """

    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry
        self.client = registry.client

    def _path(self, ref: str, action: str) -> tuple[str, dict[str, str]]:
        parsed = Ref.parse(ref)
        if parsed.model is None:  # a digest: the routes take a name, so ask which version it is
            return self._path(self.registry.show(ref)[1].ref, action)
        version = parsed.alias if parsed.alias is not None else parsed.number
        return f"{model_path(str(parsed.model))}/{action}", {} if version is None else {"version": str(version)}

    def load(self, ref: str) -> VersionRecord:
        path, params = self._path(ref, "load")
        return VersionRecord.from_json(self.client.json("POST", path, params=params))

    def run(self, ref: str, rows: builtins.list[Any], *, actor: str, proba: bool) -> Prediction:
        """The server's prediction for `rows`; `actor` is not sent (the server records its token's user)."""
        from aiprov.sandbox.spec import Prediction

        path, params = self._path(ref, "predict")
        answer = self.client.json("POST", path, params=params, json={"inputs": rows, "proba": proba})
        if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
            raise BackendError(f"the server at {self.client.url} sent no predictions for {ref}")
        return Prediction(answer["predictions"], answer.get("probabilities"), answer.get("classes"))


class RemoteDatasets:
    """`DatasetService` against a server: the file is uploaded as a blob (streamed, resumable), then registered."""

    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry
        self.client = registry.client

    def add(self, path: Path, name: str, target: str, task: str | None = None) -> tuple[DatasetRecord, bool]:
        ModelName.parse(name)
        files = model_files(path)
        if len(files) != 1 or not path.is_file():
            raise InvalidInput(f"{path} is not a file: a dataset is one CSV or Parquet file")
        entry = hash_file(files[0])
        self.registry.upload_blob(entry.sha256, files[0], None)
        body = {"name": name, "digest": str(entry.sha256), "target": target, "task": task}
        document = self.client.json("POST", "/datasets", json=body)
        return DatasetRecord.from_json(document), bool(document.get("new"))

    def get(self, name: str) -> DatasetRecord:
        parsed = ModelName.parse(name)
        return DatasetRecord.from_json(self.client.json("GET", f"/datasets/{quote(parsed.owner)}/{quote(parsed.name)}"))

    def list(self) -> builtins.list[DatasetRecord]:
        return [DatasetRecord.from_json(d) for d in self.client.json("GET", "/datasets")]


class RemoteSignatures:
    """`SignatureService.sign` against a server: signed here (the private key never travels), recorded there."""

    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry

    def sign(self, ref: str, key: signing.PrivateKey) -> SignResult:
        """Sign the manifest this client fetched and checked against its digest; the server verifies and records.

        Raises NotFound, Forbidden (another owner's model), VerificationError, BackendError.
        """
        from aiprov import signing
        from aiprov.services.signatures import SignResult

        _, record = self.registry.show(ref)
        bundle = signing.sign_manifest(record.manifest, record.signing_name, key, single_file=record.single_file)
        pem = signing.public_key_pem(key.public_key())
        body = {"bundle": bundle.decode(), "public_key": pem.decode()}
        document = self.registry.client.json(
            "POST", f"{model_path(record.full_name)}/versions/{record.number}/signatures", json=body
        )
        return SignResult(record, bundle, str(document["key_fingerprint"]), bool(document["recorded"]))


@dataclass(frozen=True, slots=True)
class RemoteCheckpoint:
    """The server's latest checkpoint note, exactly as signed."""

    note: str


class RemoteLog:
    """`LogService`'s reads against a server; entries and proofs are checked before they are returned."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    def latest(self) -> RemoteCheckpoint:
        return RemoteCheckpoint(self.client.request("GET", "/log/checkpoint").text)

    @property
    def verifier(self) -> Verifier:
        from aiprov.core.note import Verifier

        return Verifier.parse(self.client.request("GET", "/log/key").text.strip())

    def entry(self, index: int) -> tuple[bytes, bytes, Event]:
        """The entry's canonical bytes, leaf hash and event. Raises VerificationError if they do not agree."""
        body = self.client.json("GET", f"/log/entries/{index}")
        data = canonical_json(body["event"])
        leaf = merkle.leaf_hash(data)
        if leaf.hex() != body.get("leaf_hash"):
            raise VerificationError(f"log entry {index} does not hash to the leaf hash the server gave")
        return data, leaf, Event.from_entry(data)

    def inclusion(self, index: int, size: int | None = None) -> InclusionProof:
        from aiprov.services.transparency import InclusionProof

        params = {"index": index, **({"size": size} if size else {})}
        p = self.client.json("GET", "/log/proof/inclusion", params=params)
        proof = InclusionProof(
            int(p["index"]),
            int(p["tree_size"]),
            bytes.fromhex(p["leaf_hash"]),
            [bytes.fromhex(h) for h in p["hashes"]],
            bytes.fromhex(p["root"]),
        )
        proof.verify()
        return proof

    def consistency(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        from aiprov.services.transparency import ConsistencyProof

        params = {"from": size1, **({"to": size2} if size2 else {})}
        p = self.client.json("GET", "/log/proof/consistency", params=params)
        proof = ConsistencyProof(
            int(p["size1"]),
            int(p["size2"]),
            [bytes.fromhex(h) for h in p["hashes"]],
            bytes.fromhex(p["root1"]),
            bytes.fromhex(p["root2"]),
        )
        proof.verify()
        return proof


@dataclass(frozen=True, slots=True)
class RemoteLogKey:
    """What `aiprov log key` prints: the server's verifier key."""

    verifier: Verifier


class RemoteVerification:
    """`aiprov verify` against a server, trusting nothing it says.

    The manifest is hashed here, signatures are checked here, and the registration event is proven in the log
    against a checkpoint signed by the log key this client pinned (`AIPROV_LOG_VERIFIER_KEY`, else the key seen on
    first use, kept in `pins`), consistent with the last checkpoint this client verified from that server. Only
    "stored bytes" is the server's word (it re-hashed its blobs); `--path` checks a local copy instead.
    """

    def __init__(self, registry: RemoteRegistry, log: RemoteLog, pins: ServerPins) -> None:
        self.registry = registry
        self.log = log
        self.pins = pins

    def verify(
        self,
        ref: str,
        *,
        path: Path | None = None,
        hf_snapshot: bool = False,
        bundle: bytes | None = None,
        public_key: signing.PublicKey | None = None,
        chain: ChainReader | None = None,
    ) -> VerifyReport:
        """As `VerificationService.verify`, the log read over HTTP and proven with the pinned key.

        Raises InvalidInput, NotFound, VerificationError (a manifest that does not hash to its digest).
        """
        from aiprov.services.verification import Check, ProvenanceChecks, VerifyReport

        if (bundle is None) != (public_key is None):
            raise InvalidInput("--bundle and --public-key go together")
        evidence, base = self._evidence(ref)
        report = VerifyReport(evidence.record)
        verifier, pinned = self.pins.verifier(self.log)
        if pinned:
            report.checks.append(Check("log.key", True, pinned))

        def stored_bytes(report: VerifyReport) -> None:
            server = self.registry.client.json("GET", f"{base}/verify")
            stored = next((c for c in server["checks"] if c.get("check") == "bytes"), None)
            if stored is not None:
                report.checks.append(Check("bytes", bool(stored["ok"]), f"the server reports: {stored['detail']}"))

        checks = ProvenanceChecks(self.log, verifier, self.pins.trusted_checkpoint_file)
        return checks.run(
            report,
            evidence,
            stored_bytes=stored_bytes,
            path=path,
            hf_snapshot=hf_snapshot,
            bundle=bundle,
            public_key=public_key,
            chain=chain,
        )

    def rows(self, ref: str) -> VerifyReport:
        """As `VerificationService.rows`: what the server serves about `ref`, against its log entries read here."""
        from aiprov.services.verification import ProvenanceChecks, VerifyReport

        evidence, _ = self._evidence(ref)
        verifier, _ = self.pins.verifier(self.log)
        checks = ProvenanceChecks(self.log, verifier, self.pins.trusted_checkpoint_file)
        return checks.rows(VerifyReport(evidence.record), evidence)

    def _evidence(self, ref: str) -> tuple[Evidence, str]:
        model, record = self.registry.show(ref)
        base = f"{model_path(record.full_name)}/versions/{record.number}"
        return evidence_from_json(model, record, self.registry.client.json("GET", f"{base}/evidence")), base


def evidence_from_json(model: ModelRecord, record: VersionRecord, value: dict[str, Any]) -> Evidence:
    """The server's evidence document for `record` of `model`. Raises BackendError for a malformed one."""
    from aiprov.records import SignatureRecord
    from aiprov.services.verification import Evidence

    try:
        registration = value["registration"]
        event_json = registration["event"]
        event = Event(
            parse_time(event_json["time"]),
            str(event_json["actor"]),
            str(event_json["action"]),
            str(event_json["subject"]),
            event_json.get("model"),
            dict(event_json.get("details") or {}),
        )
        signatures = [
            SignatureRecord(
                str(s["bundle"]).encode(),
                str(s["public_key"]).encode(),
                str(s["key_fingerprint"]),
                str(s["signer"]),
                parse_time(s["created_at"]),
            )
            for s in value.get("signatures") or ()
        ]
        history = [int(i) for i in value.get("history") or ()]
        formats = {str(k): None if v is None else str(v) for k, v in (value.get("formats") or {}).items()}
        return Evidence(
            record, model, str(value["digest"]), signatures, int(registration["leaf_index"]), event, history, formats
        )
    except (KeyError, TypeError, ValueError) as e:
        raise BackendError(f"the server sent malformed evidence: {e}") from e


class ServerPins:
    """What this client keeps about one server: the log key it pinned and the newest checkpoint it verified.

    Kept under `<home>/servers/<host_port>/`, so two servers never share a pin and no server can change it.
    """

    def __init__(self, url: str, home: Path, configured_key: str | None) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        slug = "".join(c if c.isalnum() or c in "-." else "_" for c in f"{parts.hostname}_{parts.port or ''}")
        self.directory = home / "servers" / slug
        self.configured_key = configured_key

    @property
    def trusted_checkpoint_file(self) -> Path:
        return self.directory / "trusted-checkpoint"

    @property
    def key_file(self) -> Path:
        return self.directory / "log.pub"

    def verifier(self, log: RemoteLog) -> tuple[Verifier, str]:
        """The log key to trust and how it came to be trusted. Raises InvalidInput for a malformed key.

        The configured key wins; else the one pinned on first use; else the server's key is pinned now (said so,
        since from then on a server that changes its key fails verification).
        """
        from aiprov.core.note import Verifier

        if self.configured_key:
            return Verifier.parse(self.configured_key), "AIPROV_LOG_VERIFIER_KEY"
        try:
            return Verifier.parse(self.key_file.read_text().strip()), f"pinned in {self.key_file}"
        except FileNotFoundError:
            pass
        verifier = log.verifier
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.key_file.with_name(f".log.pub.{os.getpid()}")
        tmp.write_text(str(verifier) + "\n")
        os.replace(tmp, self.key_file)
        return verifier, f"first use: pinned the server's key {verifier.name}+{verifier.key_id:08x} in {self.key_file}"
