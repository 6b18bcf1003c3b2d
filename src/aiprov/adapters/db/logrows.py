"""The transparency log's reads and checkpoints within a registry transaction (`SqlRegistryUnit`'s log part).

The SQL is in `aiprov.adapters.db.log`, whose functions take a connection; these methods give them the unit's, so
the log service depends on the `ports.LogUnit` interface rather than on a connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aiprov.adapters.db import log
from aiprov.adapters.db.unit import UnitBase
from aiprov.core.merkle import CompactRange, Node


class LogRows(UnitBase):
    """The log part of `SqlRegistryUnit`: the tree's entries, nodes, tiles and signed checkpoints."""

    def log_size(self) -> int:
        return log.size(self.conn)

    def log_edge(self) -> CompactRange:
        """The right edge of the tree: enough to compute its root and to append."""
        return log.edge(self.conn)

    def log_entry(self, index: int) -> tuple[bytes, bytes]:
        """(data, leaf hash) of entry `index`. Raises NotFound."""
        return log.entry(self.conn, index)

    def log_nodes(self, wanted: Iterable[Node]) -> dict[Node, bytes]:
        return log.nodes(self.conn, wanted)

    def log_tile(self, level: int, index: int, width: int) -> bytes:
        return log.tile(self.conn, level, index, width)

    def log_bundle(self, index: int, width: int) -> list[bytes]:
        return log.bundle(self.conn, index, width)

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """(size, signed note) of the newest checkpoint, if any."""
        return log.latest_checkpoint(self.conn)

    def add_checkpoint(self, size: int, root_hash: bytes, note: str, time: datetime) -> None:
        log.add_checkpoint(self.conn, size, root_hash, note, time)
