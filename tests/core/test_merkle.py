"""RFC 9162 Merkle trees: published vectors, then properties of the generators and verifiers."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aiprov.core.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    root,
    root_from_leaf_hashes,
    root_nodes,
    verify_consistency,
    verify_inclusion,
)
from aiprov.errors import InvalidInput, VerificationError

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent.parent / "vectors" / "tlog.json").read_text())
TREE = VECTORS["tree"]
VECTOR_LEAVES = [leaf_hash(bytes.fromhex(x)) for x in TREE["leaves_hex"]]
MAX_SIZE = 3000


def _hex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def _store(leaf_hashes: list[bytes]) -> dict[tuple[int, int], bytes]:
    return {(level, index): h for level, index, h in CompactRange().extend(leaf_hashes)}


@cache
def _big_tree() -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    # Every complete subtree of a prefix of this tree is also one of its complete subtrees, so one store serves
    # every size up to MAX_SIZE.
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]
    return leaves, _store(leaves)


def _lookup(store: dict[tuple[int, int], bytes]) -> Callable[[int, int], bytes]:
    return lambda level, index: store[(level, index)]


def _flip(h: bytes, bit: int) -> bytes:
    return bytes([h[0] ^ (1 << (bit % 8))]) + h[1:]


# RFC 9162 §2.1.3.1 and §2.1.4.1 written as the RFC states them: O(n) per proof, to check the O(log n) ones.
def _rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_rfc_path(m, leaves[:k]), root_from_leaf_hashes(leaves[k:])]
    return [*_rfc_path(m - k, leaves[k:]), root_from_leaf_hashes(leaves[:k])]


def _rfc_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_from_leaf_hashes(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_rfc_subproof(m, leaves[:k], complete), root_from_leaf_hashes(leaves[k:])]
    return [*_rfc_subproof(m - k, leaves[k:], False), root_from_leaf_hashes(leaves[:k])]


sizes = st.integers(min_value=1, max_value=MAX_SIZE)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(sizes)
    return draw(st.integers(min_value=1, max_value=size2)), size2


# --- published vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["hasher"]["cases"], ids=lambda c: c["kind"])
def test_hasher_matches_rfc6962_vectors(case: dict[str, str]) -> None:
    if case["kind"] == "empty_root":
        got = EMPTY_ROOT
    elif case["kind"] == "leaf":
        got = leaf_hash(bytes.fromhex(case["input_hex"]))
    else:
        got = node_hash(bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"]))
    assert got.hex() == case["want"]


@pytest.mark.parametrize("size", sorted(int(s) for s in TREE["roots_by_size"]))
def test_reference_root_matches_published_root(size: int) -> None:
    assert root_from_leaf_hashes(VECTOR_LEAVES[:size]).hex() == TREE["roots_by_size"][str(size)]


@pytest.mark.parametrize("size", sorted(int(s) for s in TREE["roots_by_size"]))
def test_root_from_stored_subtrees_matches_published_root(size: int) -> None:
    get = _lookup(_store(VECTOR_LEAVES))
    assert root(size, get).hex() == TREE["roots_by_size"][str(size)]


def test_compact_range_stores_exactly_the_published_subtree_hashes() -> None:
    completed = CompactRange().extend(VECTOR_LEAVES)
    by_level: dict[int, list[str]] = {}
    for level, index, h in completed:
        assert index == len(by_level.setdefault(level, []))
        by_level[level].append(h.hex())
    assert [by_level[level] for level in sorted(by_level)] == TREE["node_hashes_by_level"]


@pytest.mark.parametrize("case", VECTORS["inclusion"]["cases"], ids=lambda c: c["file"])
def test_inclusion_verifier_agrees_with_vector(case: dict[str, Any]) -> None:
    args = (
        bytes.fromhex(case["leaf_hash"]),
        case["leaf_index"],
        case["tree_size"],
        _hex(case["proof"]),
        bytes.fromhex(case["root"]),
    )
    if case["expect_valid"]:
        verify_inclusion(*args)
    else:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)


@pytest.mark.parametrize("case", VECTORS["consistency"]["cases"], ids=lambda c: c["file"])
def test_consistency_verifier_agrees_with_vector(case: dict[str, Any]) -> None:
    args = (
        case["size1"],
        case["size2"],
        _hex(case["proof"]),
        bytes.fromhex(case["root1"]),
        bytes.fromhex(case["root2"]),
    )
    if case["expect_valid"]:
        verify_consistency(*args)
    else:
        with pytest.raises(VerificationError):
            verify_consistency(*args)


def _happy(group: str) -> list[dict[str, Any]]:
    return [c for c in VECTORS[group]["cases"] if c["expect_valid"] and c["file"].endswith("happy-path.json")]


@pytest.mark.parametrize("case", _happy("inclusion"), ids=lambda c: c["file"])
def test_generated_inclusion_proof_equals_published_proof(case: dict[str, Any]) -> None:
    get = _lookup(_store(VECTOR_LEAVES))
    assert bytes.fromhex(case["leaf_hash"]) == VECTOR_LEAVES[case["leaf_index"]]
    proof = inclusion_proof(case["leaf_index"], case["tree_size"], get)
    assert [p.hex() for p in proof] == case["proof"]


@pytest.mark.parametrize("case", _happy("consistency"), ids=lambda c: c["file"])
def test_generated_consistency_proof_equals_published_proof(case: dict[str, Any]) -> None:
    get = _lookup(_store(VECTOR_LEAVES))
    proof = consistency_proof(case["size1"], case["size2"], get)
    assert [p.hex() for p in proof] == case["proof"]


def test_verifier_errors_say_which_check_failed() -> None:
    leaves = VECTOR_LEAVES
    get = _lookup(_store(leaves))
    proof = inclusion_proof(2, 8, get)
    with pytest.raises(VerificationError, match="outside a tree of size 8"):
        verify_inclusion(leaves[2], 8, 8, proof, root(8, get))
    with pytest.raises(VerificationError, match="more than the 3"):
        verify_inclusion(leaves[2], 2, 8, [*proof, proof[0]], root(8, get))
    with pytest.raises(VerificationError, match="fewer than the 3"):
        verify_inclusion(leaves[2], 2, 8, proof[:2], root(8, get))
    with pytest.raises(VerificationError, match="not the expected"):
        verify_inclusion(leaves[3], 2, 8, proof, root(8, get))
    cproof = consistency_proof(3, 8, get)
    with pytest.raises(VerificationError, match="old root"):
        verify_consistency(3, 8, cproof, root(4, get), root(8, get))
    with pytest.raises(VerificationError, match="new root"):
        verify_consistency(3, 8, cproof, root(3, get), root(7, get))
    with pytest.raises(VerificationError, match="proof hash 1 has 31 bytes"):
        verify_consistency(3, 8, [cproof[0], cproof[1][:31]], root(3, get), root(8, get))


# --- generators --------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(size_and_index())
def test_every_generated_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    size, index = case
    leaves, store = _big_tree()
    proof = inclusion_proof(index, size, _lookup(store))
    verify_inclusion(leaves[index], index, size, proof, root_from_leaf_hashes(leaves[:size]))


@settings(max_examples=300, deadline=None)
@given(two_sizes())
def test_every_generated_consistency_proof_verifies(case: tuple[int, int]) -> None:
    size1, size2 = case
    leaves, store = _big_tree()
    proof = consistency_proof(size1, size2, _lookup(store))
    verify_consistency(size1, size2, proof, root_from_leaf_hashes(leaves[:size1]), root(size2, _lookup(store)))


@settings(max_examples=150, deadline=None)
@given(size_and_index())
def test_inclusion_proof_from_stored_subtrees_equals_rfc_definition(case: tuple[int, int]) -> None:
    size, index = case
    leaves, store = _big_tree()
    assert inclusion_proof(index, size, _lookup(store)) == _rfc_path(index, leaves[:size])


@settings(max_examples=150, deadline=None)
@given(two_sizes())
def test_consistency_proof_from_stored_subtrees_equals_rfc_definition(case: tuple[int, int]) -> None:
    size1, size2 = case
    leaves, store = _big_tree()
    expected = [] if size1 == size2 else _rfc_subproof(size1, leaves[:size2], True)
    assert consistency_proof(size1, size2, _lookup(store)) == expected


@settings(max_examples=200, deadline=None)
@given(sizes)
def test_root_from_stored_subtrees_equals_rfc_definition(size: int) -> None:
    leaves, store = _big_tree()
    assert root(size, _lookup(store)) == root_from_leaf_hashes(leaves[:size])


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert root(0, _lookup({})) == EMPTY_ROOT == CompactRange().root()
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


@settings(max_examples=200, deadline=None)
@given(size_and_index(), two_sizes())
def test_proofs_need_only_logarithmically_many_stored_nodes(incl: tuple[int, int], cons: tuple[int, int]) -> None:
    bound = 2 * MAX_SIZE.bit_length() + 2
    assert len(inclusion_proof_nodes(incl[1], incl[0])) <= bound
    assert len(consistency_proof_nodes(*cons)) <= bound
    assert len(root_nodes(cons[1])) <= MAX_SIZE.bit_length()


@settings(max_examples=100, deadline=None)
@given(size_and_index(), two_sizes())
def test_prefetched_nodes_are_all_a_proof_reads(incl: tuple[int, int], cons: tuple[int, int]) -> None:
    _, store = _big_tree()
    size, index = incl
    only = {n: store[n] for n in inclusion_proof_nodes(index, size)}
    assert inclusion_proof(index, size, _lookup(only)) == inclusion_proof(index, size, _lookup(store))
    only = {n: store[n] for n in consistency_proof_nodes(*cons)}
    assert consistency_proof(*cons, _lookup(only)) == consistency_proof(*cons, _lookup(store))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: inclusion_proof(5, 5, _lookup({})), "not in a tree of size 5"),
        (lambda: inclusion_proof(-1, 5, _lookup({})), "non-negative"),
        (lambda: consistency_proof(6, 5, _lookup({})), "smaller size"),
        (lambda: consistency_proof(0, 5, _lookup({})), "non-empty old tree"),
        (lambda: root_nodes(-1), "non-negative"),
    ],
)
def test_generators_reject_impossible_requests(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        call()


# --- tampering -----------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(size_and_index(), st.integers(min_value=0, max_value=MAX_SIZE - 1))
def test_inclusion_proof_detects_a_different_leaf(case: tuple[int, int], other: int) -> None:
    size, index = case
    leaves, store = _big_tree()
    assume(other != index)
    proof = inclusion_proof(index, size, _lookup(store))
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[other], index, size, proof, root(size, _lookup(store)))


@settings(max_examples=200, deadline=None)
@given(size_and_index(), st.data())
def test_inclusion_proof_detects_any_altered_proof_hash(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    assume(size > 1)
    leaves, store = _big_tree()
    proof = inclusion_proof(index, size, _lookup(store))
    i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    proof[i] = _flip(proof[i], data.draw(st.integers(min_value=0, max_value=7)))
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[index], index, size, proof, root(size, _lookup(store)))


@settings(max_examples=200, deadline=None)
@given(size_and_index(), st.integers(min_value=-1, max_value=2 * MAX_SIZE))
def test_inclusion_proof_detects_a_different_index(case: tuple[int, int], other: int) -> None:
    size, index = case
    assume(other != index)
    leaves, store = _big_tree()
    proof = inclusion_proof(index, size, _lookup(store))
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[index], other, size, proof, root(size, _lookup(store)))


@settings(max_examples=200, deadline=None)
@given(size_and_index(), sizes)
def test_inclusion_proof_for_one_size_fails_against_another_sizes_root(case: tuple[int, int], other: int) -> None:
    # The root binds the size (a checkpoint signs both), so the claim to refute is "leaf i is in the tree of
    # `other` leaves": it must fail unless that tree's proof happens to be the very same list of hashes.
    size, index = case
    assume(other != size and index < other)
    leaves, store = _big_tree()
    get = _lookup(store)
    proof = inclusion_proof(index, size, get)
    if proof == inclusion_proof(index, other, get):
        verify_inclusion(leaves[index], index, other, proof, root(other, get))
    else:
        with pytest.raises(VerificationError):
            verify_inclusion(leaves[index], index, other, proof, root(other, get))


@settings(max_examples=200, deadline=None)
@given(size_and_index(), st.binary(min_size=32, max_size=32))
def test_inclusion_proof_detects_a_different_root(case: tuple[int, int], other_root: bytes) -> None:
    size, index = case
    leaves, store = _big_tree()
    assume(other_root != root(size, _lookup(store)))
    proof = inclusion_proof(index, size, _lookup(store))
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[index], index, size, proof, other_root)


@settings(max_examples=200, deadline=None)
@given(size_and_index(), st.booleans())
def test_inclusion_proof_detects_an_added_or_dropped_hash(case: tuple[int, int], add: bool) -> None:
    size, index = case
    leaves, store = _big_tree()
    proof = inclusion_proof(index, size, _lookup(store))
    assume(add or proof)
    proof = [*proof, leaves[0]] if add else proof[:-1]
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[index], index, size, proof, root(size, _lookup(store)))


@settings(max_examples=100, deadline=None)
@given(two_sizes(), st.data())
def test_consistency_proof_detects_rewritten_history(case: tuple[int, int], data: st.DataObject) -> None:
    size1, size2 = case
    leaves, store = _big_tree()
    rewritten_at = data.draw(st.integers(min_value=0, max_value=size1 - 1))
    forged = list(leaves[:size2])
    forged[rewritten_at] = leaf_hash(b"rewritten")
    forged_get = _lookup(_store(forged))
    proof = consistency_proof(size1, size2, forged_get)
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, proof, root(size1, _lookup(store)), root(size2, forged_get))


@settings(max_examples=200, deadline=None)
@given(two_sizes(), st.data())
def test_consistency_proof_detects_any_altered_proof_hash(case: tuple[int, int], data: st.DataObject) -> None:
    size1, size2 = case
    assume(size1 < size2)
    _, store = _big_tree()
    get = _lookup(store)
    proof = consistency_proof(size1, size2, get)
    i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    proof[i] = _flip(proof[i], data.draw(st.integers(min_value=0, max_value=7)))
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, proof, root(size1, get), root(size2, get))


@settings(max_examples=200, deadline=None)
@given(two_sizes(), st.integers(min_value=-1, max_value=MAX_SIZE), st.booleans())
def test_consistency_proof_detects_a_different_size(case: tuple[int, int], other: int, first: bool) -> None:
    size1, size2 = case
    _, store = _big_tree()
    get = _lookup(store)
    proof = consistency_proof(size1, size2, get)
    sizes_claimed = (other, size2) if first else (size1, other)
    assume(sizes_claimed != (size1, size2))
    # As for inclusion, each size is judged with its own root.
    roots = [root(s, get) if 0 <= s <= MAX_SIZE else EMPTY_ROOT for s in sizes_claimed]
    claimed = consistency_proof(*sizes_claimed, get) if 0 < sizes_claimed[0] <= sizes_claimed[1] else None
    if claimed == proof:
        verify_consistency(*sizes_claimed, proof, *roots)
    else:
        with pytest.raises(VerificationError):
            verify_consistency(*sizes_claimed, proof, *roots)


@settings(max_examples=200, deadline=None)
@given(two_sizes(), st.binary(min_size=32, max_size=32), st.booleans())
def test_consistency_proof_detects_a_different_root(case: tuple[int, int], other: bytes, old: bool) -> None:
    size1, size2 = case
    _, store = _big_tree()
    get = _lookup(store)
    root1, root2 = root(size1, get), root(size2, get)
    assume(other not in (root1, root2))
    proof = consistency_proof(size1, size2, get)
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, proof, other if old else root1, root2 if old else other)


@settings(max_examples=200, deadline=None)
@given(two_sizes(), st.booleans())
def test_consistency_proof_detects_an_added_or_dropped_hash(case: tuple[int, int], add: bool) -> None:
    size1, size2 = case
    leaves, store = _big_tree()
    get = _lookup(store)
    proof = consistency_proof(size1, size2, get)
    assume(add or proof)
    proof = [*proof, leaves[0]] if add else proof[:-1]
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, proof, root(size1, get), root(size2, get))


def test_consistency_from_the_empty_tree_is_refused() -> None:
    with pytest.raises(VerificationError, match="empty tree proves nothing"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)


# --- compact range -------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_batched_appends_complete_the_same_subtrees_as_single_appends(batches: list[int]) -> None:
    leaves, store = _big_tree()
    batched, single = CompactRange(), CompactRange()
    completed, one_by_one = [], []
    start = 0
    for n in batches:
        completed += batched.extend(leaves[start : start + n])
        for h in leaves[start : start + n]:
            one_by_one += single.append(h)
        start += n
    assert completed == one_by_one
    assert batched.size == single.size == start
    assert batched.root() == root_from_leaf_hashes(leaves[:start])
    assert {(lv, i): h for lv, i, h in completed} == {k: v for k, v in store.items() if (k[1] + 1) << k[0] <= start}


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_SIZE // 2), st.integers(min_value=0, max_value=MAX_SIZE // 2))
def test_compact_range_resumes_from_stored_nodes(first: int, more: int) -> None:
    leaves, store = _big_tree()
    resumed = CompactRange.load(first, _lookup(store))
    assert resumed.hashes == tuple(store[n] for n in root_nodes(first))
    completed = resumed.extend(leaves[first : first + more])
    assert resumed.root() == root_from_leaf_hashes(leaves[: first + more])
    assert all(store[(lv, i)] == h for lv, i, h in completed)
    # A tree of n leaves has 2n - popcount(n) complete subtrees: the leaves and every full interior node.
    assert len(completed) == (2 * (first + more) - (first + more).bit_count()) - (2 * first - first.bit_count())


def test_compact_range_rejects_a_bad_leaf_hash_without_changing() -> None:
    cr = CompactRange()
    cr.extend(VECTOR_LEAVES[:3])
    before = (cr.size, cr.hashes)
    with pytest.raises(InvalidInput, match="32 bytes"):
        cr.extend([VECTOR_LEAVES[3], b"short"])
    assert (cr.size, cr.hashes) == before


def test_compact_range_rejects_hashes_that_do_not_fit_the_size() -> None:
    with pytest.raises(InvalidInput, match="2 edge subtrees, not 1"):
        CompactRange(3, [VECTOR_LEAVES[0]])
    with pytest.raises(InvalidInput, match="32 bytes"):
        CompactRange(1, [b"x"])


def test_inclusion_proof_binds_the_index_exhaustively_for_small_trees() -> None:
    leaves, store = _big_tree()
    get = _lookup(store)
    for size in range(1, 41):
        tree_root = root(size, get)
        for index in range(size):
            proof = inclusion_proof(index, size, get)
            for other in range(size + 1):
                if other != index:
                    with pytest.raises(VerificationError):
                        verify_inclusion(leaves[index], other, size, proof, tree_root)
