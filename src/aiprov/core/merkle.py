"""RFC 9162 §2.1 Merkle trees: hashes, proofs served from stored subtrees, and their verifiers.

A log stores the hash of every *complete* subtree, addressed as `(level, index)`: the subtree of `2**level`
leaves that starts at leaf `index * 2**level`. Any root, inclusion proof or consistency proof of any tree size
is a function of O(log n) of those nodes, so the generators here take a lookup `get_node(level, index)` and
never rebuild the tree. The `*_nodes` functions name the nodes a proof needs, so a store can fetch them in one
query and hand over `dict.__getitem__`-style lookups. `CompactRange` says which nodes each append completes.

Verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 and raise `VerificationError` naming the check that failed;
they return None on success and never return False.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from hashlib import sha256

from aiprov.errors import InvalidInput, VerificationError

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = HASH()

Node = tuple[int, int]
"""A complete subtree: `(level, index)` covers leaves `[index * 2**level, (index + 1) * 2**level)`."""

NodeHash = tuple[int, int, bytes]
"""A complete subtree and its hash: `(level, index, hash)`."""

NodeLookup = Callable[[int, int], bytes]
"""`get_node(level, index)` returns the stored hash of a complete subtree."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of one leaf, `SHA-256(0x00 || data)`."""
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of an interior node, `SHA-256(0x01 || left || right)`."""
    return sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes, straight from the RFC 9162 §2.1.1 definition.

    O(n) hashing and recursion depth log2(n): a reference for tests and small trees, not for a log's hot path.
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two smaller than n
    return node_hash(root_from_leaf_hashes(leaf_hashes[:k]), root_from_leaf_hashes(leaf_hashes[k:]))


def _check_size(name: str, value: int) -> None:
    if value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer, not {value}")


def _range_nodes(begin: int, end: int) -> list[Node]:
    """List the complete subtrees that tile leaves `[begin, end)`, left to right, each as large as fits.

    For a range that ends at the tree's right edge, folding their hashes right to left gives the range's MTH.
    """
    nodes: list[Node] = []
    while begin < end:
        # The largest subtree that fits before `end` and that `begin` is aligned to.
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Hash a right-edge range from its complete subtrees: the smaller subtrees on the right combine first."""
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


def _path_plan(index: int, level: int, size: int) -> list[list[Node]]:
    """Plan the audit path of the complete node `(level, index)` in the tree of `size` leaves, bottom up.

    Each proof element is a list of nodes to fold: a single stored node, or (at most once, where the path
    meets the right edge) the complete subtrees of a partial right sibling.
    """
    last = (size - 1) >> level  # the node at this level that holds the tree's last leaf
    inner = (index ^ last).bit_length()  # levels below the point where the path joins the right edge
    plan: list[list[Node]] = []
    for i in range(inner):
        sibling = (index >> i) ^ 1
        lvl = level + i
        if (sibling + 1) << lvl <= size:
            plan.append([(lvl, sibling)])
        else:
            plan.append(_range_nodes(sibling << lvl, size))
    for i in range(inner, last.bit_length()):
        # On the right edge only left siblings exist; a right sibling would lie beyond the tree.
        if (index >> i) & 1:
            plan.append([(level + i, (index >> i) ^ 1)])
    return plan


def _consistency_plan(size1: int, size2: int) -> list[list[Node]]:
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise InvalidInput(f"no consistency proof from tree size {size1} to the smaller size {size2}")
    if size1 == 0:
        raise InvalidInput("a consistency proof needs a non-empty old tree (RFC 9162 §2.1.4: 0 < size1)")
    if size1 == size2:
        return []
    # The old tree's last (largest aligned) complete subtree, then its audit path in the new tree. When the
    # old tree is itself that subtree, its root is the first element and the verifier already holds it.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    plan = _path_plan(index, level, size2)
    return plan if index == 0 else [[(level, index)], *plan]


def _flatten(plan: list[list[Node]]) -> list[Node]:
    return list(dict.fromkeys(node for item in plan for node in item))


def _resolve(plan: list[list[Node]], get_node: NodeLookup) -> list[bytes]:
    return [_fold([get_node(level, index) for level, index in item]) for item in plan]


def root_nodes(size: int) -> list[Node]:
    """List the complete subtrees whose hashes make the root of a tree of `size` leaves (one per set bit).

    Raises InvalidInput for a negative size.
    """
    _check_size("size", size)
    return _range_nodes(0, size)


def root(size: int, get_node: NodeLookup) -> bytes:
    """Compute the RFC 9162 root of the first `size` leaves from at most log2(size)+1 stored nodes.

    Raises InvalidInput for a negative size; whatever `get_node` raises propagates.
    """
    nodes = root_nodes(size)
    return _fold([get_node(level, index) for level, index in nodes]) if nodes else EMPTY_ROOT


def inclusion_proof_nodes(index: int, size: int) -> list[Node]:
    """List the stored nodes `inclusion_proof(index, size, ...)` will look up, without duplicates.

    Raises InvalidInput unless 0 <= index < size.
    """
    return _flatten(_inclusion_plan(index, size))


def inclusion_proof(index: int, size: int, get_node: NodeLookup) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `size` leaves, bottom up.

    Raises InvalidInput unless 0 <= index < size; whatever `get_node` raises propagates.
    """
    return _resolve(_inclusion_plan(index, size), get_node)


def _inclusion_plan(index: int, size: int) -> list[list[Node]]:
    _check_size("leaf index", index)
    if index >= size:
        raise InvalidInput(f"leaf index {index} is not in a tree of size {size}")
    return _path_plan(index, 0, size)


def consistency_proof_nodes(size1: int, size2: int) -> list[Node]:
    """List the stored nodes `consistency_proof(size1, size2, ...)` will look up, without duplicates.

    Raises InvalidInput unless 0 < size1 <= size2.
    """
    return _flatten(_consistency_plan(size1, size2))


def consistency_proof(size1: int, size2: int, get_node: NodeLookup) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof from the tree of `size1` leaves to the tree of `size2` leaves.

    Empty when the sizes are equal. Raises InvalidInput unless 0 < size1 <= size2 (a proof from the empty tree
    is undefined and would prove nothing); whatever `get_node` raises propagates.
    """
    return _resolve(_consistency_plan(size1, size2), get_node)


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise VerificationError(f"proof hash {i} has {len(h)} bytes, not {HASH_SIZE}")


def _inclusion_proof_length(index: int, size: int) -> int:
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` leaves and `root` (RFC 9162 §2.1.3.2).

    Returns None when the proof holds. Raises VerificationError, saying which check failed, when the index is
    outside the tree, a hash has the wrong length, the proof is too long or too short, or it leads to another
    root.
    """
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise VerificationError(f"leaf hash has {len(leaf_hash)} bytes, not {HASH_SIZE}")
    _check_proof_hashes(proof)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise VerificationError(
                f"inclusion proof has {len(proof)} hashes, more than the "
                f"{_inclusion_proof_length(index, size)} that leaf {index} of a tree of size {size} needs"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # On the right edge, skip the levels where this node has no right sibling.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(
            f"inclusion proof has {len(proof)} hashes, fewer than the "
            f"{_inclusion_proof_length(index, size)} that leaf {index} of a tree of size {size} needs"
        )
    if r != root:
        raise VerificationError(
            f"inclusion proof for leaf {index} leads to root {r.hex()}, not the expected {root.hex()}"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of `size2` leaves with `root2` extends the tree of `size1` leaves with `root1`.

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots. Returns None when the proof holds.
    Raises VerificationError, saying which check failed, when size1 is 0 (consistency with the empty tree is
    undefined and proves nothing) or greater than size2, a proof hash has the wrong length, the proof has the
    wrong length, or it does not reproduce the old or the new root.
    """
    if size1 < 0:
        raise VerificationError(f"tree size {size1} is negative")
    if size2 < size1:
        raise VerificationError(f"tree size {size2} is smaller than the earlier size {size1}")
    if size1 == 0:
        raise VerificationError("a consistency proof from the empty tree proves nothing (RFC 9162 needs size1 > 0)")
    _check_proof_hashes(proof)
    if size1 == size2:
        if proof:
            raise VerificationError(f"sizes are equal ({size1}) but the proof has {len(proof)} hashes, not 0")
        if root1 != root2:
            raise VerificationError(f"two different roots for the same tree size {size1}")
        return
    if not proof:
        raise VerificationError(f"empty consistency proof from tree size {size1} to {size2}")
    # A power-of-two old tree is a complete subtree of the new one: its root is the implicit first hash.
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError(f"consistency proof from size {size1} to {size2} has too many hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(f"consistency proof from size {size1} to {size2} has too few hashes")
    if fr != root1:
        raise VerificationError(
            f"consistency proof rebuilds old root {fr.hex()} for size {size1}, not the expected {root1.hex()}"
        )
    if sr != root2:
        raise VerificationError(
            f"consistency proof rebuilds new root {sr.hex()} for size {size2}, not the expected {root2.hex()}"
        )


class CompactRange:
    """The right edge of a growing tree: one hash per complete subtree in `root_nodes(size)`.

    `extend` appends leaf hashes and reports every complete subtree they finish, so a store can persist
    exactly the nodes that proofs and tiles read, in batches, without ever re-reading the tree.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Resume at `size` from the hashes of `root_nodes(size)`, left to right.

        Raises InvalidInput when the number or length of the hashes does not fit the size.
        """
        _check_size("size", size)
        if len(hashes) != size.bit_count():
            raise InvalidInput(f"a tree of size {size} has {size.bit_count()} edge subtrees, not {len(hashes)}")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise InvalidInput(f"edge subtree hashes must have {HASH_SIZE} bytes")
        self._size = size
        self._hashes = list(hashes)

    @classmethod
    def load(cls, size: int, get_node: NodeLookup) -> CompactRange:
        """Resume at `size` by looking up the stored nodes of `root_nodes(size)`.

        Raises InvalidInput for a negative size or stored hashes of the wrong length.
        """
        return cls(size, [get_node(level, index) for level, index in root_nodes(size)])

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The hashes of `root_nodes(self.size)`, left to right."""
        return tuple(self._hashes)

    def root(self) -> bytes:
        """Compute the RFC 9162 root of the tree so far."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT

    def append(self, leaf_hash: bytes) -> list[NodeHash]:
        """Append one leaf hash; see `extend`."""
        return self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[NodeHash]:
        """Append leaf hashes (not leaf data) and return the complete subtrees they finish.

        Each appended leaf yields `(0, leaf_index, leaf_hash)` followed by every interior node it completes,
        in order, so the list can be written to storage as is. All or nothing: raises InvalidInput, changing
        nothing, if any hash is not 32 bytes.
        """
        batch = list(leaf_hashes)
        if any(len(h) != HASH_SIZE for h in batch):
            raise InvalidInput(f"leaf hashes must have {HASH_SIZE} bytes")
        # Hot path (benchmarked at a million appends): locals only, plain tuples, one hashlib call per node.
        completed: list[NodeHash] = []
        emit = completed.append
        stack = self._hashes
        push = stack.append
        pop = stack.pop
        size = self._size
        for h in batch:
            emit((0, size, h))
            level, index = 0, size
            # Each trailing 1 bit of the old size is a left sibling on the edge waiting for this subtree.
            while index & 1:
                h = sha256(b"\x01" + pop() + h).digest()
                level += 1
                index >>= 1
                emit((level, index, h))
            push(h)
            size += 1
        self._size = size
        return completed


def extend_levels(
    size: int, edge: Sequence[bytes], leaf_hashes: Sequence[bytes]
) -> tuple[list[list[bytes]], list[bytes]]:
    """Append leaf hashes to a tree of `size` leaves with right edge `edge` (the hashes of `root_nodes(size)`).

    Returns `(levels, new_edge)`: `levels[l]` lists the complete subtrees at level `l` that the batch finishes,
    which are the nodes `(l, (size >> l) + k)` for k = 0, 1, …, and `new_edge` is the new tree's right edge.
    It does what `CompactRange.extend` does, a level at a time: one list comprehension per level instead of a
    Python loop per leaf, which is what makes million-entry appends cheap. Raises InvalidInput when the edge does
    not fit the size.
    """
    _check_size("size", size)
    if len(edge) != size.bit_count():
        raise InvalidInput(f"a tree of size {size} has {size.bit_count()} edge subtrees, not {len(edge)}")
    edge_at = dict(
        zip([level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1], edge, strict=True)
    )
    levels: list[list[bytes]] = [list(leaf_hashes)]
    level = 0
    while True:
        below = levels[level]
        if (size >> level) & 1:  # the first new node's left sibling was complete before this batch
            below = [edge_at[level], *below]
        pairs = len(below) // 2
        if not pairs:
            break
        prefix = b"\x01"
        levels.append([sha256(prefix + below[2 * k] + below[2 * k + 1]).digest() for k in range(pairs)])
        level += 1
    new_size = size + len(leaf_hashes)
    new_edge = []
    for lvl in range(new_size.bit_length() - 1, -1, -1):
        if new_size >> lvl & 1:
            k = (new_size >> lvl) - 1 - (size >> lvl)
            new_edge.append(levels[lvl][k] if lvl < len(levels) and k >= 0 else edge_at[lvl])
    return levels, new_edge
