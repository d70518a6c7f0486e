"""The consent log's Merkle tree (issue 22), held against two independent oracles: pymerkle (PyPI, RFC 9162 hashing:
its default SHA-256 with the 0x00/0x01 prefixes) for roots, inclusion paths and the node hashes of consistency proofs,
and transparency-dev/merkle's published test vectors (tests/data/merkle) for verification; the proofs' shape comes
from RFC 9162 §2.1 as written (``tests/support/rfc9162.py``). Every refusal names its reason."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from consentflow.core.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    NodeAddress,
    ProofError,
    assemble,
    consistency_addresses,
    inclusion_addresses,
    leaf_hash,
    root_addresses,
    verify_consistency,
    verify_inclusion,
)
from tests.support.rfc9162 import b64, mth, path_ranges, proof_ranges, vectors

VECTORS = vectors()
#: Trees of 1 to 300 leaves (hypothesis favours short lists, so the size is drawn, and the leaves made from it).
LEAVES = st.builds(
    lambda size, salt: [salt + i.to_bytes(2, "big") for i in range(size)], st.integers(1, 300), st.binary(max_size=6)
)


def pymerkle_tree(leaves: list[bytes]) -> InmemoryTree:
    """pymerkle's tree over ``leaves`` (RFC 9162 hashing is its default)."""
    tree = InmemoryTree(algorithm="sha256")
    for data in leaves:
        tree.append_entry(data)
    return tree


def range_root(leaves: list[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) by pymerkle, over that range's leaves alone."""
    root: bytes = pymerkle_tree(leaves[start:end]).get_root()
    return root


def tree_of(leaves: list[bytes]) -> MerkleTree:
    tree = MerkleTree()
    tree.extend(leaves)
    return tree


# ----------------------------------------------------------------- published vectors


def test_the_reference_tree_of_transparency_dev_gives_its_roots() -> None:
    """testonly/constants.go: the root of every prefix of its eight leaves, the empty tree's included."""
    reference = VECTORS["reference_tree"]
    leaves = [bytes.fromhex(h) for h in reference["leaf_inputs_hex"]]
    tree = tree_of(leaves)
    assert [tree.root(size).hex() for size in range(len(leaves) + 1)] == reference["root_hashes_hex"]
    assert tree.root(0) == EMPTY_ROOT


@pytest.mark.parametrize("probe", VECTORS["inclusion"], ids=lambda p: p["file"].removeprefix("testdata/"))
def test_inclusion_vectors(probe: dict[str, Any]) -> None:
    """Each published inclusion probe is accepted or refused as transparency-dev/merkle's verifier does."""
    proof = [b64(p) for p in probe["proof"] or []]
    arguments = (probe["leafIdx"], probe["treeSize"], b64(probe["leafHash"]), proof, b64(probe["root"]))
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*arguments)
    else:
        verify_inclusion(*arguments)


@pytest.mark.parametrize("probe", VECTORS["consistency"], ids=lambda p: p["file"].removeprefix("testdata/"))
def test_consistency_vectors(probe: dict[str, Any]) -> None:
    """Each published consistency probe is accepted or refused as transparency-dev/merkle's verifier does."""
    proof = [b64(p) for p in probe["proof"] or []]
    arguments = (probe["size1"], probe["size2"], b64(probe["root1"]), b64(probe["root2"]), proof)
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*arguments)
    else:
        verify_consistency(*arguments)


def test_the_happy_path_vectors_are_the_proofs_the_tree_gives() -> None:
    """The published happy-path proofs over the reference tree are exactly the proofs ours builds."""
    tree = tree_of([bytes.fromhex(h) for h in VECTORS["reference_tree"]["leaf_inputs_hex"]])
    checked = 0
    for probe in VECTORS["inclusion"]:
        if probe["desc"] == "happy path" and probe["treeSize"] <= tree.size:
            assert tree.inclusion_proof(probe["leafIdx"], probe["treeSize"]) == [b64(p) for p in probe["proof"] or []]
            checked += 1
    for probe in VECTORS["consistency"]:
        if probe["desc"] == "happy path" and probe["size1"] > 0 and probe["size2"] <= tree.size:
            assert tree.consistency_proof(probe["size1"], probe["size2"]) == [b64(p) for p in probe["proof"] or []]
            checked += 1
    assert checked >= 6


# ----------------------------------------------------------------- pymerkle, RFC 9162 as written


@settings(max_examples=60, deadline=None)
@given(leaves=LEAVES, data=st.data())
def test_roots_and_inclusion_proofs_equal_pymerkles(leaves: list[bytes], data: st.DataObject) -> None:
    """Every prefix's root, and inclusion paths (pymerkle's path less its first hash, the leaf's own), are pymerkle's;
    each verifies."""
    tree, reference = tree_of(leaves), pymerkle_tree(leaves)
    size = data.draw(st.integers(1, len(leaves)), label="size")
    assert tree.root(size) == reference.get_root(size) == mth(leaves[:size])
    for index in range(size):
        proof = tree.inclusion_proof(index, size)
        theirs = reference.prove_inclusion(index + 1, size)
        assert theirs.path[0] == tree.leaf_hash(index) == leaf_hash(leaves[index])
        assert proof == theirs.path[1:]
        assert len(proof) == len(path_ranges(index, 0, size))
        verify_inclusion(index, size, tree.leaf_hash(index), proof, tree.root(size))


@settings(max_examples=60, deadline=None)
@given(leaves=LEAVES, data=st.data())
def test_consistency_proofs_are_rfc_9162s_with_pymerkles_hashes(leaves: list[bytes], data: st.DataObject) -> None:
    """Each consistency proof hash is MTH of the range RFC 9162's SUBPROOF names, computed by pymerkle; the proof
    verifies between pymerkle's two roots."""
    tree, reference = tree_of(leaves), pymerkle_tree(leaves)
    new_size = data.draw(st.integers(1, len(leaves)), label="new size")
    old_size = data.draw(st.integers(1, new_size), label="old size")
    proof = tree.consistency_proof(old_size, new_size)
    assert proof == [range_root(leaves, start, end) for start, end in proof_ranges(old_size, new_size)]
    verify_consistency(old_size, new_size, reference.get_root(old_size), reference.get_root(new_size), proof)


@settings(max_examples=30, deadline=None)
@given(leaves=LEAVES, cut=st.integers(0, 300))
def test_a_store_of_the_nodes_each_append_completes_answers_the_same(leaves: list[bytes], cut: int) -> None:
    """What the notary will keep: the nodes ``nodes_since`` gives after each batch, each written once, answer every
    proof by address as the tree does."""
    cut = min(cut, len(leaves))
    tree, store = MerkleTree(), {}
    for batch in (leaves[:cut], leaves[cut:]):
        before = tree.size
        tree.extend(batch)
        for address, digest in tree.nodes_since(before):
            assert address not in store
            store[address] = digest
    size = len(leaves)
    assert len(store) == sum(size >> level for level in range(size.bit_length()))
    lookup = store.__getitem__
    assert assemble([root_addresses(size)], lookup) == [tree.root()]
    for index in range(size):
        assert assemble(inclusion_addresses(index, size), lookup) == tree.inclusion_proof(index)
    for old in range(1, size + 1):
        assert assemble(consistency_addresses(old, size), lookup) == tree.consistency_proof(old)
    assert MerkleTree.from_leaf_hashes(store[(0, i)] for i in range(size)).root() == tree.root()


def test_every_proof_of_the_small_trees_is_rfc_9162s() -> None:
    """Every inclusion and consistency proof of every tree up to 40 leaves: the hashes RFC 9162's recursion names."""
    leaves = [bytes([i]) for i in range(40)]
    tree = tree_of(leaves)
    for size in range(1, 41):
        assert tree.root(size) == mth(leaves[:size])
        for index in range(size):
            expected = [mth(leaves[start:end]) for start, end in path_ranges(index, 0, size)]
            assert tree.inclusion_proof(index, size) == expected
        for old in range(1, size + 1):
            expected = [mth(leaves[start:end]) for start, end in proof_ranges(old, size)]
            assert tree.consistency_proof(old, size) == expected
            verify_consistency(old, size, tree.root(old), tree.root(size), expected)


def test_node_addresses_are_complete_subtrees() -> None:
    """A proof reads at most two nodes a level, each a complete subtree already held."""
    size = 1_000_003
    for index in (0, 1, 524_287, 999_999, size - 1):
        groups = inclusion_addresses(index, size)
        addresses: list[NodeAddress] = [a for group in groups for a in group]
        assert all((i + 1) << level <= size for level, i in addresses)
        assert len(addresses) <= 2 * size.bit_length()


# ----------------------------------------------------------------- refusals, each named


@pytest.fixture(scope="module")
def leaves() -> list[bytes]:
    return [f"entry {i}".encode() for i in range(37)]


def test_a_tampered_leaf_is_refused(leaves: list[bytes]) -> None:
    tree = tree_of(leaves)
    with pytest.raises(ProofError, match=r"does not lead to the root .* leaf altered"):
        verify_inclusion(5, 37, leaf_hash(b"entry 5, altered"), tree.inclusion_proof(5), tree.root())


def test_a_wrong_tree_size_is_refused(leaves: list[bytes]) -> None:
    """A size whose path has another shape is refused by the proof's length; one of the same shape (38 for 37) is
    caught by the root, which the checkpoint signs with its size (``verify_inclusion``'s docstring)."""
    tree, longer = tree_of(leaves), tree_of([*leaves, b"one more"])
    with pytest.raises(ProofError, match="the inclusion proof has 6 hashes, leaf 5 of a tree of 80 needs 7"):
        verify_inclusion(5, 80, tree.leaf_hash(5), tree.inclusion_proof(5), tree.root())
    with pytest.raises(ProofError, match="does not lead to the root of the tree of 38 leaves"):
        verify_inclusion(5, 38, tree.leaf_hash(5), tree.inclusion_proof(5), longer.root())
    with pytest.raises(ProofError, match="leaf index 37 is not below the tree size 37"):
        verify_inclusion(37, 37, tree.leaf_hash(5), tree.inclusion_proof(5), tree.root())


def test_a_proof_for_another_tree_is_refused(leaves: list[bytes]) -> None:
    tree, other = tree_of(leaves), tree_of([*leaves[:20], b"forged", *leaves[21:]])
    with pytest.raises(ProofError, match="does not lead to the root"):
        verify_inclusion(5, 37, tree.leaf_hash(5), other.inclusion_proof(5), tree.root())
    with pytest.raises(ProofError, match="does not lead to the root of the tree of 37"):
        verify_consistency(16, 37, tree.root(16), tree.root(), other.consistency_proof(16))


def test_a_truncated_tree_is_refused(leaves: list[bytes]) -> None:
    """A log rolled back below a saved checkpoint: smaller, or the same size with another root."""
    tree = tree_of(leaves)
    with pytest.raises(ProofError, match=r"shrank from 37 leaves to 30 \(truncated or rolled back"):
        verify_consistency(37, 30, tree.root(), tree.root(30), [])
    rebuilt = tree_of([*leaves[:30], *(b"rewritten %d" % i for i in range(7))])
    with pytest.raises(ProofError, match="two different roots for the same tree size 37"):
        verify_consistency(37, 37, tree.root(), rebuilt.root(), [])


def test_a_leaf_rewritten_below_a_saved_checkpoint_is_refused(leaves: list[bytes]) -> None:
    saved = tree_of(leaves[:21])
    rewritten = tree_of([*leaves[:3], b"rewritten", *leaves[4:], b"more"])
    with pytest.raises(ProofError, match="first 21 leaves no longer give the saved root"):
        verify_consistency(21, 38, saved.root(), rewritten.root(), rewritten.consistency_proof(21))


def test_malformed_proofs_are_refused(leaves: list[bytes]) -> None:
    tree = tree_of(leaves)
    proof = tree.consistency_proof(21)
    with pytest.raises(ProofError, match="has 8 hashes, 21 to 37 leaves needs 7"):
        verify_consistency(21, 37, tree.root(21), tree.root(), [*proof, proof[0]])
    with pytest.raises(ProofError, match="consistency proof hash 1 is 31 bytes"):
        verify_consistency(21, 37, tree.root(21), tree.root(), [proof[0], proof[1][:31], *proof[2:]])
    with pytest.raises(ProofError, match="the leaf hash is 9 bytes"):
        verify_inclusion(0, 37, b"WrongLeaf", tree.inclusion_proof(0), tree.root())
    with pytest.raises(ProofError, match="from the empty tree proves nothing"):
        verify_consistency(0, 37, EMPTY_ROOT, tree.root(), [])


def test_the_tree_refuses_what_it_does_not_hold(leaves: list[bytes]) -> None:
    tree = tree_of(leaves)
    with pytest.raises(ProofError, match="tree size 38 is beyond the 37 leaves held"):
        tree.root(38)
    with pytest.raises(ProofError, match="leaf index 37 is not in a tree of 37 leaves"):
        tree.inclusion_proof(37)
    with pytest.raises(ProofError, match="no complete subtree at level 3, index 4"):
        tree.node((3, 4))
    with pytest.raises(ProofError, match="a leaf hash is 32 bytes, not 3"):
        tree.append_hash(b"abc")
