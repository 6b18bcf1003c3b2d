"""aiprov's CIDs are Kubo's: compared with the JS UnixFS importer (configured as Kubo) and Kubo's own vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.ipfs.jstools import js_cids, kubo_names, kubo_random

from aiprov.core.unixfs import (
    CHUNK_SIZE,
    DIRECTORY_DATA,
    MAX_LINKS,
    Cid,
    DirEntry,
    FileBuilder,
    ShardingRequired,
    decode_node,
    directory_cid,
    encode_node,
    file_cid,
    file_tsize,
    leaf_span,
)

SIZES = [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * 1024 * 1024 + 12345]


def pattern(size: int) -> bytes:
    """Bytes that differ from chunk to chunk (a repeated pattern would make identical leaves)."""
    block = bytes(range(256)) * 1021  # 261,376 bytes: not a multiple of the chunk size, so chunks differ
    return (block * (size // len(block) + 1))[:size]


def dir_cids(root: Path, version: int) -> tuple[str, dict[str, str]]:
    entries = [
        DirEntry(p.relative_to(root).as_posix(), file_cid(p.read_bytes(), version))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]
    return str(directory_cid(entries, version).cid), {e.path: str(e.root.cid) for e in entries}


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", SIZES)
def test_file_cid_equals_js_importer_configured_as_kubo(tmp_path: Path, size: int, version: int) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(pattern(size))
    assert str(file_cid(path.read_bytes(), version).cid) == js_cids(path, version)["root"]


@pytest.mark.slow
@pytest.mark.parametrize("version", [0, 1])
def test_file_over_174_chunks_has_a_second_level_equal_to_js(tmp_path: Path, version: int) -> None:
    size = (MAX_LINKS + 2) * CHUNK_SIZE + 777  # 46.1 MB: 177 leaves under two nodes under the root
    path = tmp_path / "big.bin"
    path.write_bytes(pattern(size))
    builder = FileBuilder(version)
    with open(path, "rb") as f:
        while piece := f.read(4 * 1024 * 1024):
            builder.write(piece)
    root = builder.finish()
    assert str(root.cid) == js_cids(path, version)["root"]
    assert root.size == size and root.tsize == file_tsize(size, version)


@pytest.mark.parametrize("version", [0, 1])
def test_nested_directory_cid_equals_js_importer(make_model, version: int) -> None:  # type: ignore[no-untyped-def]
    root = make_model(
        {
            "config.json": b'{"a": 1}',
            "weights/part-1.bin": pattern(CHUNK_SIZE + 1),
            "weights/part-2.bin": pattern(700_000),
            "weights/deeper/empty": b"",
            "z/\u00e9t\u00e9.txt": b"summer",
            "Zebra": b"capital letters sort first",
        }
    )
    cid, files = dir_cids(root, version)
    js = js_cids(root, version)
    assert files == js["files"]
    assert cid == js["root"]


# Kubo's published vectors: test/cli/cid_profiles_test.go (ipfs/kubo), profile unixfs-v0-2015 (Kubo's default),
# and the raw-leaf small file that `--cid-version=1` also produces. Files come from Kubo's deterministic reader.
KUBO_SMALL_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"  # "hello world"
KUBO_SMALL_V1 = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"  # "hello world", raw leaf
KUBO_FILE_AT_MAX_LINKS = "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"  # 44544 KiB, seed "v0-seed"
KUBO_FILE_OVER_MAX_LINKS = "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf"  # 44800 KiB, seed "v0-seed"
KUBO_DIR_BASIC = "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN"  # 4096 files "x", 30-char names: at threshold
KUBO_DIR_HAMT = "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP"  # 4033 files "x", 31-char names: +1 byte, HAMT


def test_kubo_small_file_vectors() -> None:
    assert str(file_cid(b"hello world", 0).cid) == KUBO_SMALL_V0
    assert str(file_cid(b"hello world", 1).cid) == KUBO_SMALL_V1


@pytest.mark.parametrize(
    ("kib", "expected", "root_links"),
    [(44544, KUBO_FILE_AT_MAX_LINKS, 174), (44800, KUBO_FILE_OVER_MAX_LINKS, 2)],
)
def test_kubo_max_links_vectors(kib: int, expected: str, root_links: int) -> None:
    blocks: dict[Cid, bytes] = {}
    builder = FileBuilder(
        0, on_block=lambda cid, parts: blocks.__setitem__(cid, b"".join(parts)) if len(parts) == 1 else None
    )
    for piece in kubo_random(kib * 1024, "v0-seed"):
        builder.write(piece)
    root = builder.finish()
    assert str(root.cid) == expected
    assert len(decode_node(blocks[root.cid]).links) == root_links


def test_kubo_directory_at_the_sharding_threshold_stays_flat() -> None:
    x = file_cid(b"x", 0)
    names = kubo_names(4096, 30, "hamt-unixfs-v0-2015")  # 4096 * (30 + 34) = 262,144 bytes: not over
    assert str(directory_cid([DirEntry(n, x) for n in names], 0).cid) == KUBO_DIR_BASIC


def test_kubo_directory_one_byte_over_the_threshold_is_the_same_hamt() -> None:
    x = file_cid(b"x", 0)
    entries = [DirEntry(n, x) for n in kubo_names(4033, 31, "hamt-unixfs-v0-2015")]  # 4033 * 65 = 262,145
    assert str(directory_cid(entries, 0).cid) == KUBO_DIR_HAMT
    with pytest.raises(ShardingRequired, match="sharding threshold"):
        directory_cid(entries, 0, shard=False)


@pytest.mark.slow
@pytest.mark.parametrize("version", [0, 1])
def test_sharded_directory_with_a_subdirectory_equals_js(tmp_path: Path, version: int) -> None:
    root = tmp_path / "m"
    big = root / "big"
    (big / "nested").mkdir(parents=True)
    (big / "nested" / "inner.txt").write_bytes(b"inside a sharded directory")
    for i in range(3600):  # 3600 * (40 + 34) > 262,144: "big" is sharded, the root and "nested" are not
        (big / f"weights-shard-{i:05d}-of-03600.safetensors").write_bytes(i.to_bytes(4, "big"))
    (root / "config.json").write_bytes(b"{}")
    cid, files = dir_cids(root, version)
    js = js_cids(root, version)
    assert cid == js["root"]
    assert files == js["files"]


# properties -------------------------------------------------------------------------------------------------


@given(
    size=st.integers(0, 3 * CHUNK_SIZE + 10),
    cuts=st.lists(st.integers(1, CHUNK_SIZE + 3), max_size=8),
    version=st.sampled_from([0, 1]),
)
def test_pieces_of_any_size_give_the_same_cid(size: int, cuts: list[int], version: int) -> None:
    data = pattern(size)
    builder = FileBuilder(version)
    pos = 0
    for cut in cuts:
        builder.write(memoryview(data)[pos : pos + cut])
        pos += cut
    builder.write(data[pos:])
    assert builder.finish() == file_cid(data, version)


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, MAX_LINKS * CHUNK_SIZE, MAX_LINKS * CHUNK_SIZE + 1, 10**8]
)
def test_tsize_from_the_size_alone_equals_the_built_dag(size: int, version: int) -> None:
    if size > 10**7:  # the shape only depends on the size: zeros are as good as anything and hash fast
        builder = FileBuilder(version)
        zeros = bytes(4 * 1024 * 1024)
        left = size
        while left:
            builder.write(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))
        root = builder.finish()
    else:
        root = file_cid(pattern(size), version)
    assert root.tsize == file_tsize(size, version)


def test_blocks_hash_to_their_cids_and_decode() -> None:
    blocks: list[tuple[Cid, bytes]] = []
    builder = FileBuilder(0, on_block=lambda cid, parts: blocks.append((cid, b"".join(bytes(p) for p in parts))))
    builder.write(pattern(3 * CHUNK_SIZE))
    root = builder.finish()
    assert blocks[-1][0] == root.cid
    for cid, block in blocks:
        cid.check(block)
    node = decode_node(blocks[-1][1])
    assert [link.cid for link in node.links] == [cid for cid, _ in blocks[:-1]]
    assert node.filesize == 3 * CHUNK_SIZE and node.blocksizes == (CHUNK_SIZE,) * 3


@pytest.mark.parametrize(
    "text", [KUBO_SMALL_V0, KUBO_SMALL_V1, "bafybeidl4zdk3nwrbygjdqeizfdswvw73ypurvh7fjtxfahsmfumdjqxwq"]
)
def test_cid_text_round_trips(text: str) -> None:
    cid = Cid.parse(text)
    assert str(cid) == text and Cid.from_bytes(cid.binary) == cid


@pytest.mark.parametrize("text", ["", "Qm123", "bafy!!", "hello", "zzzz", "bafkqaaa"])
def test_malformed_cids_are_refused(text: str) -> None:
    from aiprov.errors import InvalidInput

    with pytest.raises(InvalidInput):
        Cid.parse(text)


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", [0, 5, CHUNK_SIZE, 3 * CHUNK_SIZE + 7, (MAX_LINKS + 3) * CHUNK_SIZE + 1])
def test_every_block_is_rebuilt_from_its_recorded_place(size: int, version: int) -> None:
    data = pattern(size)
    blocks: dict[Cid, bytes] = {}
    builder = FileBuilder(
        version, on_block=lambda cid, parts: blocks.__setitem__(cid, b"".join(bytes(p) for p in parts)), places=True
    )
    builder.write(data)
    root = builder.finish()
    assert builder.places is not None
    assert {p.cid for p in builder.places} == set(blocks) and root.cid in blocks
    for place in builder.places if size < 10 * CHUNK_SIZE else [p for p in builder.places if p.depth > 0]:
        rebuilt: dict[Cid, bytes] = {}
        again = FileBuilder(version, on_block=lambda cid, parts, out=rebuilt: out.__setitem__(cid, b"".join(parts)))
        again.write(memoryview(data)[place.offset : place.offset + place.length])
        assert again.finish(depth=place.depth).cid == place.cid
        assert rebuilt[place.cid] == blocks[place.cid]


@pytest.mark.parametrize("size", [0, 1, 127, 128, CHUNK_SIZE])
def test_leaf_span_is_the_bytes_decode_node_reads_for_kubos_leaves(size: int) -> None:
    blocks: list[bytes] = []
    builder = FileBuilder(0, on_block=lambda cid, parts: blocks.append(b"".join(bytes(p) for p in parts)))
    builder.write(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    builder.finish()
    [block] = blocks
    start, end = leaf_span(block) or (-1, -1)
    assert block[start:end] == decode_node(block).data and end - start == size


def test_leaf_span_reads_leaves_encoded_otherwise_and_refuses_inner_nodes() -> None:
    # Type, filesize, then Data (another encoder's field order), and Data given twice (the last one counts).
    for inner in (b"\x08\x02\x18\x03\x12\x03abc", b"\x08\x02\x12\x02zz\x12\x03abc"):
        block = b"\x0a" + bytes([len(inner)]) + inner
        start, end = leaf_span(block) or (-1, -1)
        assert block[start:end] == b"abc" == decode_node(block).data
    root = file_cid(bytes(2 * CHUNK_SIZE))
    blocks: list[bytes] = []
    builder = FileBuilder(0, on_block=lambda cid, parts: blocks.append(b"".join(bytes(p) for p in parts)))
    builder.write(bytes(2 * CHUNK_SIZE))
    assert builder.finish() == root
    assert leaf_span(blocks[-1]) is None  # the root links to its leaves
    assert leaf_span(encode_node([], DIRECTORY_DATA)) is None
