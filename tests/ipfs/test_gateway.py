"""`GET /ipfs/{cid}` answers as an IPFS Trustless Gateway: blocks and CARs a client verifies without trusting us."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.apitools import init_home
from tests.conftest import MakeModel
from tests.ipfs.jstools import ipfs_car

from aiprov.adapters.car_file import index_car
from aiprov.api import create_app
from aiprov.config import Container
from aiprov.core.unixfs import DAG_PB, Cid, decode_node
from aiprov.records import VersionRecord
from aiprov.services.registry import PushRequest

RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    c, _ = init_home(tmp_path / "home")
    yield c
    c.close()


@pytest.fixture
def client(container: Container) -> TestClient:
    return TestClient(create_app(container), raise_server_exceptions=False)


def push(container: Container, path: Path, name: str = "alice/m") -> VersionRecord:
    record = container.registry.push(path, PushRequest(name=name)).version
    assert record.cids is not None
    return record


@pytest.fixture
def model(make_model: MakeModel) -> Path:
    return make_model({"config.json": b'{"a": 1}', "w/weights.bin": bytes(range(256)) * 2000, "w/x": b"x"})


def test_raw_block_of_a_directory_verifies_and_lists_the_files(
    client: TestClient, container: Container, model: Path
) -> None:
    record = push(container, model)
    assert record.cids is not None and record.cids.v0 is not None
    r = client.get(f"/ipfs/{record.cids.v0}", headers={"Accept": RAW})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == RAW
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "public, max-age=29030400, immutable"
    assert r.headers["content-disposition"] == f'attachment; filename="{record.cids.v0}.bin"'
    assert r.headers["etag"] == f'"{record.cids.v0}.raw"'
    Cid.parse(record.cids.v0).check(r.content)
    node = decode_node(r.content)
    assert [link.name for link in node.links] == ["config.json", "w"]
    assert str(node.links[0].cid) == record.cids.files["config.json"][0]


@pytest.mark.parametrize("version", [0, 1])
def test_raw_block_of_a_file_by_format_parameter(
    client: TestClient, container: Container, model: Path, version: int
) -> None:
    record = push(container, model)
    assert record.cids is not None
    for path in ("config.json", "w/weights.bin"):
        cid = record.cids.files[path][version]
        r = client.get(f"/ipfs/{cid}?format=raw")
        assert r.status_code == 200, r.text
        assert hashlib.sha256(r.content).digest() == Cid.parse(cid).digest
    small = client.get(f"/ipfs/{record.cids.files['config.json'][1]}?format=raw")
    assert small.content == b'{"a": 1}'  # a CIDv1 small file is a raw leaf: the bytes themselves


@pytest.mark.parametrize("version", [0, 1])
def test_car_of_a_version_unpacks_with_ipfs_car(
    client: TestClient, container: Container, model: Path, tmp_path: Path, version: int
) -> None:
    record = push(container, model)
    assert record.cids is not None
    root = record.cids.of(version)
    r = client.get(f"/ipfs/{root}", headers={"Accept": CAR})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == f"{CAR}; version=1; order=unk; dups=n"
    assert r.headers["content-disposition"] == f'attachment; filename="{root}.car"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "public, max-age=29030400, immutable"
    car = tmp_path / "m.car"
    car.write_bytes(r.content)
    index = index_car(car)  # every block hashes to its CID
    assert [str(c) for c in index.roots] == [root]
    unpacked = ipfs_car("unpack", str(car), "--output", str(tmp_path / "out"))
    assert unpacked.returncode == 0, unpacked.stderr
    for path in ("config.json", "w/weights.bin", "w/x"):
        assert (tmp_path / "out" / path).read_bytes() == (model / path).read_bytes()


def test_car_of_one_file_and_dag_scope_block(client: TestClient, container: Container, model: Path) -> None:
    record = push(container, model)
    assert record.cids is not None
    cid = record.cids.files["w/weights.bin"][0]
    whole = client.get(f"/ipfs/{cid}?format=car")
    block = client.get(f"/ipfs/{cid}?format=car&dag-scope=block")
    assert whole.status_code == block.status_code == 200
    assert len(block.content) < 1000 < len(whole.content)
    assert whole.headers["etag"] != block.headers["etag"]


def test_cidv1_of_a_cidv0_root_names_the_same_block(client: TestClient, container: Container, model: Path) -> None:
    record = push(container, model)
    assert record.cids is not None and record.cids.v0 is not None
    v0 = Cid.parse(record.cids.v0)
    as_v1 = str(Cid(1, DAG_PB, v0.digest))
    r = client.get(f"/ipfs/{as_v1}?format=raw")
    assert r.status_code == 200
    assert hashlib.sha256(r.content).digest() == v0.digest


def test_unknown_cid_is_404_and_malformed_is_400(client: TestClient, container: Container, model: Path) -> None:
    push(container, model)
    unknown = str(Cid.of(b"nobody has this", 1))
    assert client.get(f"/ipfs/{unknown}?format=raw").status_code == 404
    assert client.get(f"/ipfs/{unknown}?format=car").status_code == 404
    assert client.get("/ipfs/not-a-cid?format=raw").status_code == 400
    assert client.get("/ipfs/QmNotAValidCidAtAll1111111111111111111111111111?format=raw").status_code == 400


def test_a_request_for_neither_raw_nor_car_is_400(client: TestClient, container: Container, model: Path) -> None:
    record = push(container, model)
    assert record.cids is not None
    assert client.get(f"/ipfs/{record.cids.v1}").status_code == 400
    assert client.get(f"/ipfs/{record.cids.v1}", headers={"Accept": "text/html"}).status_code == 400
    assert client.get(f"/ipfs/{record.cids.v1}?format=tar").status_code == 400


def test_etag_answers_304_and_head_has_no_body(client: TestClient, container: Container, model: Path) -> None:
    record = push(container, model)
    assert record.cids is not None
    url = f"/ipfs/{record.cids.v1}?format=raw"
    first = client.get(url)
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))


def test_anonymous_reads_off_needs_a_token(tmp_path: Path, make_model: MakeModel) -> None:
    from aiprov.config import Settings

    c, token = init_home(tmp_path / "closed")
    c.close()
    closed = Container(Settings(home=tmp_path / "closed", actor="root", anonymous_reads=False))
    try:
        record = push(closed, make_model({"a": b"a"}))
        assert record.cids is not None
        client = TestClient(create_app(closed), raise_server_exceptions=False)
        assert client.get(f"/ipfs/{record.cids.v0}?format=raw").status_code == 401
        authed = client.get(f"/ipfs/{record.cids.v0}?format=raw", headers={"Authorization": f"Bearer {token}"})
        assert authed.status_code == 200 and authed.content
    finally:
        closed.close()


def fetch_tree(client: TestClient, cid: Cid, out: dict[str, bytes], path: str = "") -> None:
    """A trustless client: fetch every block by CID alone (`?format=raw`), check it, and rebuild the files."""
    r = client.get(f"/ipfs/{cid}?format=raw")
    assert r.status_code == 200, (path, r.text)
    cid.check(r.content)  # the client trusts the hash, not the hub
    if cid.codec != DAG_PB:
        out[path] = out.get(path, b"") + r.content
        return
    node = decode_node(r.content)
    if node.kind == 1:  # directory
        for link in node.links:
            fetch_tree(client, link.cid, out, f"{path}/{link.name}" if path else link.name)
        return
    out[path] = out.get(path, b"") + node.data
    for link in node.links:
        fetch_tree(client, link.cid, out, path)


@pytest.mark.parametrize("version", [0, 1])
def test_a_trustless_client_fetches_every_block_by_cid_and_rebuilds_the_model(
    client: TestClient, container: Container, make_model: MakeModel, version: int
) -> None:
    files = {"config.json": b"{}", "w/a.bin": bytes(range(256)) * 3000, "w/empty": b""}
    record = push(container, make_model(files))
    assert record.cids is not None
    out: dict[str, bytes] = {}
    fetch_tree(client, Cid.parse(str(record.cids.of(version))), out)
    assert out == files


@pytest.mark.slow
def test_inner_nodes_of_a_two_level_file_are_served_and_their_cars_unpack(
    client: TestClient, container: Container, make_model: MakeModel, tmp_path: Path
) -> None:
    block = bytes(range(256)) * 1021
    data = (block * 181)[: 176 * 262_144 + 5]  # 177 leaves: the root has a full node and a 3-leaf node
    record = push(container, make_model({"big.bin": data}))
    assert record.cids is not None
    root = decode_node(client.get(f"/ipfs/{record.cids.files['big.bin'][0]}?format=raw").content)
    assert len(root.links) == 2
    second = root.links[1].cid
    raw = client.get(f"/ipfs/{second}?format=raw")
    assert raw.status_code == 200
    second.check(raw.content)
    assert len(decode_node(raw.content).links) == 3
    car = client.get(f"/ipfs/{second}?format=car")
    assert car.status_code == 200
    (tmp_path / "part.car").write_bytes(car.content)
    unpacked = ipfs_car("unpack", str(tmp_path / "part.car"), "--output", str(tmp_path / "part.bin"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "part.bin").read_bytes() == data[174 * 262_144 :]


def test_car_of_a_subdirectory_unpacks_to_its_files(
    client: TestClient, container: Container, model: Path, tmp_path: Path
) -> None:
    record = push(container, model)
    assert record.cids is not None
    root = decode_node(client.get(f"/ipfs/{record.cids.v1}?format=raw").content)
    sub = next(link.cid for link in root.links if link.name == "w")
    r = client.get(f"/ipfs/{sub}?format=car")
    assert r.status_code == 200
    (tmp_path / "w.car").write_bytes(r.content)
    unpacked = ipfs_car("unpack", str(tmp_path / "w.car"), "--output", str(tmp_path / "w"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert same_files(model / "w", tmp_path / "w")


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    return names == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )
