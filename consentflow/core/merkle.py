"""The append-only Merkle tree of the verifiable consent record (issue 22): RFC 9162 §2.1, no I/O.

Hashing (§2.1.1): a leaf is ``SHA-256(0x00 ‖ bytes)``, an interior node ``SHA-256(0x01 ‖ left ‖ right)``, the empty
tree ``SHA-256()``; the tree over n leaves splits at the largest power of two below n, so every node of it is either
a *complete subtree* (``2**level`` leaves starting at ``index * 2**level``) or lies on the right edge.

Why complete subtrees, addressed by ``(level, index)``, and not tlog-tiles: a complete subtree never changes once its
last leaf is in, so it is written once (by the notary, later, as a ClickHouse row keyed by level and index) and never
rewritten; every root, inclusion path (§2.1.3.1) and consistency proof (§2.1.4.1) is a fold of at most
``2 * log2(n)`` such nodes, read by key, with no hashing of leaves at proof time. Appending costs one hash per leaf
and one per completed node, at most ``2n`` hashes for n leaves, so O(1) amortised. Tiles (256 nodes of 8 levels in
one object) are a packing of these same addresses, kept for the storage to choose, not the tree.

Proofs are built in two steps so that a store can answer them in one read: ``*_addresses`` name the nodes, grouped
one group per proof hash; ``assemble`` folds the groups with the hashes found. ``MerkleTree`` is the in-memory store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


#: A complete subtree, ``(level, index)``: ``2**level`` leaves from leaf ``index * 2**level``; level 0 is the leaves.
NodeAddress = tuple[int, int]


class ProofError(ValueError):
    """A proof, size or hash refused; the message names what is wrong."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x00 ‖ data)``."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x01 ‖ left ‖ right)``."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _split(width: int) -> int:
    """The largest power of two smaller than ``width`` (``width`` > 1): where MTH splits D[n]."""
    return 1 << ((width - 1).bit_length() - 1)


def range_addresses(start: int, end: int) -> tuple[NodeAddress, ...]:
    """The complete subtrees, left to right, whose fold is MTH(D[start:end]).

    Valid for the ranges MTH's recursion makes (``start`` a multiple of a power of two at least ``end - start``):
    each is its largest complete subtrees from the left, the last one ending at ``end``.
    """
    out: list[NodeAddress] = []
    position, width = start, end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            out.append((level, position >> level))
            position += 1 << level
    return tuple(out)


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of consecutive complete subtrees given left to right: the right edge folds first (RFC 9162 §2.1.1)."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = _sha256(NODE_PREFIX + left + result).digest()
    return result


def root_addresses(size: int) -> tuple[NodeAddress, ...]:
    """The nodes whose fold is the root of the first ``size`` leaves (none for the empty tree)."""
    return range_addresses(0, size)


def inclusion_addresses(index: int, size: int) -> list[tuple[NodeAddress, ...]]:
    """The nodes of PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), one group per proof hash, leaf end first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of {size} leaves")
    path: list[tuple[NodeAddress, ...]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(range_addresses(start + k, end))
            end = start + k
        else:
            path.append(range_addresses(start, start + k))
            start += k
    path.reverse()  # PATH lists the sibling nearest the leaf first
    return path


def consistency_addresses(old_size: int, new_size: int) -> list[tuple[NodeAddress, ...]]:
    """The nodes of PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1), one group per proof hash; empty when the
    sizes are equal."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from {old_size} leaves to {new_size}: the old size must be 1 to {new_size}")
    proof: list[tuple[NodeAddress, ...]] = []
    start, width, old, whole = 0, new_size, old_size, True
    while old != width:
        k = _split(width)
        if old <= k:
            proof.append(range_addresses(start + k, start + width))
            width = k
        else:
            proof.append(range_addresses(start, start + k))
            start, width, old, whole = start + k, width - k, old - k, False
    if not whole:  # SUBPROOF(m, D[m], false) = [MTH(D[m])]: the old tree is not itself a complete left subtree
        proof.append(range_addresses(start, start + width))
    proof.reverse()
    return proof


def assemble(groups: Iterable[Sequence[NodeAddress]], node: Callable[[NodeAddress], bytes]) -> list[bytes]:
    """The proof hashes: each group of addresses folded with the hashes ``node`` gives for them."""
    return [fold([node(address) for address in group]) for group in groups]


class MerkleTree:
    """An append-only RFC 9162 tree in memory: every complete subtree's hash, a packed ``bytearray`` per level.

    A level holds ``size >> level`` hashes, under two hashes a leaf in all; appending a leaf writes its hash
    and the nodes it completes, never rewrites one (the notary stores them, by address, as they appear).
    """

    __slots__ = ("_levels", "_size")

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleTree:
        """A tree over leaves given by their hashes, in order (a store's leaves, read back)."""
        tree = cls()
        for digest in hashes:
            tree.append_hash(digest)
        return tree

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def append(self, data: bytes) -> int:
        """Append a leaf of ``data`` (hashed as RFC 9162 leaves are); return its index."""
        return self.append_hash(_sha256(LEAF_PREFIX + data).digest())

    def extend(self, leaves: Iterable[bytes]) -> int:
        """Append leaves of data in order; return the new size."""
        append_hash = self.append_hash
        for data in leaves:
            append_hash(_sha256(LEAF_PREFIX + data).digest())
        return self._size

    def append_hash(self, digest: bytes) -> int:
        """Append a leaf by its leaf hash; return its index."""
        if len(digest) != HASH_SIZE:
            raise ProofError(f"a leaf hash is {HASH_SIZE} bytes, not {len(digest)}")
        levels = self._levels
        index = self._size
        levels[0] += digest
        self._size = count = index + 1
        level, node = 0, digest
        while not count & 1:  # an even count at a level: its last two nodes complete one above
            node = _sha256(NODE_PREFIX + levels[level][-64:-32] + node).digest()
            level += 1
            count >>= 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += node
        return index

    def node(self, address: NodeAddress) -> bytes:
        """The hash of a complete subtree."""
        level, index = address
        if level >= len(self._levels) or not 0 <= index < self._size >> level:
            raise ProofError(f"no complete subtree at level {level}, index {index} in a tree of {self._size} leaves")
        return bytes(self._levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        return self.node((0, index))

    def nodes_since(self, old_size: int) -> Iterator[tuple[NodeAddress, bytes]]:
        """Every complete subtree that appending from ``old_size`` leaves to now completed: what a store writes."""
        for level in range(len(self._levels)):
            for index in range(old_size >> level, self._size >> level):
                address = (level, index)
                yield address, self.node(address)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all by default)."""
        size = self._size if size is None else self._checked_size(size)
        return fold([self.node(address) for address in root_addresses(size)])

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1)."""
        size = self._size if size is None else self._checked_size(size)
        return assemble(inclusion_addresses(index, size), self.node)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1)."""
        new_size = self._size if new_size is None else self._checked_size(new_size)
        return assemble(consistency_addresses(old_size, new_size), self.node)

    def _checked_size(self, size: int) -> int:
        if not 0 <= size <= self._size:
            raise ProofError(f"tree size {size} is beyond the {self._size} leaves held")
        return size


def _check_hash(what: str, digest: bytes) -> None:
    if len(digest) != HASH_SIZE:
        raise ProofError(f"{what} is {len(digest)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1-4); raises ``ProofError`` naming a malformed
    proof."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    _check_hash("the leaf hash", leaf)
    expected = len(inclusion_addresses(index, size))
    if len(proof) != expected:
        raise ProofError(f"the inclusion proof has {len(proof)} hashes, leaf {index} of a tree of {size} needs {expected}")
    fn, sn, r = index, size - 1, leaf
    for position, p in enumerate(proof):
        _check_hash(f"inclusion proof hash {position}", p)
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:  # climb past the levels where this node is a left child with no sibling
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: leaf hash ``leaf`` is leaf ``index`` of the tree of ``size`` leaves with ``root``; raises
    ``ProofError`` otherwise.

    A path has the same shape for several sizes (leaf 5 of 37 leaves or of 40), so the size is bound by the signed
    checkpoint that pairs it with ``root``, never by the path alone: take both from one verified checkpoint.
    """
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError(
            f"the inclusion proof of leaf {index} does not lead to the root of the tree of {size} leaves "
            "(the leaf altered, or the proof or root of another tree)"
        )


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: the tree of ``new_size`` leaves with ``new_root`` extends the tree of ``old_size`` with
    ``old_root``, leaves unchanged; raises ``ProofError`` naming what fails."""
    if new_size < old_size:
        raise ProofError(f"the tree shrank from {old_size} leaves to {new_size} (truncated or rolled back)")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if old_size == new_size:
        if proof:
            raise ProofError(f"both trees have {old_size} leaves, yet the proof is not empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {old_size} (the log was rewritten)")
        return
    expected = len(consistency_addresses(old_size, new_size))
    if len(proof) != expected:
        raise ProofError(f"the consistency proof has {len(proof)} hashes, {old_size} to {new_size} leaves needs {expected}")
    for position, p in enumerate(proof):
        _check_hash(f"consistency proof hash {position}", p)
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself the first node (step 2)
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"the consistency proof from {old_size} to {new_size} leaves is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the consistency proof from {old_size} to {new_size} leaves is too short")
    if fr != old_root:
        raise ProofError(f"the log's first {old_size} leaves no longer give the saved root (a leaf altered or removed since)")
    if sr != new_root:
        raise ProofError(f"the consistency proof does not lead to the root of the tree of {new_size} leaves")
