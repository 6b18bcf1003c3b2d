"""`aiprov ipfs cid|export|import` against a server, through its API and its trustless gateway.

`export` fetches the version's DAG as a CAR from the hub's `GET /ipfs/{cid}` and trusts none of it: every block
must hash to its CID, the root must be the version's CID, and the files the CAR rebuilds must hash to the
version's manifest digest, before the CAR appears at its path. (`aiprov --server URL verify REF` proves that
digest and those CIDs against the hub's signed log.) `import` checks and unpacks the CAR here, then pushes the
files as `push` does; the hub scans them. `pin` asks the hub to pin with its own Kubo node or pinning service
(`POST .../versions/{n}/pin`): the owner's or an admin's token, and no IPFS endpoint here.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from aiprov.adapters.car_file import unpacked_car
from aiprov.adapters.files import atomic_file, hash_model
from aiprov.core.unixfs import Cid
from aiprov.errors import IntegrityError, InvalidInput
from aiprov.records import VersionRecord
from aiprov.remote.client import HubClient
from aiprov.remote.services import RemoteRegistry, model_path
from aiprov.services.ipfs import CidReport, ExportResult, ImportResult, PinResult, check_version
from aiprov.services.registry import PushRequest

CAR = "application/vnd.ipld.car"
CHUNK = 1024 * 1024


class RemoteIpfs:
    """`IpfsService` against a server (see the module's docstring)."""

    def __init__(self, registry: RemoteRegistry, client: HubClient) -> None:
        self.registry = registry
        self.client = client

    def _root(self, record: VersionRecord, version: int) -> str:
        root = record.cids.of(version) if record.cids is not None else None
        if root is None:
            raise InvalidInput(
                f"{record.ref} has no CIDv{version} on {self.client.url}",
                hint=f"run `aiprov ipfs cid {record.ref}` on the hub's machine to compute and record it",
            )
        return root

    def of_ref(self, ref: str, version: int) -> CidReport:
        check_version(version)
        record = self.registry.show(ref)[1]
        root = self._root(record, version)
        assert record.cids is not None
        files = sorted((path, pair[version]) for path, pair in record.cids.files.items())
        return CidReport(root, version, files, record.ref)

    def export(self, ref: str, out: Path, version: int) -> ExportResult:
        """Fetch the version's CAR into `out`, which appears only once every check passed (module docstring).

        Raises NotFound, InvalidInput, IntegrityError (the hub sent other bytes than the version's), BackendError.
        """
        check_version(version)
        record = self.registry.show(ref)[1]
        root = Cid.parse(self._root(record, version))
        file_name = record.manifest.entries[0].path if record.single_file else None
        size = 0
        with atomic_file(out) as f:
            with self.client.stream(f"/ipfs/{quote(str(root))}", {"Accept": CAR}, prefix="") as response:
                for chunk in response.iter_bytes(CHUNK):
                    f.write(chunk)
                    size += len(chunk)
            f.flush()
            with unpacked_car(Path(f.name), file_name, out.parent) as (car_root, blocks, model):
                hub = self.client.url
                if car_root != root:
                    raise IntegrityError(f"{hub} sent a CAR rooted at {car_root}, not {record.ref}'s {root}")
                rebuilt = hash_model(model).digest
                if rebuilt != record.manifest.digest:
                    raise IntegrityError(
                        f"the CAR {hub} sent rebuilds {rebuilt}, not {record.ref} ({record.manifest.digest})"
                    )
        return ExportResult(record.ref, str(root), blocks, size, out)

    def import_car(self, path: Path, request: PushRequest, file_name: str | None = None) -> ImportResult:
        """Check and unpack the CAR here (beside it), then push its files to the hub.

        Raises as `push` and `IpfsService.import_car`.
        """
        with unpacked_car(path, file_name, path.parent) as (root, blocks, model):
            result = self.registry.push(model, request)
        return ImportResult(result, str(root), blocks)

    def pin(self, ref: str, version: int) -> PinResult:
        """Have the hub pin the version with its IPFS endpoint; what it reported.

        Raises NotFound, Unauthorized/Forbidden (not the owner's or an admin's token), InvalidInput (the hub has no
        IPFS endpoint), BackendError (the endpoint is down or refused).
        """
        check_version(version)
        record = self.registry.show(ref)[1]
        path = f"{model_path(record.full_name)}/versions/{record.number}/pin"
        body = self.client.json("POST", path, params={"cid_version": version})
        return PinResult(
            body["ref"], body["cid"], body["via"], body["endpoint"], body["status"], body.get("request_id")
        )
