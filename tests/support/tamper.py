"""What a malicious operator could do to a hub's own database, for the tests that check `verify` catches it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from aiprov.adapters.db import log
from aiprov.config import Container, Settings


def rewrite_history(hub: Container | Path, index: int, new_entry: bytes) -> None:
    """An operator holding the log key: rebuild the whole tree with entry `index` changed, and sign it again.

    `hub` is a container, or a home (a container is opened on it and closed again).
    """
    if isinstance(hub, Path):
        opened = Container(Settings(home=hub))
        try:
            rewrite_history(opened, index, new_entry)
        finally:
            opened.close()
        return
    with hub.db.engine.begin() as conn:
        entries = log.entries(conn, 0, log.size(conn))
        for table in ("log_bundles", "log_tiles", "log_checkpoints"):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("UPDATE log_state SET size = 0, edge = :e"), {"e": b""})
    entries[index] = new_entry
    with hub.db.unit(write=True) as u:
        log.append(u.conn, entries)
    hub.log.publish()


def log_entry_bytes(home: Path, index: int) -> bytes:
    """The bytes of log entry `index` of the hub at `home`."""
    hub = Container(Settings(home=home))
    try:
        with hub.db.engine.connect() as conn:
            data, _ = log.entry(conn, index)
    finally:
        hub.close()
    return data
