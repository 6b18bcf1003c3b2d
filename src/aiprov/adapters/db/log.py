"""The transparency log in the registry database: an RFC 9162 Merkle tree stored as C2SP tlog-tiles.

Appends happen inside the caller's transaction, so an event and the state change it records commit together or
not at all, and they are serialized by the write lock every write unit takes (see `SqlRegistry.unit`).

The storage *is* the tiles a tiles client reads: `log_bundles` holds entry bundles of 256 entries and `log_tiles`
hash tiles of 256 hashes at node levels 0, 8, 16, …; the rightmost bundle and tile of each level are partial and
grow in place. An append of n entries hashes each leaf once and each new interior node once (a level at a time,
`merkle.extend_levels`) and writes about n/256 rows, not n. A proof needs O(log n) complete subtrees; each is
read from one tile (at most two tiles per tile level, one query in all) and the levels between tile levels are
recomputed from at most 128 hashes of a tile, so a proof costs a few hundred hash operations at any log size.
SQL is sent through the driver (`exec_driver_sql`): the ORM's per-row bookkeeping would cost more than the work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Dialect, Table, select

from aiprov.adapters.db.schema import LogCheckpointRow, LogStateRow
from aiprov.core import tiles
from aiprov.core.merkle import HASH_SIZE, CompactRange, Node, extend_levels, leaf_hash, node_hash
from aiprov.errors import BackendError, InvalidInput, NotFound

WIDTH = tiles.TILE_WIDTH
HEIGHT = tiles.TILE_HEIGHT

state_t = cast(Table, LogStateRow.__table__)
checkpoints_t = cast(Table, LogCheckpointRow.__table__)


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


class DriverSql(Protocol):
    """What appending needs of a connection: SQL sent as is, and the dialect (parameter style, column types).

    A SQLAlchemy `Connection` is one; so is `registry.DriverConnection`, over the DBAPI connection itself.
    """

    @property
    def dialect(self) -> Dialect: ...

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any: ...


def placeholders(conn: DriverSql, n: int) -> str:
    """`n` parameter markers in the driver's style, comma-separated (for `exec_driver_sql`)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


def _damaged(what: str) -> BackendError:
    return BackendError(f"the log store is damaged: {what}", hint="restore the database from a backup")


# appending ----------------------------------------------------------------------------------------------------


def append(conn: DriverSql, entries: Sequence[bytes]) -> int:
    """Append `entries` as leaves; return the index of the first.

    Runs in (and commits only with) `conn`'s transaction, which must be a write unit's. Raises InvalidInput for
    an empty batch or an entry over 65,535 bytes (the tlog-tiles entry limit).
    """
    if not entries:
        raise InvalidInput("nothing to append")
    if any(len(e) > tiles.MAX_ENTRY_SIZE for e in entries):
        raise InvalidInput(f"a log entry is limited to {tiles.MAX_ENTRY_SIZE} bytes")
    # The state row is read and written as driver SQL: building and compiling the two Core statements cost as
    # much CPU as the rest of a one-event append (the usage recorder appends hundreds of batches a second).
    lock = "" if conn.dialect.name == "sqlite" else " FOR UPDATE"  # SQLite: the write unit holds the lock already
    stored_size, stored_edge = conn.exec_driver_sql(f"SELECT size, edge FROM log_state WHERE id = 1{lock}").one()
    first = int(stored_size)
    leaves = [leaf_hash(e) for e in entries]
    levels, new_edge = extend_levels(first, _split(stored_edge), leaves)

    bundle_rows = _grow(
        conn, "SELECT data FROM log_bundles WHERE idx = {m}", first, [len(e).to_bytes(2, "big") + e for e in entries]
    )
    tile_rows: list[tuple[int, int, bytes]] = []
    for tile_level, node_level in enumerate(range(0, len(levels), HEIGHT)):
        start = first >> node_level
        query = f"SELECT hashes FROM log_tiles WHERE level = {tile_level} AND idx = {{m}}"
        tile_rows += [(tile_level, idx, data) for idx, data in _grow(conn, query, start, levels[node_level])]
    _upsert(conn, "log_bundles (idx, data)", "(idx)", "data", bundle_rows)
    _upsert(conn, "log_tiles (level, idx, hashes)", "(level, idx)", "hashes", tile_rows)
    conn.exec_driver_sql(
        f"UPDATE log_state SET size = {placeholders(conn, 1)}, edge = {placeholders(conn, 1)} WHERE id = 1",
        (first + len(entries), b"".join(new_edge)),
    )
    return first


def _grow(conn: DriverSql, query: str, start: int, items: list[bytes]) -> list[tuple[int, bytes]]:
    """Rows (index, data) for `items` at positions start… of 256-item groups; the first may extend a stored one."""
    if not items:
        return []
    rows: list[tuple[int, bytes]] = []
    offset = start % WIDTH
    prefix = b""
    if offset:
        stored = conn.exec_driver_sql(query.format(m=placeholders(conn, 1)), (start // WIDTH,)).scalar_one_or_none()
        if stored is None:
            raise _damaged(f"the partial group {start // WIDTH} of {query.split()[3]} is missing")
        prefix = bytes(stored)
    head = WIDTH - offset
    rows.append((start // WIDTH, prefix + b"".join(items[:head])))
    for i in range(head, len(items), WIDTH):
        rows.append(((start + i) // WIDTH, b"".join(items[i : i + WIDTH])))
    return rows


def _upsert(conn: DriverSql, target: str, key: str, column: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        width = len(rows[0])
        conn.exec_driver_sql(
            f"INSERT INTO {target} VALUES ({placeholders(conn, width)}) "
            f"ON CONFLICT {key} DO UPDATE SET {column} = excluded.{column}",
            list(rows),
        )


# reading ------------------------------------------------------------------------------------------------------


def size(conn: Connection) -> int:
    return int(conn.execute(select(state_t.c.size).where(state_t.c.id == 1)).scalar_one())


def edge(conn: Connection) -> CompactRange:
    """The current tree's right edge (its root is the current root)."""
    state = conn.execute(select(state_t.c.size, state_t.c.edge).where(state_t.c.id == 1)).one()
    return CompactRange(state.size, _split(state.edge))


def _fetch(conn: Connection, table: str, columns: str, keys: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], bytes]:
    """Rows of `table` by primary key, in one statement of primary-key lookups."""
    if not keys:
        return {}
    key_columns = columns.split(", ")[:-1]
    one = " AND ".join(f"{c} = {placeholders(conn, 1)}" for c in key_columns)
    where = " OR ".join(f"({one})" for _ in keys)
    params = tuple(v for k in keys for v in k)
    rows = conn.exec_driver_sql(f"SELECT {columns} FROM {table} WHERE {where}", params)
    return {tuple(r[:-1]): bytes(r[-1]) for r in rows}


def _decode_bundle(data: bytes) -> list[bytes]:
    try:
        return tiles.decode_entry_bundle(data)
    except InvalidInput as e:
        raise _damaged(f"an entry bundle does not decode ({e.message})") from e


def entry(conn: Connection, index: int) -> tuple[bytes, bytes]:
    """(data, stored leaf hash) of entry `index`. Raises NotFound past the end of the log."""
    if not 0 <= index < size(conn):
        raise NotFound(f"the log has no entry {index} (its size is {size(conn)})")
    group, offset = divmod(index, WIDTH)
    bundle = _fetch(conn, "log_bundles", "idx, data", [(group,)]).get((group,))
    tile = _fetch(conn, "log_tiles", "level, idx, hashes", [(0, group)]).get((0, group))
    if bundle is None or tile is None:
        raise _damaged(f"entry {index} is missing")
    items = _decode_bundle(bundle)
    if len(items) <= offset or len(tile) < (offset + 1) * HASH_SIZE:
        raise _damaged(f"entry {index} is missing")
    return items[offset], tile[offset * HASH_SIZE : (offset + 1) * HASH_SIZE]


def entries(conn: Connection, start: int, stop: int) -> list[bytes]:
    """The data of entries [start, stop), in order."""
    if start >= stop:
        return []
    groups = range(start // WIDTH, (stop - 1) // WIDTH + 1)
    found = _fetch(conn, "log_bundles", "idx, data", [(g,) for g in groups])
    out: list[bytes] = []
    for g in groups:
        if (g,) not in found:
            raise _damaged(f"entry bundle {g} is missing")
        out += _decode_bundle(found[(g,)])
    offset = start - groups[0] * WIDTH
    if len(out) < stop - groups[0] * WIDTH:
        raise _damaged(f"entries before {stop} are missing")
    return out[offset : offset + stop - start]


def nodes(conn: Connection, wanted: Iterable[Node]) -> dict[Node, bytes]:
    """Hashes of the given complete subtrees, from the tiles that hold them (one query).

    A node at level `8t + s` is the root of 2**s consecutive hashes of tile level t, recomputed here.
    Raises BackendError if the tiles do not hold it.
    """
    plan: dict[Node, tuple[int, int, int, int]] = {}
    for level, index in wanted:
        tile_level, sub = divmod(level, HEIGHT)
        first = index << sub
        plan[(level, index)] = (tile_level, first // WIDTH, first % WIDTH, sub)
    keys = sorted({(t, i) for t, i, _, _ in plan.values()})
    found = _fetch(conn, "log_tiles", "level, idx, hashes", keys)
    out: dict[Node, bytes] = {}
    for node, (tile_level, tile_index, offset, sub) in plan.items():
        data = found.get((tile_level, tile_index), b"")
        end = (offset + (1 << sub)) * HASH_SIZE
        if len(data) < end:
            raise _damaged(f"subtree {node} is not in tile {tile_level}/{tile_index}")
        hashes = _split(data[offset * HASH_SIZE : end])
        for _ in range(sub):
            hashes = [node_hash(hashes[k], hashes[k + 1]) for k in range(0, len(hashes), 2)]
        out[node] = hashes[0]
    return out


def tile(conn: Connection, level: int, index: int, width: int) -> bytes:
    """The first `width` hashes of hash tile `level`/`index`, as tlog-tiles serves them."""
    data = _fetch(conn, "log_tiles", "level, idx, hashes", [(level, index)]).get((level, index), b"")
    if len(data) < width * HASH_SIZE:
        raise NotFound(f"tile {level}/{index} has fewer than {width} hashes")
    return data[: width * HASH_SIZE]


def bundle(conn: Connection, index: int, width: int) -> list[bytes]:
    """The first `width` entries of entry bundle `index`."""
    data = _fetch(conn, "log_bundles", "idx, data", [(index,)]).get((index,))
    items = [] if data is None else _decode_bundle(data)
    if len(items) < width:
        raise NotFound(f"entry bundle {index} has fewer than {width} entries")
    return items[:width]


# the log's key and checkpoints --------------------------------------------------------------------------------


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
