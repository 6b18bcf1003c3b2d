"""The registry's CIDs on SQLite and PostgreSQL: recorded at push, found by CID, sharding-sized directories."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import MakeModel
from tests.ipfs.jstools import js_cids, kubo_names

from aiprov.config import Container
from aiprov.core.digest import Digest
from aiprov.core.manifest import Manifest, ManifestEntry
from aiprov.core.unixfs import Cid, FileCids, file_cid
from aiprov.errors import NotFound
from aiprov.services.registry import PushRequest, ipfs_cids


def test_push_records_the_cids_js_computes_and_the_gateway_finds_them(hub: Container, make_model: MakeModel) -> None:
    root = make_model({"a.bin": bytes(range(256)) * 1100, "d/b.txt": b"b"})
    record = hub.registry.push(root, PushRequest(name="alice/m")).version
    assert record.cids is not None
    for version in (0, 1):
        js = js_cids(root, version)
        assert record.cids.of(version) == js["root"]
        assert {p: pair[version] for p, pair in record.cids.files.items()} == js["files"]
    assert hub.registry.show("alice/m")[1].cids == record.cids
    assert [v.cids for v in hub.registry.versions("alice/m")] == [record.cids]
    found = hub.ipfs.locate(Cid.parse(record.cids.files["a.bin"][1]))
    assert (found.path, found.version, found.record.ref) == ("a.bin", 1, "alice/m@1")
    whole = hub.ipfs.locate(Cid.parse(str(record.cids.v0)))
    assert (whole.path, whole.version) == (None, 0)
    Cid.parse(str(record.cids.v0)).check(hub.ipfs.block(Cid.parse(str(record.cids.v0))))
    with pytest.raises(NotFound):
        hub.ipfs.locate(Cid.of(b"not here", 1))


def test_a_directory_kubo_shards_gets_kubos_hamt_cid() -> None:
    x = file_cid(b"x", 0)
    roots = FileCids(x, file_cid(b"x", 1))
    names = kubo_names(4033, 31, "hamt-unixfs-v0-2015")
    manifest = Manifest.build(ManifestEntry(n, 1, Digest.of(b"x")) for n in names)
    cids = ipfs_cids(manifest, dict.fromkeys(names, roots), single_file=False)
    assert cids.v0 == "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP"  # Kubo's cid_profiles_test.go vector
    assert len(cids.files) == 4033 and cids.files[names[0]] == (str(x.cid), str(roots.v1.cid))


def test_local_cids_of_a_path_need_no_home(tmp_path: Path) -> None:
    from aiprov.services.ipfs import local_cids

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w").write_bytes(b"w")
    report = local_cids(tmp_path / "m", 1)
    assert report.cid == js_cids(tmp_path / "m", 1)["root"]


def test_a_version_committed_from_uploaded_blobs_gets_the_same_cids(hub: Container, make_model: MakeModel) -> None:
    root = make_model({"a.bin": bytes(range(256)) * 1100, "d/b.txt": b"b"})
    pushed = hub.registry.push(root, PushRequest(name="alice/m")).version
    committed = hub.registry.commit(pushed.manifest, PushRequest(name="bob/m")).version  # blobs already stored
    assert committed.cids == pushed.cids
    assert hub.registry.show("bob/m")[1].cids == pushed.cids
