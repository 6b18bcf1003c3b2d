"""aiprov's CIDs, CARs, gateway and gateway client against Helia, the IPFS project's JavaScript implementation.

Helia runs from npm (`npm ci`), offline, in Node processes these tests start; aiprov's hub is a real `aiprov serve`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.api.apitools import Server, init_home, push, start_server
from tests.ipfs.helia import helia_add, helia_import, helia_server, stalled_gateway, verified_fetch
from tests.ipfs.jstools import kubo_random
from tests.support.cli import cli

from aiprov import signing
from aiprov.adapters.files import hash_model
from aiprov.core import car
from aiprov.core.unixfs import CHUNK_SIZE, Cid, varint
from aiprov.records import VersionRecord
from aiprov.services.ipfs import IpfsService, local_cids

pytestmark = pytest.mark.slow

FILES = {
    "config.json": b'{"layers": 2}',
    "empty.txt": b"",
    "w/weights.bin": b"".join(kubo_random(3 * CHUNK_SIZE + 17, "weights")),
    "w/deep/one.bin": b"1",
}
ODD = {
    "a.txt": b"".join(kubo_random(CHUNK_SIZE + 3, "a.txt")),  # before a/b by path, after it depth-first
    "a/b": b"".join(kubo_random(2 * CHUNK_SIZE, "a/b")),
    "zeros.bin": bytes(4 * CHUNK_SIZE),  # four leaves with one CID: a CAR sends it once
}


def write_model(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def same_tree(a: Path, b: Path) -> None:
    """`b` holds exactly `a`'s files with `a`'s bytes."""
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@dataclass
class Hubs:
    """Two aiprov hubs holding the same model: `a` is the one asked for the manifest, `b` only a gateway."""

    a: Server
    b: Server
    model: Path
    single: Path
    odd: Path
    record: VersionRecord
    single_record: VersionRecord


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hubs]:
    base = tmp_path_factory.mktemp("hubs")
    model = write_model(base / "model", FILES)
    single = write_model(base / "single", {"clf.bin": b"".join(kubo_random(CHUNK_SIZE * 2 + 5, "single"))})
    odd = write_model(base / "odd", ODD)
    servers = []
    records = []
    for name in ("a", "b"):
        container, token = init_home(base / name)
        records.append(push(container, model, "alice/m").version)
        records.append(push(container, single / "clf.bin", "alice/single").version)
        push(container, odd, "alice/odd")
        container.close()
        servers.append(start_server(base / name, token))
    try:
        yield Hubs(servers[0], servers[1], model, single, odd, records[0], records[1])
    finally:
        for server in servers:
            server.stop()


def cids(record: VersionRecord, version: int) -> str:
    assert record.cids is not None
    root = record.cids.of(version)
    assert root is not None
    return root


# CIDs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_helia_unixfs_with_kubo_parameters_gives_aiprovs_cids_for_a_directory(tmp_path: Path, version: int) -> None:
    model = write_model(tmp_path / "m", FILES)
    ours = local_cids(model, version)
    theirs = helia_add(model, version)
    assert theirs["root"] == ours.cid
    assert theirs["files"] == dict(ours.files)


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 174 * CHUNK_SIZE + 1])
def test_helia_unixfs_with_kubo_parameters_gives_aiprovs_cid_for_a_file(
    tmp_path: Path, size: int, version: int
) -> None:
    path = tmp_path / "f.bin"
    with open(path, "wb") as f:
        for piece in kubo_random(size, f"file-{size}"):
            f.write(piece)
    assert helia_add(path, version)["root"] == local_cids(path, version).cid


# aiprov's gateway and CARs read by Helia -------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_verified_fetch_gets_byte_identical_files_from_aiprovs_gateway(
    hubs: Hubs, tmp_path: Path, version: int
) -> None:
    out = tmp_path / "out"
    verified_fetch(hubs.a.base_url, out, cids(hubs.record, version), sorted(FILES))
    same_tree(hubs.model, out)
    verified_fetch(hubs.a.base_url, tmp_path / "one", cids(hubs.single_record, version), [])
    assert (tmp_path / "one" / "file").read_bytes() == (hubs.single / "clf.bin").read_bytes()


@pytest.mark.parametrize("version", [0, 1])
def test_aiprov_car_imported_into_helia_has_the_same_root_and_bytes(hubs: Hubs, tmp_path: Path, version: int) -> None:
    car = tmp_path / "m.car"
    code, _, err = cli(hubs.a.home, "ipfs", "export", "alice/m", str(car), "--cid-version", str(version))
    assert code == 0, err
    assert helia_import(car, tmp_path / "out") == [cids(hubs.record, version)]
    same_tree(hubs.model, tmp_path / "out")


# aiprov fetching from Helia and from another hub -----------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_ipfs_get_from_a_helia_gateway_rebuilds_identical_files(hubs: Hubs, tmp_path: Path, version: int) -> None:
    with helia_server("serve", str(version), str(hubs.model)) as helia:
        assert helia.root == cids(hubs.record, version)
        code, _out, err = cli(tmp_path / "nohome", "ipfs", "get", helia.root, str(tmp_path / "out"), "-g", helia.url)
    assert code == 0, err
    assert err == ""
    same_tree(hubs.model, tmp_path / "out")
    assert not (tmp_path / "nohome").exists()  # no aiprov home is needed, or made


def test_pull_from_ipfs_from_a_helia_gateway_checks_the_hubs_manifest(hubs: Hubs, tmp_path: Path) -> None:
    with helia_server("serve", "1", str(hubs.model)) as helia:
        doc = pull_json(hubs, tmp_path / "out", "--from-ipfs", helia.url, "--cid-version", "1")
    assert doc["ref"] == "alice/m@1" and doc["root"] == cids(hubs.record, 1)
    assert doc["digest"] == str(hubs.record.manifest.digest) and doc["checked_against"] == "hub manifest"
    assert doc["skipped"] == []
    same_tree(hubs.model, tmp_path / "out")


def pull_json(hubs: Hubs, dest: Path, *args: str, ref: str = "alice/m") -> dict[str, object]:
    code, out, err = cli(hubs.a.home, "pull", ref, str(dest), *args, "--json")
    assert code == 0, err
    doc: dict[str, object] = json.loads(out)
    return doc


@pytest.mark.parametrize("version", [0, 1])
def test_pull_from_ipfs_from_a_second_hubs_gateway(hubs: Hubs, tmp_path: Path, version: int) -> None:
    pull_json(hubs, tmp_path / "dir", "--from-ipfs", hubs.b.base_url, "--cid-version", str(version))
    same_tree(hubs.model, tmp_path / "dir")
    code, out, err = cli(hubs.a.home, "verify", "alice/m", "--path", str(tmp_path / "dir"), "--json")
    assert code == 0, err  # the copy from IPFS checks out against the log end to end
    assert all(check["ok"] for check in json.loads(out)["checks"])
    doc = pull_json(hubs, tmp_path / "one", "--from-ipfs", hubs.b.base_url, ref="alice/single")
    assert doc["written"] == ["clf.bin"]  # a one-file model's DAG root carries no name: the manifest's is used
    same_tree(hubs.single, tmp_path / "one")


@pytest.mark.parametrize("version", [0, 1])
def test_pull_from_ipfs_rebuilds_files_whose_leaves_arrive_out_of_the_manifests_order(
    hubs: Hubs, tmp_path: Path, version: int
) -> None:
    # Helia sends the DAG depth-first: a/b's leaves before a.txt's, and the zero chunk once for four places.
    with helia_server("serve", str(version), str(hubs.odd)) as helia:
        doc = pull_json(
            hubs, tmp_path / "out", "--from-ipfs", helia.url, "--cid-version", str(version), ref="alice/odd"
        )
    assert doc["written"] == ["a.txt", "a/b", "zeros.bin"]
    same_tree(hubs.odd, tmp_path / "out")  # nothing else either: no spool or scratch file left in DEST


def test_ipfs_get_of_a_file_writes_dest_slash_cid(hubs: Hubs, tmp_path: Path) -> None:
    cid = cids(hubs.single_record, 0)
    code, _, err = cli(tmp_path, "ipfs", "get", cid, str(tmp_path / "out"), "-g", hubs.b.base_url)
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == [cid]
    assert (tmp_path / "out" / cid).read_bytes() == (hubs.single / "clf.bin").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the spool became the file


def test_pull_from_ipfs_refuses_a_cid_row_that_disagrees_with_the_log(hubs: Hubs, tmp_path: Path) -> None:
    home = tmp_path / "home"
    container, _ = init_home(home)
    push(container, hubs.model, "alice/m")
    container.close()
    other = cids(hubs.single_record, 0)  # a DAG every gateway here serves: only the log tells it is not alice/m
    with sqlite3.connect(home / "registry.db") as db:
        db.execute("UPDATE versions SET cid_v0 = ?", (other,))
    code, _, err = cli(home, "pull", "alice/m", str(tmp_path / "out"), "--from-ipfs", hubs.b.base_url)
    assert code == 6, err
    assert "refused to pull" in err and "a CID was altered" in err
    assert not (tmp_path / "out").exists()


def test_a_dag_of_other_files_than_the_manifest_is_refused_and_nothing_is_written(hubs: Hubs, tmp_path: Path) -> None:
    from aiprov.errors import VerificationError
    from aiprov.services.ipfs_fetch import Expected, fetch

    other = write_model(tmp_path / "other", {**FILES, "w/weights.bin": FILES["w/weights.bin"][:-1] + b"!"})
    wrong_size = Expected(manifest=hash_model(other))
    wrong_paths = Expected(manifest=hash_model(hubs.odd))
    root = Cid.parse(cids(hubs.record, 0))
    with pytest.raises(VerificationError, match=r"w/weights.bin differs"):
        fetch(root, tmp_path / "a", [hubs.b.base_url], expected=wrong_size)
    with pytest.raises(VerificationError, match=r"a.txt is missing.*config.json is not in the registered model"):
        fetch(root, tmp_path / "b", [hubs.b.base_url], expected=wrong_paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_pull_from_ipfs_into_an_existing_directory_keeps_right_files_and_refuses_other_ones(
    hubs: Hubs, tmp_path: Path
) -> None:
    dest = write_model(tmp_path / "dest", {"config.json": FILES["config.json"], "w/weights.bin": b"old", "mine": b"m"})
    kept = (dest / "config.json").stat().st_ino
    code, _, err = cli(hubs.a.home, "pull", "alice/m", str(dest), "--from-ipfs", hubs.b.base_url)
    assert code == 2 and "exists with other content" in err
    assert (dest / "w/weights.bin").read_bytes() == b"old"
    doc = pull_json(hubs, dest, "--from-ipfs", hubs.b.base_url, "--force")
    assert doc["written"] == ["empty.txt", "w/deep/one.bin", "w/weights.bin"]  # config.json was right already
    assert (dest / "config.json").stat().st_ino == kept and (dest / "mine").read_bytes() == b"m"
    (dest / "mine").unlink()
    same_tree(hubs.model, dest)  # and no spool or scratch file left in it


def test_ipfs_get_from_a_raw_blocks_only_gateway(hubs: Hubs, tmp_path: Path) -> None:
    with helia_server("serve", "0", str(hubs.model), "--raw-only") as helia:
        code, out, err = cli(tmp_path, "ipfs", "get", helia.root, str(tmp_path / "out"), "-g", helia.url, "--json")
    assert code == 0, err
    assert json.loads(out)["skipped"] == []  # refusing CARs (406) is no fault: every block then came raw
    same_tree(hubs.model, tmp_path / "out")


# gateways that lie or stall ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_a_gateway_sending_one_altered_block_is_skipped_and_the_next_one_serves(
    hubs: Hubs, tmp_path: Path, version: int
) -> None:
    with helia_server("serve", str(version), str(hubs.model), "--alter") as liar:
        altered = liar.info["altered"]
        assert altered
        # The lie is real: Helia's gateway sends bytes that do not hash to the CID.
        raw = httpx.get(f"{liar.url}/ipfs/{altered}?format=raw").content
        assert raw and hashlib.sha256(raw).digest() != _digest(altered)
        code, out, err = cli(
            hubs.a.home, "pull", "alice/m", str(tmp_path / "out"), "--from-ipfs", liar.url,
            "--from-ipfs", hubs.b.base_url, "--cid-version", str(version), "--json",
        )  # fmt: skip
    assert code == 0, err
    assert err == ""  # under --json the skip is in the document, not a warning line
    [skipped] = json.loads(out)["skipped"]
    assert skipped["gateway"] == liar.url and skipped["altered"] is True
    assert skipped["reason"] == f"sent block {altered} with bytes that do not hash to its CID (altered)"
    same_tree(hubs.model, tmp_path / "out")
    with helia_server("serve", str(version), str(hubs.model), "--alter") as liar:
        code, _, err = cli(
            tmp_path, "ipfs", "get", liar.root, str(tmp_path / "got"), "-g", liar.url, "-g", hubs.b.base_url
        )
    assert code == 0, err
    assert err.strip() == f"warning: gateway {liar.url} skipped: {skipped['reason']}"  # one line, by a human
    same_tree(hubs.model, tmp_path / "got")


def _digest(cid: str) -> bytes:
    return Cid.parse(cid).digest


def test_a_gateway_padding_its_car_past_what_the_model_can_hold_is_skipped(hubs: Hubs, tmp_path: Path) -> None:
    total = hubs.record.manifest.total_size
    limit = total + total // 64 + (1 << 20) + 1024 * len(hubs.record.manifest.entries)
    blocks = (limit - total) // CHUNK_SIZE + 2  # the real DAG plus these is over the limit; the DAG alone is not
    with helia_server("serve", "0", str(hubs.model), "--pad", str(blocks)) as padder:
        code, out, err = cli(
            hubs.a.home, "pull", "alice/m", str(tmp_path / "out"), "--from-ipfs", padder.url,
            "--from-ipfs", hubs.b.base_url, "--json",
        )  # fmt: skip
    assert code == 0, err
    [skipped] = json.loads(out)["skipped"]
    assert skipped["gateway"] == padder.url and f"sent more than the {limit} bytes" in skipped["reason"]
    same_tree(hubs.model, tmp_path / "out")
    with helia_server("serve", "0", str(hubs.model), "--pad", "1") as padder:  # one stray block is tolerated
        doc = pull_json(hubs, tmp_path / "one", "--from-ipfs", padder.url)
    assert doc["skipped"] == []
    same_tree(hubs.model, tmp_path / "one")


def test_only_lying_gateways_is_an_integrity_error_and_nothing_is_written(hubs: Hubs, tmp_path: Path) -> None:
    with helia_server("serve", "0", str(hubs.model), "--alter") as liar:
        code, _, err = cli(tmp_path, "ipfs", "get", liar.root, str(tmp_path / "out"), "-g", liar.url, "--json")
    assert code == 5, err
    problem = json.loads(err.strip().splitlines()[-1])
    assert problem["code"] == "integrity_failure" and liar.info["altered"] in problem["detail"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no DEST, no spool, no staging left


def test_a_stalled_gateway_is_skipped_after_the_timeout(hubs: Hubs, tmp_path: Path) -> None:
    with stalled_gateway() as stalled:
        code, _out, err = cli(
            tmp_path, "ipfs", "get", cids(hubs.record, 0), str(tmp_path / "out"), "-g", stalled,
            "-g", hubs.b.base_url, "--timeout", "1",
        )  # fmt: skip
    assert code == 0, err
    assert err.strip() == f"warning: gateway {stalled} skipped: stalled: no answer within 1 s"
    same_tree(hubs.model, tmp_path / "out")


def test_a_gateway_that_trickles_bytes_but_completes_no_block_is_skipped(hubs: Hubs, tmp_path: Path) -> None:
    root = Cid.parse(cids(hubs.record, 0))
    # A valid CAR header, then the length of a 1 MiB section whose bytes never come (a zero byte every 0.2 s).
    start = car.header([root]) + varint(1 << 20)
    with stalled_gateway(trickle=start) as trickling:
        code, _, err = cli(
            tmp_path, "ipfs", "get", str(root), str(tmp_path / "out"), "-g", trickling,
            "-g", hubs.b.base_url, "--timeout", "1",
        )  # fmt: skip
    assert code == 0, err
    assert err.strip() == f"warning: gateway {trickling} skipped: stalled: no block arrived within 1 s"
    same_tree(hubs.model, tmp_path / "out")


def test_pull_from_ipfs_against_a_server(hubs: Hubs, tmp_path: Path) -> None:
    code, out, err = cli(
        tmp_path, "--server", hubs.a.base_url, "pull", "alice/m", str(tmp_path / "out"),
        "--from-ipfs", hubs.b.base_url, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["digest"] == str(hubs.record.manifest.digest)  # the manifest came from hub a's API
    same_tree(hubs.model, tmp_path / "out")


def test_no_gateway_left_is_a_backend_error_naming_each_and_nothing_is_written(hubs: Hubs, tmp_path: Path) -> None:
    with stalled_gateway() as stalled:
        code, _, err = cli(
            tmp_path, "ipfs", "get", cids(hubs.record, 0), str(tmp_path / "out"), "-g", stalled, "--timeout", "0.5"
        )
    assert code == 8, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: no gateway could serve block") and stalled in last
    assert not (tmp_path / "out").exists()


# proofs without the hub ------------------------------------------------------------------------------------


@pytest.fixture
def signed(hubs: Hubs, tmp_path: Path) -> tuple[Path, Path]:
    """A model-signing bundle over the model's files and the signer's public key, made without any hub."""
    private_pem, public_pem = signing.generate_key_pair()
    key = signing.private_key_from_pem(private_pem)
    bundle = tmp_path / "m.sig"
    bundle.write_bytes(signing.sign_manifest(hash_model(hubs.model), "alice/m", key))
    public = tmp_path / "k.pub"
    public.write_bytes(public_pem)
    return bundle, public


def test_pull_by_cid_with_a_signed_bundle_needs_no_hub(hubs: Hubs, tmp_path: Path, signed: tuple[Path, Path]) -> None:
    bundle, public = signed
    with helia_server("serve", "0", str(hubs.model)) as helia:
        code, out, err = cli(
            tmp_path / "nohome", "pull", helia.root, str(tmp_path / "out"), "--from-ipfs", helia.url,
            "--bundle", str(bundle), "--public-key", str(public), "--json",
        )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["checked_against"] == "bundle"
    same_tree(hubs.model, tmp_path / "out")
    assert not (tmp_path / "nohome").exists()


def test_pull_by_cid_of_other_files_than_the_bundle_signs_writes_nothing(
    hubs: Hubs, tmp_path: Path, signed: tuple[Path, Path]
) -> None:
    bundle, public = signed
    other = write_model(tmp_path / "other", {**FILES, "config.json": b'{"layers": 3}'})
    with helia_server("serve", "0", str(other)) as helia:
        code, _, err = cli(
            tmp_path, "pull", helia.root, str(tmp_path / "out"), "--from-ipfs", helia.url,
            "--bundle", str(bundle), "--public-key", str(public),
        )  # fmt: skip
    assert code == 6, err
    assert "config.json" in err and "changed" in err
    assert not (tmp_path / "out").exists()


# pinning on a real node -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_pin_on_a_helia_node_through_the_kubo_rpc_routes(hubs: Hubs, tmp_path: Path, version: int) -> None:
    from aiprov.config import load_container

    container = load_container(hubs.a.home)
    try:
        with helia_server("rpc") as rpc:
            result = IpfsService(container.registry, api_url=rpc.url).pin("alice/m", version)
            assert result.cid == cids(hubs.record, version) and result.via == "kubo" and result.status == "pinned"
            listed = httpx.post(f"{rpc.url}/api/v0/pin/ls", params={"arg": result.cid})
            assert listed.status_code == 200 and result.cid in listed.json()["Keys"]
            unpinned = httpx.post(f"{rpc.url}/api/v0/pin/ls", params={"arg": cids(hubs.single_record, version)})
            assert unpinned.status_code == 500  # the node answers for what it holds, not for anything asked
            code, _, err = cli(tmp_path, "ipfs", "get", result.cid, str(tmp_path / "out"), "-g", rpc.url)
        assert code == 0, err
        same_tree(hubs.model, tmp_path / "out")
    finally:
        container.close()
