"""CAR export and import, checked with npm `ipfs-car` (unpack, pack) and against corrupted input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import MakeModel
from tests.ipfs.jstools import ipfs_car, js_cids
from tests.support.cli import cli, cli_json

from aiprov.config import Container
from aiprov.errors import IntegrityError, InvalidInput
from aiprov.services.registry import PushRequest


def model_files(make_model: MakeModel) -> Path:
    return make_model(
        {
            "config.json": b'{"layers": 3}',
            "weights/part-1.bin": bytes(range(256)) * 1500,  # 384,000 bytes: two chunks
            "weights/part-2.bin": b"\x07" * 1_000_000,  # identical leaves: each block once in the CAR
            "weights/empty": b"",
        }
    )


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


@pytest.mark.parametrize("version", [0, 1])
def test_exported_car_unpacks_with_ipfs_car_to_identical_files_and_the_same_root(
    home: Path, make_model: MakeModel, tmp_path: Path, version: int
) -> None:
    root = model_files(make_model)
    cli_json(home, "push", str(root), "--name", "alice/m")
    out = tmp_path / "m.car"
    exported = cli_json(home, "ipfs", "export", "alice/m", str(out), "--cid-version", str(version))
    assert exported["root"] == js_cids(root, version)["root"]
    roots = ipfs_car("roots", str(out))
    assert roots.returncode == 0, roots.stderr
    assert roots.stdout.split() == [exported["root"]]
    unpacked = ipfs_car("unpack", str(out), "--output", str(tmp_path / "unpacked"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert same_tree(root, tmp_path / "unpacked")
    blocks = ipfs_car("blocks", str(out))
    assert blocks.returncode == 0, blocks.stderr
    listed = blocks.stdout.split()
    assert len(listed) == len(set(listed))  # each block once, though part-2.bin repeats one leaf


def test_single_file_exports_the_file_node_as_root(home: Path, make_model: MakeModel, tmp_path: Path) -> None:
    file = model_files(make_model) / "weights" / "part-1.bin"
    cli_json(home, "push", str(file), "--name", "alice/one")
    out = tmp_path / "one.car"
    exported = cli_json(home, "ipfs", "export", "alice/one", str(out))
    assert exported["root"] == js_cids(file, 0)["root"]
    unpacked = ipfs_car("unpack", str(out), "--output", str(tmp_path / "one.bin"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "one.bin").read_bytes() == file.read_bytes()


def test_car_made_by_ipfs_car_pack_imports_like_a_push(home: Path, make_model: MakeModel, tmp_path: Path) -> None:
    root = model_files(make_model)
    car = tmp_path / "packed.car"
    packed = ipfs_car("pack", str(root), "--output", str(car))  # CIDv1, raw leaves, 1 MiB chunks
    assert packed.returncode == 0, packed.stderr
    imported = cli_json(home, "ipfs", "import", str(car), "--name", "alice/packed")
    assert imported["car_root"] == ipfs_car("roots", str(car)).stdout.strip()
    pushed = cli_json(home, "push", str(root), "--name", "alice/pushed")
    assert imported["digest"] == pushed["digest"]  # the same files, byte for byte
    assert imported["scan"]["verdict"] == pushed["scan"]["verdict"]
    assert imported["cid_v1"] == js_cids(root, 1)["root"]


def test_own_export_imports_back_to_the_same_version_and_cid(home: Path, make_model: MakeModel, tmp_path: Path) -> None:
    root = model_files(make_model)
    pushed = cli_json(home, "push", str(root), "--name", "alice/m")
    car = tmp_path / "m.car"
    cli_json(home, "ipfs", "export", "alice/m", str(car), "--cid-version", "1")
    imported = cli_json(home, "ipfs", "import", str(car), "--name", "bob/copy")
    assert imported["digest"] == pushed["digest"]
    assert imported["same_cid"] is True and imported["car_root"] == pushed["cid_v1"]
    events = cli_json(home, "usage", "bob/copy")
    assert [e["action"] for e in events["events"]] == ["push"]


def test_corrupted_block_is_refused_and_nothing_is_registered(
    home: Path, make_model: MakeModel, tmp_path: Path
) -> None:
    root = model_files(make_model)
    cli_json(home, "push", str(root), "--name", "alice/m")
    car = tmp_path / "m.car"
    cli_json(home, "ipfs", "export", "alice/m", str(car))
    data = bytearray(car.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside some leaf's bytes
    bad = tmp_path / "bad.car"
    bad.write_bytes(bytes(data))
    code, _, err = cli(home, "ipfs", "import", str(bad), "--name", "alice/bad")
    assert code == IntegrityError.exit_code
    assert "does not hash to its CID" in err and "\n" not in err.strip()
    assert cli(home, "show", "alice/bad")[0] != 0
    listed = cli_json(home, "ls")
    assert [m["name"] for m in listed] == ["alice/m"]


def test_truncated_car_and_other_files_are_refused_clearly(home: Path, tmp_path: Path) -> None:
    not_car = tmp_path / "x.car"
    not_car.write_bytes(b"hello, I am not a CAR file at all")
    code, _, err = cli(home, "ipfs", "import", str(not_car), "--name", "alice/x")
    assert code == InvalidInput.exit_code and "CAR" in err


def test_ipfs_cid_of_a_path_and_of_a_ref_agree_with_js(home: Path, make_model: MakeModel) -> None:
    root = model_files(make_model)
    local = cli_json(home, "ipfs", "cid", str(root), "--cid-version", "1")
    js = js_cids(root, 1)
    assert local["cid"] == js["root"]
    assert {f["path"]: f["cid"] for f in local["files"]} == js["files"]
    cli_json(home, "push", str(root), "--name", "alice/m")
    registered = cli_json(home, "ipfs", "cid", "alice/m", "--cid-version", "1")
    assert registered["cid"] == local["cid"] and registered["files"] == local["files"]
    single = cli_json(home, "ipfs", "cid", str(root / "config.json"))
    assert single["cid"] == js_cids(root / "config.json", 0)["root"]
    assert single["files"] == [{"path": "config.json", "cid": single["cid"]}]


def test_show_prints_both_cids(home: Path, make_model: MakeModel) -> None:
    root = model_files(make_model)
    cli_json(home, "push", str(root), "--name", "alice/m")
    shown = cli_json(home, "show", "alice/m")
    assert shown["cid_v0"] == js_cids(root, 0)["root"] and shown["cid_v1"] == js_cids(root, 1)["root"]
    code, out, _ = cli(home, "show", "alice/m")
    assert code == 0 and shown["cid_v0"] in out and shown["cid_v1"] in out


def test_versions_without_recorded_cids_get_them_on_first_use(
    hub: Container, make_model: MakeModel, tmp_path: Path
) -> None:
    from sqlalchemy import update

    from aiprov.adapters.db.schema import VersionFileRow, VersionRow

    root = model_files(make_model)
    pushed = hub.registry.push(root, PushRequest(name="alice/old"))
    with hub.db.unit(write=True) as u:  # as a row migrated from schema 0003 looks
        u.s.execute(update(VersionRow).values(cid_v0=None, cid_v1=None))
        u.s.execute(update(VersionFileRow).values(cid_v0=None, cid_v1=None))
    assert hub.registry.show("alice/old")[1].cids is None
    report = hub.ipfs.of_ref("alice/old", 0)
    assert pushed.version.cids is not None and report.cid == pushed.version.cids.v0
    assert hub.registry.show("alice/old")[1].cids == pushed.version.cids


def test_push_without_cids_records_none(make_container, make_model: MakeModel) -> None:  # type: ignore[no-untyped-def]
    hub = make_container()
    hub.registry.cids = False
    pushed = hub.registry.push(model_files(make_model), PushRequest(name="alice/fast"))
    assert pushed.version.cids is None
    assert json.loads(json.dumps(pushed.to_json()))["cid_v0"] is None


@pytest.mark.slow
def test_sharded_directory_exports_unpacks_and_imports_back(home: Path, make_model: MakeModel, tmp_path: Path) -> None:
    files = {f"layer-{i:05d}-of-04000-with-a-long-name.bin": i.to_bytes(3, "big") for i in range(4000)}
    root = make_model({**files, "config.json": b"{}"})
    pushed = cli_json(home, "push", str(root), "--name", "alice/sharded")
    assert pushed["cid_v1"] == js_cids(root, 1)["root"]
    car = tmp_path / "sharded.car"
    cli_json(home, "ipfs", "export", "alice/sharded", str(car), "--cid-version", "1")
    unpacked = ipfs_car("unpack", str(car), "--output", str(tmp_path / "out"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert same_tree(root, tmp_path / "out")
    imported = cli_json(home, "ipfs", "import", str(car), "--name", "bob/sharded")
    assert imported["digest"] == pushed["digest"] and imported["same_cid"] is True


@pytest.mark.slow
def test_sharded_car_from_ipfs_car_pack_imports(home: Path, make_model: MakeModel, tmp_path: Path) -> None:
    root = make_model({f"f{i:04d}.bin": i.to_bytes(2, "big") for i in range(1200)})  # ipfs-car shards > 1,000
    car = tmp_path / "packed.car"
    packed = ipfs_car("pack", str(root), "--output", str(car))
    assert packed.returncode == 0, packed.stderr
    imported = cli_json(home, "ipfs", "import", str(car), "--name", "alice/packed")
    pushed = cli_json(home, "push", str(root), "--name", "alice/pushed")
    assert imported["digest"] == pushed["digest"]


def test_a_car_holding_git_metadata_is_refused_and_nothing_is_registered(
    home: Path, make_model: MakeModel, tmp_path: Path
) -> None:
    root = make_model({"m.json": b"{}", ".git/evil.pkl": b"cos\nsystem\n(S'touch pwned'\ntR."})
    car = tmp_path / "smuggled.car"
    packed = ipfs_car("pack", "--hidden", str(root), "--output", str(car))
    assert packed.returncode == 0, packed.stderr
    assert ".git/evil.pkl" in ipfs_car("ls", str(car)).stdout
    code, _, err = cli(home, "ipfs", "import", str(car), "--name", "mallory/smuggled")
    assert code == InvalidInput.exit_code and "git metadata" in err and len(err.strip().splitlines()) <= 2, err
    assert cli_json(home, "ls") == []
