"""C2SP tlog-tiles: tile and entry-bundle paths, which tiles a tree has, and their byte encodings.

A tile at level L, index N holds up to 256 consecutive Merkle hashes at tree level 8*L: nodes
`(8*L, N*256 + i)` in `aiprov.core.merkle` terms, so a store serves tiles straight from its stored complete
subtrees. The rightmost tile of each level is partial (`.p/<W>`, 1 to 255 hashes) until it fills.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from aiprov.core.merkle import HASH_SIZE
from aiprov.errors import InvalidInput

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF  # an entry's length is a big-endian uint16

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_INDEX = re.compile(r"(?:x[0-9]{3}/)*[0-9]{3}")


def _check_width(width: int) -> None:
    if not 1 <= width <= TILE_WIDTH:
        raise InvalidInput(f"tile width must be 1 to {TILE_WIDTH}, not {width}")


def encode_index(n: int) -> str:
    """Encode a tile index as zero-padded 3-digit path elements, all but the last prefixed with `x`.

    1234067 -> `x001/x234/067`; 5 -> `005`. Raises InvalidInput for a negative index.
    """
    if n < 0:
        raise InvalidInput(f"tile index must be non-negative, not {n}")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def parse_index(text: str) -> int:
    """Decode an `encode_index` path; raises InvalidInput unless it is exactly the canonical encoding."""
    if not _INDEX.fullmatch(text) or text.startswith("x000"):
        raise InvalidInput(f"malformed tile index {text!r}", hint="expected e.g. x001/x234/067")
    return int(text.replace("x", "").replace("/", ""))


def _suffix(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


@dataclass(frozen=True, slots=True, order=True)
class Tile:
    """Merkle tile `level`/`index` with `width` hashes (256 for a full tile)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_LEVEL:
            raise InvalidInput(f"tile level must be 0 to {MAX_LEVEL}, not {self.level}")
        if self.index < 0:
            raise InvalidInput(f"tile index must be non-negative, not {self.index}")
        _check_width(self.width)

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """`tile/<L>/<N>[.p/<W>]`, relative to the log's prefix."""
        return f"tile/{self.level}/{encode_index(self.index)}{_suffix(self.width)}"

    @property
    def node_level(self) -> int:
        """The Merkle tree level of the hashes in this tile."""
        return self.level * TILE_HEIGHT

    @property
    def first_node(self) -> int:
        """The Merkle node index, at `node_level`, of the tile's first hash."""
        return self.index * TILE_WIDTH


@dataclass(frozen=True, slots=True, order=True)
class EntryBundle:
    """Entry bundle `index` with `width` entries: the entries under level-0 tile `index`."""

    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.index < 0:
            raise InvalidInput(f"entry bundle index must be non-negative, not {self.index}")
        _check_width(self.width)

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """`tile/entries/<N>[.p/<W>]`, relative to the log's prefix."""
        return f"tile/entries/{encode_index(self.index)}{_suffix(self.width)}"

    @property
    def first_entry(self) -> int:
        """The leaf index of the bundle's first entry."""
        return self.index * TILE_WIDTH


def parse_path(path: str) -> Tile | EntryBundle:
    """Parse `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` (no prefix, no leading slash).

    Only canonical spellings are accepted, so each resource has one URL. Raises InvalidInput otherwise.
    """
    head, sep, rest = path.partition("/")
    kind, sep2, rest = rest.partition("/")
    if head != "tile" or not sep or not sep2:
        raise InvalidInput(f"not a tile path: {path!r}")
    index_text, dot_p, width_text = rest.partition(".p/")
    width = TILE_WIDTH
    if dot_p:
        # `.p/256` would be a second name for the full tile.
        if not _WIDTH.fullmatch(width_text) or int(width_text) >= TILE_WIDTH:
            raise InvalidInput(f"malformed partial tile width {width_text!r} in {path!r}")
        width = int(width_text)
    index = parse_index(index_text)
    if kind == "entries":
        return EntryBundle(index, width)
    if not _LEVEL.fullmatch(kind):
        raise InvalidInput(f"malformed tile level {kind!r} in {path!r}")
    return Tile(int(kind), index, width)


def _level_shape(size: int, level: int) -> tuple[int, int]:
    """Return (full tiles, partial tile width or 0) at tile `level` for a tree of `size` leaves."""
    hashes = size >> (TILE_HEIGHT * level)
    return hashes >> TILE_HEIGHT, hashes & (TILE_WIDTH - 1)


def tiles_for_size(size: int, previous_size: int = 0) -> list[Tile]:
    """List the tiles a tree of `size` leaves has and one of `previous_size` leaves lacks, by level and index.

    With `previous_size=0` that is every tile of the tree; otherwise it is what a log publishes as it grows.
    Raises InvalidInput unless 0 <= previous_size <= size.
    """
    if not 0 <= previous_size <= size:
        raise InvalidInput(f"tree sizes must satisfy 0 <= previous size <= size, not {previous_size} and {size}")
    tiles: list[Tile] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        full, partial = _level_shape(size, level)
        old_full, old_partial = _level_shape(previous_size, level)
        tiles.extend(Tile(level, n) for n in range(old_full, full))
        if partial and (full, partial) != (old_full, old_partial):
            tiles.append(Tile(level, full, partial))
        level += 1
    return tiles


def entry_bundles_for_size(size: int, previous_size: int = 0) -> list[EntryBundle]:
    """List the entry bundles a tree of `size` leaves has and one of `previous_size` leaves lacks.

    Raises InvalidInput unless 0 <= previous_size <= size.
    """
    if not 0 <= previous_size <= size:
        raise InvalidInput(f"tree sizes must satisfy 0 <= previous size <= size, not {previous_size} and {size}")
    full, partial = _level_shape(size, 0)
    old_full, old_partial = _level_shape(previous_size, 0)
    bundles = [EntryBundle(n) for n in range(old_full, full)]
    if partial and (full, partial) != (old_full, old_partial):
        bundles.append(EntryBundle(full, partial))
    return bundles


def encode_tile(hashes: Iterable[bytes]) -> bytes:
    """Concatenate 1 to 256 hashes into a tile; raises InvalidInput for a wrong count or hash length."""
    batch = list(hashes)
    _check_width(len(batch))
    if any(len(h) != HASH_SIZE for h in batch):
        raise InvalidInput(f"tile hashes must have {HASH_SIZE} bytes")
    return b"".join(batch)


def decode_tile(data: bytes, width: int = TILE_WIDTH) -> list[bytes]:
    """Split a tile of `width` hashes; raises InvalidInput unless `data` is that many 32-byte hashes."""
    _check_width(width)
    if len(data) != width * HASH_SIZE:
        raise InvalidInput(f"a tile of width {width} has {width * HASH_SIZE} bytes, not {len(data)}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Encode 1 to 256 entries, each prefixed by its big-endian uint16 length.

    Raises InvalidInput for a wrong count or an entry longer than 65535 bytes.
    """
    batch = list(entries)
    _check_width(len(batch))
    parts: list[bytes] = []
    for i, entry in enumerate(batch):
        if len(entry) > MAX_ENTRY_SIZE:
            raise InvalidInput(f"entry {i} has {len(entry)} bytes; a bundle entry holds at most {MAX_ENTRY_SIZE}")
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(entry)
    return b"".join(parts)


def decode_entry_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """Decode an entry bundle; when `width` is given, require exactly that many entries.

    Raises InvalidInput for a truncated entry, an empty or over-full bundle, or a count other than `width`.
    """
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + 2 > end:
            raise InvalidInput(f"entry bundle is truncated inside the length of entry {len(entries)}")
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + length > end:
            raise InvalidInput(f"entry bundle is truncated inside entry {len(entries)}")
        entries.append(data[pos : pos + length])
        pos += length
    _check_width(len(entries))
    if width is not None and len(entries) != width:
        raise InvalidInput(f"entry bundle has {len(entries)} entries, not the expected {width}")
    return entries
