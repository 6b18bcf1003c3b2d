"""C2SP tlog-tiles: paths, which tiles a tree has, how tiles relate to stored subtrees, and encodings."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiprov.core.merkle import CompactRange, leaf_hash, root_from_leaf_hashes
from aiprov.core.tiles import (
    TILE_WIDTH,
    EntryBundle,
    Tile,
    decode_entry_bundle,
    decode_tile,
    encode_entry_bundle,
    encode_index,
    encode_tile,
    entry_bundles_for_size,
    parse_index,
    parse_path,
    tiles_for_size,
)
from aiprov.errors import InvalidInput

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent.parent / "vectors" / "tlog.json").read_text())
TILES = VECTORS["tiles"]


@pytest.mark.parametrize("case", TILES["index_paths"], ids=lambda c: str(c["n"]))
def test_index_encoding_matches_published_vector(case: dict[str, Any]) -> None:
    assert encode_index(case["n"]) == case["path"]
    assert parse_index(case["path"]) == case["n"]


@pytest.mark.parametrize(
    ("n", "path"), [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (10**9, "x001/x000/x000/000")]
)
def test_index_is_three_digit_groups_with_x_on_all_but_the_last(n: int, path: str) -> None:
    assert encode_index(n) == path
    assert parse_index(path) == n


def test_tree_of_70000_has_the_tiles_the_spec_lists() -> None:
    want = TILES["tree_70000"]
    tiles = tiles_for_size(70000)
    full = Counter(t.level for t in tiles if not t.is_partial)
    partial = {t.level: t.width for t in tiles if t.is_partial}
    assert full == {0: want["level0_full"], 1: want["level1_full"]}
    assert partial == {
        0: want["level0_partial_width"],
        1: want["level1_partial_width"],
        2: want["level2_partial_width"],
    }


def test_tree_of_256_has_one_full_tile_and_a_partial_level_1_tile() -> None:
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles_for_size(0) == []


def test_paths_follow_the_spec() -> None:
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(2, 5, 17).path == "tile/2/005.p/17"
    assert EntryBundle(1234067, 112).path == "tile/entries/x001/x234/067.p/112"
    assert EntryBundle(0).path == "tile/entries/000"


tiles = st.builds(
    Tile,
    st.integers(min_value=0, max_value=63),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=1, max_value=TILE_WIDTH),
)
bundles = st.builds(
    EntryBundle, st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=TILE_WIDTH)
)


@given(st.one_of(tiles, bundles))
def test_every_path_parses_back_to_its_resource(resource: Tile | EntryBundle) -> None:
    assert parse_path(resource.path) == resource


@pytest.mark.parametrize(
    "path",
    [
        "tile/00/000",
        "tile/64/000",
        "tile/0/0",
        "tile/0/0000",
        "tile/0/x000/001",
        "tile/0/001/002",
        "tile/0/x1/002",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/007",
        "tile/0/000.p/",
        "tile/0/000.p/1/",
        "tile/-1/000",
        "tile/entries",
        "tile/entries/",
        "tile/entries/x001",
        "tiles/0/000",
        "/tile/0/000",
        "tile/a/000",
    ],
)
def test_non_canonical_paths_are_rejected(path: str) -> None:
    with pytest.raises(InvalidInput):
        parse_path(path)


sizes = st.integers(min_value=0, max_value=2**20)


@given(sizes, sizes)
def test_tiles_for_a_grown_tree_are_exactly_the_new_ones(a: int, b: int) -> None:
    previous, size = sorted((a, b))
    assert set(tiles_for_size(size, previous)) == set(tiles_for_size(size)) - set(tiles_for_size(previous))
    new_bundles = set(entry_bundles_for_size(size)) - set(entry_bundles_for_size(previous))
    assert set(entry_bundles_for_size(size, previous)) == new_bundles


@given(sizes)
def test_tiles_cover_every_leaf_exactly_once_per_level(size: int) -> None:
    for level in range(6):
        covered = sum(t.width for t in tiles_for_size(size) if t.level == level) << (8 * level)
        assert covered == size - size % (1 << (8 * level))
    bundles = entry_bundles_for_size(size)
    assert sum(b.width for b in bundles) == size
    assert all(b.first_entry == i * TILE_WIDTH for i, b in enumerate(bundles))


def test_shrinking_is_refused() -> None:
    with pytest.raises(InvalidInput):
        tiles_for_size(5, 6)
    with pytest.raises(InvalidInput):
        entry_bundles_for_size(5, 6)


def test_tiles_are_served_from_stored_subtrees_and_hash_into_the_level_above() -> None:
    size = 70000
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    store = {(level, index): h for level, index, h in CompactRange().extend(leaves)}
    content = {
        tile: decode_tile(
            encode_tile(store[(tile.node_level, tile.first_node + i)] for i in range(tile.width)), tile.width
        )
        for tile in tiles_for_size(size)
    }
    assert content[Tile(0, 3)] == leaves[3 * 256 : 4 * 256]
    for tile, hashes in content.items():
        if tile.level > 0:
            for i, h in enumerate(hashes):
                below = content[Tile(tile.level - 1, tile.first_node + i)]
                assert h == root_from_leaf_hashes(below)


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=TILE_WIDTH))
def test_entry_bundle_round_trips(entries: list[bytes]) -> None:
    assert decode_entry_bundle(encode_entry_bundle(entries), len(entries)) == entries


def test_entry_bundle_is_uint16_length_prefixed() -> None:
    assert encode_entry_bundle([b"abc", b""]) == b"\x00\x03abc\x00\x00"
    assert decode_entry_bundle(b"\x00\x03abc\x00\x00") == [b"abc", b""]
    assert decode_entry_bundle(encode_entry_bundle([b"x" * 65535])) == [b"x" * 65535]


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda: encode_entry_bundle([b"x" * 65536]), "at most 65535"),
        (lambda: encode_entry_bundle([]), "width"),
        (lambda: encode_entry_bundle([b""] * 257), "width"),
        (lambda: decode_entry_bundle(b"\x00\x03ab"), "truncated inside entry 0"),
        (lambda: decode_entry_bundle(b"\x00\x01a\x00"), "truncated inside the length of entry 1"),
        (lambda: decode_entry_bundle(b""), "width"),
        (lambda: decode_entry_bundle(b"\x00\x01a", 2), "not the expected 2"),
        (lambda: encode_tile([b"x" * 31]), "32 bytes"),
        (lambda: encode_tile([]), "width"),
        (lambda: decode_tile(b"x" * 64, 3), "96 bytes, not 64"),
        (lambda: Tile(0, 0, 0), "width"),
        (lambda: Tile(64, 0), "level"),
        (lambda: encode_index(-1), "non-negative"),
    ],
)
def test_malformed_tiles_and_bundles_are_rejected(call: Any, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        call()
