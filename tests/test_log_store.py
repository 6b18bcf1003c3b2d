"""The durable log (SQLite and PostgreSQL): what it stores proves what the pure core says it must."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from tests.conftest import MakeModel

from aiprov.adapters.db import log
from aiprov.config import Container
from aiprov.core import merkle
from aiprov.core.checkpoint import Checkpoint
from aiprov.core.events import Event
from aiprov.core.tiles import TILE_WIDTH, decode_entry_bundle, decode_tile
from aiprov.errors import VerificationError
from aiprov.services.registry import PushRequest
from aiprov.services.transparency import open_checkpoint


def append_batches(hub: Container, sizes: list[int]) -> list[bytes]:
    entries: list[bytes] = []
    for n in sizes:
        batch = [f"entry {len(entries) + i}".encode() for i in range(n)]
        with hub.db.unit(write=True) as u:
            assert log.append(u.conn, batch) == len(entries)
        entries += batch
    return entries


def test_every_proof_from_the_store_verifies(hub: Container) -> None:
    rng = random.Random(7)
    entries = append_batches(hub, [1, 2, 5, 1, 64, 3, 300, 17])
    leaves = [merkle.leaf_hash(e) for e in entries]
    n = len(entries)
    for size in [1, 2, 3, 8, 9, 100, 257, n]:
        assert hub.log.root(size) == merkle.root_from_leaf_hashes(leaves[:size])
    for _ in range(60):
        size = rng.randint(1, n)
        index = rng.randrange(size)
        proof = hub.log.inclusion(index, size)
        assert proof.leaf_hash == leaves[index]
        merkle.verify_inclusion(leaves[index], index, size, proof.hashes, merkle.root_from_leaf_hashes(leaves[:size]))
        size1 = rng.randint(1, size)
        cproof = hub.log.consistency(size1, size)
        merkle.verify_consistency(size1, size, cproof.hashes, merkle.root_from_leaf_hashes(leaves[:size1]), proof.root)


def test_proofs_across_tile_levels_verify(hub: Container) -> None:
    """Past 65,536 leaves, proofs read three tile levels (node levels 0, 8 and 16)."""
    rng = random.Random(11)
    entries = append_batches(hub, [1, 255, 30_000, 1, 40_000, 200])
    leaves = [merkle.leaf_hash(e) for e in entries]
    n = len(entries)
    root = merkle.root_from_leaf_hashes(leaves)
    assert hub.log.root(n) == root
    for index in [0, 255, 256, 65_535, 65_536, n - 1, *rng.sample(range(n), 20)]:
        merkle.verify_inclusion(leaves[index], index, n, hub.log.inclusion(index, n).hashes, root)
    for size1 in [1, 256, 65_536, 65_537, *rng.sample(range(1, n), 10)]:
        proof = hub.log.consistency(size1, n)
        merkle.verify_consistency(size1, n, proof.hashes, merkle.root_from_leaf_hashes(leaves[:size1]), root)
    with hub.db.unit() as u:
        assert log.entries(u.conn, 65_530, 65_540) == entries[65_530:65_540]


def test_a_proof_for_another_leaf_never_verifies(hub: Container) -> None:
    append_batches(hub, [40])
    proof = hub.log.inclusion(5, 40)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(merkle.leaf_hash(b"entry 6"), 5, 40, proof.hashes, proof.root)


def test_every_registry_event_is_a_log_leaf_and_checkpoints_follow(hub: Container, make_model: MakeModel) -> None:
    hub.registry.push(make_model({"w": b"1"}), PushRequest("alice/m"))
    hub.registry.alias("alice/m@1", "prod")
    hub.registry.pull("alice/m", make_model({"other": b""}) / "out")
    events = list(reversed(hub.registry.usage("alice/m")))
    assert hub.log.size() == len(events) == 3
    for i, e in enumerate(events):
        _, _, logged = hub.log.entry(i)
        assert (logged.action, logged.subject, logged.details) == (e.action, e.subject, e.details)
    checkpoint = open_checkpoint(hub.log.latest().note, hub.log.verifier)
    assert checkpoint.size == 3 and checkpoint.origin == hub.log.origin


def test_checkpoint_signed_by_another_key_is_refused(hub: Container, make_model: MakeModel) -> None:
    from aiprov.core.note import Signer, sign_note

    hub.registry.push(make_model({"w": b"1"}), PushRequest("alice/m"))
    real = open_checkpoint(hub.log.latest().note, hub.log.verifier)
    forged = sign_note(Checkpoint(real.origin, real.size, real.root_hash).to_body(), [Signer.generate(real.origin)])
    with pytest.raises(VerificationError, match="no"):
        open_checkpoint(forged, hub.log.verifier)


def test_concurrent_writers_keep_one_contiguous_log(
    make_container, database_url: str | None, make_model: MakeModel, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = make_container(database_url)
    hubs = [first] + [Container(first.settings.model_copy(update={"actor": f"w{i}"})) for i in range(2)]
    models = [[make_model({"w": f"{h}-{i}".encode()}) for i in range(6)] for h in range(3)]
    errors: list[BaseException] = []

    def work(h: int) -> None:
        try:
            for i, root in enumerate(models[h]):
                hubs[h].registry.push(root, PushRequest(f"alice/m{i % 2}"))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(h,)) for h in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    size = first.log.size()
    assert size == 18
    entries = [first.log.entry(i)[0] for i in range(size)]
    assert len({Event.from_entry(e).subject for e in entries}) == 18
    leaves = [merkle.leaf_hash(e) for e in entries]
    assert first.log.root(size) == merkle.root_from_leaf_hashes(leaves)
    assert sorted(v.number for v in first.registry.versions("alice/m0")) == list(range(1, 10))
    for h in hubs[1:]:
        h.close()


def test_exported_tiles_rebuild_the_signed_root(hub: Container, tmp_path: Path) -> None:
    entries = append_batches(hub, [TILE_WIDTH + 3, 40])
    signed, written = hub.log.export_tiles(tmp_path / "tiles")
    size = signed.checkpoint.size
    assert size == len(entries)
    assert (tmp_path / "tiles" / "checkpoint").read_text() == signed.note
    full = decode_tile((tmp_path / "tiles/tile/0/000").read_bytes())
    partial = decode_tile((tmp_path / "tiles/tile/0/001.p/43").read_bytes(), 43)
    assert merkle.root_from_leaf_hashes(full + partial) == signed.checkpoint.root_hash
    level1 = decode_tile((tmp_path / "tiles/tile/1/000.p/1").read_bytes(), 1)
    assert level1 == [merkle.root_from_leaf_hashes(full)]
    bundle = decode_entry_bundle((tmp_path / "tiles/tile/entries/000").read_bytes())
    assert bundle == entries[:TILE_WIDTH]
    assert hub.log.export_tiles(tmp_path / "tiles")[1] == 1  # only the checkpoint is rewritten
    assert written == 6
