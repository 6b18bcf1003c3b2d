"""The registry contract: every test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import MakeModel

from aiprov.config import Container
from aiprov.errors import InvalidInput, NotFound
from aiprov.records import ModelFilter
from aiprov.services.registry import PushRequest


def blob_files(hub: Container) -> list[Path]:
    return [p for p in (hub.settings.blob_dir / "sha256").rglob("*") if p.is_file()]


def test_push_same_bytes_twice_stores_one_blob(hub: Container, make_model: MakeModel) -> None:
    root = make_model({"w.bin": b"\x00" * 1000, "cfg.json": b"{}"})
    first = hub.registry.push(root, PushRequest("alice/iris", description="iris"))
    again = hub.registry.push(make_model({"w.bin": b"\x00" * 1000, "cfg.json": b"{}"}), PushRequest("alice/iris"))
    assert (first.deduplicated, again.deduplicated) == (False, True)
    assert again.version.number == first.version.number == 1
    assert again.version.manifest.digest == first.version.manifest.digest
    assert (again.new_blobs, again.new_bytes) == (0, 0)
    assert len(blob_files(hub)) == 2
    assert [v.number for v in hub.registry.versions("alice/iris")] == [1]


def test_same_bytes_under_another_name_share_blobs(hub: Container, make_model: MakeModel) -> None:
    hub.registry.push(make_model({"w.bin": b"shared"}), PushRequest("alice/a"))
    other = hub.registry.push(make_model({"w.bin": b"shared"}), PushRequest("bob/b"))
    assert not other.deduplicated and other.new_blobs == 0
    assert len(blob_files(hub)) == 1


def test_one_byte_change_makes_a_new_version(hub: Container, make_model: MakeModel) -> None:
    v1 = hub.registry.push(make_model({"w.bin": b"abc"}), PushRequest("alice/m")).version
    v2 = hub.registry.push(make_model({"w.bin": b"abd"}), PushRequest("alice/m")).version
    assert (v1.number, v2.number) == (1, 2)
    assert v1.manifest.digest != v2.manifest.digest
    _, latest = hub.registry.show("alice/m")
    assert latest.number == 2


def test_nested_folders_and_empty_files_round_trip(hub: Container, make_model: MakeModel, tmp_path: Path) -> None:
    files = {"a/b/c.bin": b"deep", "a/empty": b"", "top.txt": b"top"}
    pushed = hub.registry.push(make_model(files), PushRequest("alice/nested")).version
    assert [e.path for e in pushed.manifest.entries] == ["a/b/c.bin", "a/empty", "top.txt"]
    hub.registry.pull("alice/nested@1", tmp_path / "out")
    assert {
        str(p.relative_to(tmp_path / "out")): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()
    } == files


def test_metadata_and_lineage_are_recorded(hub: Container, make_model: MakeModel) -> None:
    parent = hub.registry.push(make_model({"w": b"1"}), PushRequest("alice/base")).version
    child = hub.registry.push(
        make_model({"w": b"2"}),
        PushRequest(
            "alice/tuned",
            description="fine-tuned",
            license="MIT",
            tags=["nlp", "small"],
            parents=["alice/base@1"],
            datasets=["iris", "sha256:" + "ab" * 32],
            code_revision="deadbeef",
            params={"lr": "0.1"},
        ),
    ).version
    model, shown = hub.registry.show(str(child.manifest.digest)[:20])
    assert shown == child
    assert (model.description, model.license, model.tags) == ("fine-tuned", "MIT", ("nlp", "small"))
    assert shown.lineage.parents == (str(parent.manifest.digest),)
    assert shown.lineage.datasets == ("iris", "sha256:" + "ab" * 32)
    assert (shown.lineage.code_revision, shown.lineage.params, shown.author) == (
        "deadbeef",
        {"lr": "0.1"},
        "alice",
    )


def test_unknown_parent_is_refused_before_anything_is_stored(hub: Container, make_model: MakeModel) -> None:
    with pytest.raises(NotFound):
        hub.registry.push(make_model({"w": b"x"}), PushRequest("alice/m", parents=["alice/ghost"]))
    assert blob_files(hub) == []
    assert hub.registry.list(ModelFilter()) == []


def test_aliases_move_and_are_logged(hub: Container, make_model: MakeModel) -> None:
    hub.registry.push(make_model({"w": b"1"}), PushRequest("alice/m"))
    hub.registry.push(make_model({"w": b"2"}), PushRequest("alice/m"))
    assert hub.registry.alias("alice/m@1", "prod")[1] is None
    v, previous = hub.registry.alias("alice/m@2", "prod")
    assert (v.number, previous) == (2, 1)
    assert hub.registry.show("alice/m@prod")[1].number == 2
    alias_events = [e for e in hub.registry.usage("alice/m") if e.action == "alias"]
    assert [e.details["version"] for e in alias_events] == [2, 1]
    with pytest.raises(NotFound, match="no alias 'staging'"):
        hub.registry.show("alice/m@staging")


def test_list_filters(hub: Container, make_model: MakeModel, make_container) -> None:  # type: ignore[no-untyped-def]
    hub.registry.push(make_model({"w": b"1"}), PushRequest("alice/iris-tree", description="Iris tree", tags=["cls"]))
    hub.registry.push(make_model({"w": b"2"}), PushRequest("alice/digits", description="Digits"))
    bob = Container(hub.settings.model_copy(update={"actor": "bob"}))
    bob.registry.push(make_model({"w": b"3"}), PushRequest("bob/iris-forest", description="forest"))
    bob.close()

    def names(**kw: str) -> list[str]:
        return [m.full_name for m in hub.registry.list(ModelFilter(**kw))]

    assert names() == ["alice/digits", "alice/iris-tree", "bob/iris-forest"]
    assert names(author="bob") == ["bob/iris-forest"]
    assert names(name_glob="alice/*") == ["alice/digits", "alice/iris-tree"]
    assert names(name_glob="iris") == ["alice/iris-tree", "bob/iris-forest"]
    assert names(tag="cls") == ["alice/iris-tree"]
    assert names(search="DIGITS") == ["alice/digits"]
    assert names(name_glob="a_ice/*") == []  # '_' is literal, not a LIKE wildcard
    # `OWNER/*` is answered from the owner column: exactly what the name pattern matches, nothing more
    assert names(name_glob="alic/*") == [] and names(name_glob="alic*/*") == ["alice/digits", "alice/iris-tree"]
    assert names(name_glob="bob/*") == names(name_glob="bo?/*") == ["bob/iris-forest"]
    assert names(name_glob="Alice/*") == names(name_glob="ALICE/*")  # an invalid owner goes the LIKE way
    listed = hub.registry.list(ModelFilter(name_glob="alice/digits"))[0]
    assert listed.latest is not None and listed.latest.number == 1 and listed.version_count == 1


def test_a_page_of_models_counts_every_match_and_keeps_its_order(hub: Container, make_model: MakeModel) -> None:
    for i, name in enumerate(["alice/c", "alice/a", "bob/b", "alice/d"]):
        hub.registry.push(make_model({"w": b"%d" % i}), PushRequest(name, license="mit" if i % 2 else None))
    hub.registry.push(make_model({"w": b"again"}), PushRequest("alice/a"))  # alice/a: newest, and two versions

    def page(sort: str, offset: int = 0, limit: int = 2, **kw: str) -> tuple[int, list[str]]:
        listed = hub.registry.page(ModelFilter(**kw), sort=sort, offset=offset, limit=limit)
        return listed.total, [m.full_name for m in listed.models]

    assert page("name") == (4, ["alice/a", "alice/c"])
    assert page("name", offset=2) == (4, ["alice/d", "bob/b"])
    assert page("name", offset=4) == (4, [])
    assert page("updated", limit=4) == (4, ["alice/a", "alice/d", "bob/b", "alice/c"])
    assert page("versions", limit=1) == (4, ["alice/a"])
    assert page("name", owner="bob") == (1, ["bob/b"])
    assert page("name", license="mit", limit=5) == (2, ["alice/a", "alice/d"])
    assert page("name", scan="safe", limit=5) == (4, ["alice/a", "alice/c", "alice/d", "bob/b"])
    assert page("name", scan="unsupported") == (0, [])
    with pytest.raises(InvalidInput, match="cannot sort"):
        page("size")
    with pytest.raises(InvalidInput, match="non-negative"):
        page("name", offset=-1)


def test_children_are_the_versions_naming_a_parent(hub: Container, make_model: MakeModel) -> None:
    parent = hub.registry.push(make_model({"w": b"p"}), PushRequest("alice/p")).version
    digest = str(parent.manifest.digest)
    hub.registry.push(make_model({"w": b"c1"}), PushRequest("alice/c1", parents=[digest]))
    hub.registry.push(make_model({"w": b"c2"}), PushRequest("bob/c2", parents=[digest]))
    assert hub.registry.children(digest) == [("alice/c1", 1), ("bob/c2", 1)]
    assert hub.registry.children("sha256:" + "0" * 64) == []


def test_every_push_and_download_is_an_event(hub: Container, make_model: MakeModel, tmp_path: Path) -> None:
    root = make_model({"w": b"1"})
    v = hub.registry.push(root, PushRequest("alice/m")).version
    hub.registry.push(root, PushRequest("alice/m"))
    hub.registry.pull("alice/m", tmp_path / "out")
    events = hub.registry.usage("alice/m@1")
    assert [e.action for e in events] == ["download", "push", "push"]
    assert all(e.subject == str(v.manifest.digest) and e.actor == "alice" for e in events)
    assert [e.details["deduplicated"] for e in events[1:]] == [True, False]


def test_events_read_back_as_written_and_as_the_orm_writes_them(hub: Container) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import insert, select

    from aiprov.adapters.db.schema import EventRow
    from aiprov.core.events import Event

    when = datetime(2026, 11, 27, 10, 33, 41, 123456, tzinfo=UTC)
    details = {"version": 1, "n": 2**53 - 1, "name": "naïve ✓", "files": [{"path": "a/b", "size": 0}], "ok": True}
    events = [
        Event(when, "bob", "inference", "sha256:" + "ab" * 32, "alice/m", details),
        Event(when.astimezone(timezone(timedelta(hours=-5))), "carol", "download", "sha256:" + "cd" * 32, None, {}),
    ]
    with hub.db.unit(write=True) as u:
        first = u.add_events(events)
        # The same row through the ORM's Core insert: the driver-level insert must store what it stores.
        u.conn.execute(
            insert(EventRow),
            [
                {
                    "time": when,
                    "actor": "orm",
                    "action": "inference",
                    "subject": "x",
                    "model": None,
                    "details": details,
                    "leaf_index": -1,
                }
            ],
        )
    with hub.db.unit() as u:
        rows = {r.actor: r for r in u.s.scalars(select(EventRow))}
        raw = dict(u.conn.exec_driver_sql("SELECT actor, time FROM events").all())
    assert rows["bob"].leaf_index == first and rows["carol"].leaf_index == first + 1
    assert rows["bob"].details == details and rows["carol"].details == {} and rows["carol"].model is None
    for actor in ("bob", "carol"):
        back = rows[actor].time
        assert (back if back.tzinfo else back.replace(tzinfo=UTC)) == when
    assert type(raw["bob"]) is type(raw["orm"]) and raw["bob"] == raw["orm"]


def test_pull_refuses_to_overwrite_different_content(hub: Container, make_model: MakeModel, tmp_path: Path) -> None:
    hub.registry.push(make_model({"w": b"registered"}), PushRequest("alice/m"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "w").write_bytes(b"mine")
    with pytest.raises(InvalidInput, match="exists with other content"):
        hub.registry.pull("alice/m", out)
    assert (out / "w").read_bytes() == b"mine"
    hub.registry.pull("alice/m", out, force=True)
    assert (out / "w").read_bytes() == b"registered"


def test_ambiguous_and_unknown_refs(hub: Container, make_model: MakeModel) -> None:
    with pytest.raises(NotFound, match="no model named alice/none"):
        hub.registry.show("alice/none")
    hub.registry.push(make_model({"w": b"1"}), PushRequest("alice/m"))
    with pytest.raises(NotFound, match="has no version 7"):
        hub.registry.show("alice/m@7")
    with pytest.raises(NotFound):
        hub.registry.show("sha256:0000")


def test_commit_of_stored_blobs_registers_like_push_and_refuses_what_push_refuses(
    hub: Container, make_model: MakeModel
) -> None:
    import pickle

    from aiprov.core.manifest import Manifest, ManifestEntry
    from aiprov.errors import UnsafeModelError

    def store(files: dict[str, bytes]) -> Manifest:
        entries = []
        for path, data in files.items():
            w = hub.blobs.writer()
            w.write(data)
            digest, _ = w.commit()
            entries.append(ManifestEntry(path, len(data), digest))
        return Manifest.build(entries)

    files = {"a.txt": b"hello", "sub/b.bin": b"\x00" * 10}
    committed = hub.registry.commit(store(files), PushRequest(name="alice/m", description="d"))
    pushed = hub.registry.push(make_model(files), PushRequest(name="alice/m"))
    assert pushed.deduplicated and pushed.version.manifest.digest == committed.version.manifest.digest
    assert committed.scan.to_json() == pushed.scan.to_json()

    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            import os

            return (os.system, ("true",))

    with pytest.raises(UnsafeModelError) as refused:
        hub.registry.commit(store({"m.pkl": pickle.dumps(Evil())}), PushRequest(name="alice/evil"))
    assert refused.value.findings and hub.registry.usage("alice/evil")[0].action == "flagged"
    assert not [p for p in hub.settings.quarantine_dir.iterdir() if p.name.startswith(".")]
