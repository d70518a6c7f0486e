"""The consent log's audit checks, no database (issue 22): a saved checkpoint held against a log that grew, one that
was rewritten and re-signed with the same key, one truncated; the stored tree recomputed leaf by leaf (a gap, two
hashes at one index, a node altered); rows against leaves (a redelivery and a superseded notice revision are no
finding, a row or leaf alone is)."""

from __future__ import annotations

from consentflow.core.checkpoint import Checkpoint, Signer, sign_checkpoint
from consentflow.core.log_audit import RowLeaf, StoredLeaf, TreeAudit, check_saved, match_rows, open_saved, open_stored
from consentflow.core.merkle import MerkleTree, leaf_hash

SIGNER = Signer.generate("consentflow.example/log")
ORIGIN = "consentflow.example/log/embedded"


def tree_of(leaves: list[bytes]) -> MerkleTree:
    tree = MerkleTree()
    tree.extend(leaves)
    return tree


def checkpoint(tree: MerkleTree, size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, tree.root(size))


LEAVES = [f"entry {n}".encode() for n in range(20)]


def test_a_log_that_only_grew_extends_the_saved_checkpoint() -> None:
    tree = tree_of(LEAVES)
    assert check_saved("embedded", checkpoint(tree, 12), 20, checkpoint(tree, 20), tree.consistency_proof) == []
    assert check_saved("embedded", checkpoint(tree, 20), 20, checkpoint(tree, 20), tree.consistency_proof) == []


def test_a_log_rewritten_and_re_signed_with_the_same_key_does_not_extend_the_saved_checkpoint() -> None:
    saved = checkpoint(tree_of(LEAVES), 12)
    rewritten = tree_of([*LEAVES[:3], b"forged", *LEAVES[4:]])  # every stored checkpoint of it signs and recomputes
    (finding,) = check_saved("embedded", saved, 20, checkpoint(rewritten, 20), rewritten.consistency_proof)
    assert str(finding).startswith("log 'embedded', the saved checkpoint (size 12): not consistent with the latest")
    assert "no longer give the saved root" in str(finding)
    (same_size,) = check_saved("embedded", saved, 20, checkpoint(rewritten, 12), rewritten.consistency_proof)
    assert "two different roots for the same tree size 12" in str(same_size)


def test_a_log_truncated_below_the_saved_checkpoint() -> None:
    tree = tree_of(LEAVES)
    (finding,) = check_saved("embedded", checkpoint(tree, 20), 12, checkpoint(tree, 12), tree.consistency_proof)
    assert finding.what == "log truncated (rolled back) below the saved checkpoint: 12 leaves stored, checkpoint signs 20"


def test_the_saved_checkpoint_names_its_key_and_its_log() -> None:
    note = sign_checkpoint(checkpoint(tree_of(LEAVES), 20), SIGNER)
    assert open_saved(note, SIGNER.verifier, {ORIGIN: "embedded"}) == ("embedded", checkpoint(tree_of(LEAVES), 20))
    unknown = open_saved(note, SIGNER.verifier, {"consentflow.example/log/ledger/0": "ledger/0"})
    assert str(unknown) == f"the saved checkpoint: its log {ORIGIN!r} is not in the database (no leaf, no checkpoint)"
    other = Signer.generate("consentflow.example/log")
    assert "signed with another key" in str(open_saved(note, other.verifier, {ORIGIN: "embedded"}))
    opened, findings = open_stored(
        "embedded", ORIGIN, [note, sign_checkpoint(checkpoint(tree_of(LEAVES), 12), other)], SIGNER.verifier
    )
    assert len(opened) == 1 and [f.where for f in findings] == ["log 'embedded', stored checkpoint 2 of 2 (size 12)"]


def audited(hashes: list[tuple[int, bytes]], tree: MerkleTree) -> TreeAudit:
    audit = TreeAudit("embedded")
    for index, digest in hashes:
        audit.add(index, digest)
    nodes = [(level, index, tree.node((level, index))) for level in range(1, 5) for index in range(tree.size >> level)]
    audit.check_nodes(nodes)
    audit.check_roots([checkpoint(tree, 8), checkpoint(tree, 20)])
    return audit


def test_the_stored_tree_recomputed_clean() -> None:
    tree = tree_of(LEAVES)
    assert audited([(i, tree.leaf_hash(i)) for i in range(20)], tree).findings == []


def test_a_leaf_altered_names_the_lowest_node_and_the_roots() -> None:
    tree = tree_of(LEAVES)
    hashes = [(i, leaf_hash(b"forged") if i == 5 else tree.leaf_hash(i)) for i in range(20)]
    assert [str(f) for f in audited(hashes, tree).findings] == [
        "log 'embedded', node (1, 2): differs from the hash recomputed from leaves 4 to 5 (a node or leaf altered)",
        "log 'embedded', stored checkpoint at size 8: its signed root is not the root of the stored leaves 0 to 7 (a leaf altered)",
        "log 'embedded', stored checkpoint at size 20: its signed root is not the root of the stored leaves 0 to 19 (a leaf altered)",
    ]


def test_a_gap_and_a_second_hash_at_one_index_stop_the_fold() -> None:
    tree = tree_of(LEAVES)
    gap = audited([(i, tree.leaf_hash(i)) for i in range(20) if i != 10], tree)
    assert [f.where for f in gap.findings[:1]] == ["log 'embedded', leaf 10"]
    assert gap.findings[0].what == "leaves 10 to 10 are missing (deleted)"
    assert gap.findings[-1].what == "not recomputed: the stored leaves break off at 10"
    twice = audited([*((i, tree.leaf_hash(i)) for i in range(11)), (10, leaf_hash(b"forged"))], tree)
    assert "log 'embedded', leaf 10: two different leaf hashes stored (the log was rewritten)" in map(str, twice.findings)


def test_rows_against_leaves() -> None:
    a, b, n1, n2, lone = (leaf_hash(data) for data in (b"a", b"b", b"n@1", b"n@2", b"lone"))
    leaves = [
        StoredLeaf("embedded", 0, a, "s", "ledger entry a"),
        StoredLeaf("embedded", 1, a, "s", "ledger entry a"),  # a redelivery
        StoredLeaf("embedded", 2, n1, "s", "erasure notice n@1", ("n", 1)),  # superseded by n@2 in the table
        StoredLeaf("embedded", 3, n2, "s", "erasure notice n@2", ("n", 2)),
        StoredLeaf("embedded", 4, lone, "s", "ledger entry lone"),
    ]
    rows = [RowLeaf("s", a, "ledger row a"), RowLeaf("s", n2, "notice row n@2", ("n", 2)), RowLeaf("s", b, "ledger row b")]
    assert [str(f) for f in match_rows(leaves, rows)] == [
        "log 'embedded', leaf 4: ledger entry lone of subject s: no row rebuilds to it (the row deleted or altered)",
        "ledger row b: is not a leaf of the log (inserted, altered or rewritten after it was logged)",
    ]
    assert len(match_rows(leaves[:3], rows[:1])) == 1  # n@1 with no higher revision in the table is a finding
    assert match_rows(leaves, [RowLeaf("t", a, "row of another subject")])[0].where == "log 'embedded', leaf 0"
