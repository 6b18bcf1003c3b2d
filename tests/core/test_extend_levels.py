"""`extend_levels` (a level at a time) completes exactly the subtrees `CompactRange.extend` (a leaf at a time) does."""

from hypothesis import given, settings
from hypothesis import strategies as st

from aiprov.core.merkle import CompactRange, extend_levels, leaf_hash, root_from_leaf_hashes


@settings(max_examples=300)
@given(st.integers(0, 700), st.integers(0, 400))
def test_extend_levels_matches_compact_range(size: int, n: int) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size + n)]
    edge = CompactRange()
    edge.extend(leaves[:size])
    levels, new_edge = extend_levels(size, edge.hashes, leaves[size:])
    expected: dict[int, list[tuple[int, bytes]]] = {}
    for level, index, h in edge.extend(leaves[size:]):
        expected.setdefault(level, []).append((index, h))
    assert {lvl: [((size >> lvl) + k, h) for k, h in enumerate(hs)] for lvl, hs in enumerate(levels) if hs} == expected
    assert tuple(new_edge) == edge.hashes
    assert CompactRange(size + n, new_edge).root() == root_from_leaf_hashes(leaves)
