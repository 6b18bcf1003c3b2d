"""The transparency log in the registry database (RFC 9162 Merkle tree).

Appends happen inside the caller's transaction, so an event and the state change it records commit together or
not at all. They are serialized: SQLite transactions begin IMMEDIATE (one writer), PostgreSQL locks the single
`log_state` row FOR UPDATE. Each append stores the entry with its leaf hash and every interior subtree it
completes, and the tree's right edge; proofs and roots of any size then read O(log n) stored nodes and nothing
is ever recomputed from the leaves. The hot path uses the driver's executemany with plain tuples: the ORM's
per-row bookkeeping would cost more than the hashing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Connection, Table, select, tuple_

from aiprov.adapters.db.schema import LogCheckpointRow, LogEntryRow, LogNodeRow, LogStateRow
from aiprov.core.merkle import HASH_SIZE, CompactRange, Node, leaf_hash
from aiprov.errors import BackendError, InvalidInput, NotFound

entries_t = cast(Table, LogEntryRow.__table__)
nodes_t = cast(Table, LogNodeRow.__table__)
state_t = cast(Table, LogStateRow.__table__)
checkpoints_t = cast(Table, LogCheckpointRow.__table__)


def _split_edge(edge: bytes) -> list[bytes]:
    return [edge[i : i + HASH_SIZE] for i in range(0, len(edge), HASH_SIZE)]


def _placeholders(conn: Connection, n: int) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


def append(conn: Connection, entries: Sequence[bytes]) -> int:
    """Append `entries` as leaves; return the index of the first.

    Runs in (and commits only with) `conn`'s transaction, which must be a write unit's.
    """
    if not entries:
        raise InvalidInput("nothing to append")
    state = conn.execute(select(state_t.c.size, state_t.c.edge).where(state_t.c.id == 1).with_for_update()).one()
    edge = CompactRange(state.size, _split_edge(state.edge))
    first = int(state.size)
    hashes = [leaf_hash(e) for e in entries]
    completed = edge.extend(hashes)
    conn.exec_driver_sql(
        f"INSERT INTO log_entries (idx, leaf_hash, data) VALUES ({_placeholders(conn, 3)})",
        [(first + i, h, e) for i, (h, e) in enumerate(zip(hashes, entries, strict=True))],
    )
    interior = [n for n in completed if n[0] > 0]
    if interior:
        conn.exec_driver_sql(f"INSERT INTO log_nodes (level, idx, hash) VALUES ({_placeholders(conn, 3)})", interior)
    conn.execute(state_t.update().where(state_t.c.id == 1).values(size=edge.size, edge=b"".join(edge.hashes)))
    return first


def size(conn: Connection) -> int:
    return int(conn.execute(select(state_t.c.size).where(state_t.c.id == 1)).scalar_one())


def edge(conn: Connection) -> CompactRange:
    """The current tree's right edge (its root is the current root)."""
    state = conn.execute(select(state_t.c.size, state_t.c.edge).where(state_t.c.id == 1)).one()
    return CompactRange(state.size, _split_edge(state.edge))


def entry(conn: Connection, index: int) -> tuple[bytes, bytes]:
    """(data, leaf hash) of entry `index`. Raises NotFound past the end of the log."""
    row = conn.execute(select(entries_t.c.data, entries_t.c.leaf_hash).where(entries_t.c.idx == index)).one_or_none()
    if row is None:
        raise NotFound(f"the log has no entry {index} (its size is {size(conn)})")
    return bytes(row.data), bytes(row.leaf_hash)


def entries(conn: Connection, start: int, stop: int) -> list[bytes]:
    """The data of entries [start, stop), in order."""
    rows = conn.execute(
        select(entries_t.c.data).where(entries_t.c.idx >= start, entries_t.c.idx < stop).order_by(entries_t.c.idx)
    ).scalars()
    return [bytes(r) for r in rows]


def nodes(conn: Connection, wanted: Iterable[Node]) -> dict[Node, bytes]:
    """Hashes of the given complete subtrees, in at most two queries. Raises BackendError if one is missing."""
    wanted = list(wanted)
    leaves = [i for level, i in wanted if level == 0]
    interior = [(level, i) for level, i in wanted if level > 0]
    found: dict[Node, bytes] = {}
    if leaves:
        for idx, h in conn.execute(select(entries_t.c.idx, entries_t.c.leaf_hash).where(entries_t.c.idx.in_(leaves))):
            found[(0, idx)] = bytes(h)
    if interior:
        query = select(nodes_t.c.level, nodes_t.c.idx, nodes_t.c.hash).where(
            tuple_(nodes_t.c.level, nodes_t.c.idx).in_(interior)
        )
        for level, idx, h in conn.execute(query):
            found[(level, idx)] = bytes(h)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise BackendError(f"the log store is damaged: subtree hashes {missing[:3]} are missing")
    return found


def level_hashes(conn: Connection, level: int, start: int, stop: int) -> list[bytes]:
    """Hashes of the complete subtrees [start, stop) at `level`, in order (for tiles)."""
    if level == 0:
        query = (
            select(entries_t.c.leaf_hash)
            .where(entries_t.c.idx >= start, entries_t.c.idx < stop)
            .order_by(entries_t.c.idx)
        )
    else:
        query = (
            select(nodes_t.c.hash)
            .where(nodes_t.c.level == level, nodes_t.c.idx >= start, nodes_t.c.idx < stop)
            .order_by(nodes_t.c.idx)
        )
    hashes = [bytes(h) for h in conn.execute(query).scalars()]
    if len(hashes) != stop - start:
        raise BackendError(f"the log store is damaged: level {level} lacks hashes in [{start}, {stop})")
    return hashes


def verifier_key(conn: Connection) -> str | None:
    value = conn.execute(select(state_t.c.verifier_key).where(state_t.c.id == 1)).scalar_one()
    return None if value is None else str(value)


def set_verifier_key(conn: Connection, vkey: str) -> None:
    conn.execute(state_t.update().where(state_t.c.id == 1).values(verifier_key=vkey))


def latest_checkpoint(conn: Connection) -> tuple[int, str] | None:
    """(size, signed note) of the newest checkpoint, or None before the first."""
    row = conn.execute(
        select(checkpoints_t.c.size, checkpoints_t.c.note).order_by(checkpoints_t.c.size.desc()).limit(1)
    ).one_or_none()
    return None if row is None else (int(row.size), str(row.note))


def add_checkpoint(conn: Connection, size: int, root_hash: bytes, note: str, time: object) -> None:
    conn.execute(checkpoints_t.insert().values(size=size, root_hash=root_hash, note=note, time=time))
