"""Auditing the consent log (issue 22, ``consentflow verify --checkpoint``): the checks, no I/O.

An auditor holds a checkpoint saved earlier and the log's public key. ``notary.log_audit`` reads the tables in bulk
and hands them here; every check returns ``Finding``s, each naming the log, the leaf, node, row or checkpoint, and
what is wrong:

* ``check_saved`` — the saved checkpoint still holds: the log has not shrunk below it, and an RFC 9162 consistency
  proof (§2.1.4) leads from it to the latest stored checkpoint, so no leaf it signed was altered or removed since;
* ``open_stored`` and ``TreeAudit`` — every stored checkpoint is signed by the key, and its root is the root of the
  stored leaf hashes at its size: one pass over the leaves in index order (``merkle.MerkleTree``'s incremental fold),
  each stored node compared on the way with the one recomputed, so an altered leaf or node is named by its index;
* ``match_rows`` — the tables against the leaves: every ledger row and erasure notice rebuilds (``core.log_leaves``)
  to a leaf of its subject's, and every leaf is a row, a redelivery of one (the same leaf hash again), or a revision
  of a notice the table has superseded (it may keep only a notice's latest revision once its parts merge).

A chain rewritten consistently, hashes and all, passes ``ledger.verify_chain``; its rows are no longer the leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from consentflow.core.checkpoint import Checkpoint, NoteError, Verifier, open_checkpoint
from consentflow.core.merkle import HASH_SIZE, MerkleTree, ProofError, verify_consistency

#: The log's consistency proof between two sizes, from wherever it is stored (``LogStore.consistency_proof``).
ConsistencyProof = Callable[[int, int], Sequence[bytes]]


@dataclass(frozen=True)
class Finding:
    """One thing the audit found wrong: where (log and leaf, node, row or checkpoint), and what."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(frozen=True)
class StoredLeaf:
    """A leaf as ``log_leaves`` holds it: its address and hash, and the record it says it stands for."""

    log: str
    index: int
    leaf_hash: bytes
    subject_id: str
    record: str  # how to name it: "ledger entry <entry_hash>" or "erasure notice <id>@<revision>"
    notice: tuple[str, int] | None = None  # an erasure notice's (notice_id, revision)


@dataclass(frozen=True)
class RowLeaf:
    """A table row as the leaf it must be: its subject, the hash of its rebuilt leaf, its name, for a notice its
    (notice_id, revision)."""

    subject_id: str
    leaf_hash: bytes
    name: str
    notice: tuple[str, int] | None = None


def _unsigned_size(note: str) -> str:
    """A stored note's tree size, read without its signature, to name it; '?' when unreadable."""
    try:
        return str(Checkpoint.parse(note[: note.rfind("\n\n") + 1]).size)
    except NoteError:
        return "?"


def open_stored(log: str, origin: str, notes: Sequence[str], verifier: Verifier) -> tuple[list[Checkpoint], list[Finding]]:
    """The stored checkpoints of ``log`` (oldest first) that ``verifier`` signed for ``origin``; a finding for each
    other one (another key's, altered, of another log)."""
    opened: list[Checkpoint] = []
    findings: list[Finding] = []
    for number, note in enumerate(notes, 1):
        try:
            opened.append(open_checkpoint(note, verifier, origin))
        except NoteError as error:
            where = f"log {log!r}, stored checkpoint {number} of {len(notes)} (size {_unsigned_size(note)})"
            findings.append(Finding(where, str(error)))
    return opened, findings


def open_saved(note: str, verifier: Verifier, logs: Mapping[str, str]) -> tuple[str, Checkpoint] | Finding:
    """The log (``logs`` maps each stored log's origin to its name) and the checkpoint of a saved note, once
    ``verifier``'s signature on it verifies; else the finding."""
    try:
        checkpoint = open_checkpoint(note, verifier)
    except NoteError as error:
        return Finding("the saved checkpoint", str(error))
    log = logs.get(checkpoint.origin)
    if log is None:
        return Finding("the saved checkpoint", f"its log {checkpoint.origin!r} is not in the database (no leaf, no checkpoint)")
    return log, checkpoint


def check_saved(
    log: str, saved: Checkpoint, stored_size: int, latest: Checkpoint | None, proof: ConsistencyProof
) -> list[Finding]:
    """Whether the log still extends the saved checkpoint: no fewer leaves stored than it signs, and the latest stored
    checkpoint (signature checked) consistent with it (RFC 9162 §2.1.4.2, the proof from the stored nodes)."""
    where = f"log {log!r}, the saved checkpoint (size {saved.size})"
    if stored_size < saved.size:
        return [
            Finding(
                where,
                f"log truncated (rolled back) below the saved checkpoint: {stored_size} leaves stored, "
                f"checkpoint signs {saved.size}",
            )
        ]
    if latest is None:
        return [Finding(where, "the log has no stored checkpoint signed by the key to prove it against")]
    if latest.size < saved.size:
        return [
            Finding(
                where, f"the latest stored checkpoint signs {latest.size} leaves, fewer than the saved {saved.size} (rolled back)"
            )
        ]
    try:
        path = proof(saved.size, latest.size) if latest.size > saved.size else []
        verify_consistency(saved.size, latest.size, saved.root, latest.root, path)
    except ProofError as error:
        return [Finding(where, f"not consistent with the latest stored checkpoint (size {latest.size}): {error}")]
    return []


@dataclass
class TreeAudit:
    """One log's stored tree, recomputed: ``add`` each stored leaf hash in index order, then ``check_nodes`` and
    ``check_roots``. Folding stops at the first gap or rewrite (what lies above it cannot be recomputed)."""

    log: str
    tree: MerkleTree = field(default_factory=MerkleTree)
    stored_size: int = 0  # the highest leaf index stored, plus one
    folding: bool = True
    findings: list[Finding] = field(default_factory=list)

    def _leaf(self, index: int) -> str:
        return f"log {self.log!r}, leaf {index}"

    def add(self, index: int, digest: bytes) -> None:
        """The next stored leaf, in (index, hash) order: equal rows at one index come once (a redelivery collapses)."""
        folded = self.tree.size
        self.stored_size = max(self.stored_size, index + 1)
        if not self.folding:
            return
        if index == folded - 1:
            self.findings.append(Finding(self._leaf(index), "two different leaf hashes stored (the log was rewritten)"))
            self.folding = False
        elif index > folded:
            self.findings.append(Finding(self._leaf(folded), f"leaves {folded} to {index - 1} are missing (deleted)"))
            self.folding = False
        elif len(digest) != HASH_SIZE:
            self.findings.append(Finding(self._leaf(index), f"the stored hash is {len(digest)} bytes, not {HASH_SIZE}"))
            self.folding = False
        else:
            self.tree.append_hash(digest)

    def check_nodes(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        """Compare each stored node ``(level, index, hash)`` (level 1 up, lowest level first) with the one recomputed
        from the leaves; name the lowest that differs (those above it differ with it) and a level that lacks some."""
        size = self.tree.size
        seen: set[tuple[int, int]] = set()
        named: list[tuple[int, int]] = []  # the leaf ranges of the nodes named so far
        for level, index, digest in nodes:
            first, last = index << level, ((index + 1) << level) - 1
            # A node above the stored leaves is left alone: a batch cut short by a crash wrote it, its append again will.
            if last < size and level >= 1:
                seen.add((level, index))
                differs = self.tree.node((level, index)) != digest
                if differs and not any(first <= low and high <= last for low, high in named):  # the lowest says it
                    named.append((first, last))
                    where = f"log {self.log!r}, node ({level}, {index})"
                    what = f"differs from the hash recomputed from leaves {first} to {last} (a node or leaf altered)"
                    self.findings.append(Finding(where, what))
        for level in range(1, size.bit_length()):
            missing = [index for index in range(size >> level) if (level, index) not in seen]
            if missing:
                where = f"log {self.log!r}, node ({level}, {missing[0]})"
                self.findings.append(Finding(where, f"missing (and {len(missing) - 1} more at level {level}): proofs need it"))

    def check_roots(self, checkpoints: Iterable[Checkpoint]) -> None:
        """Each signed checkpoint's root against the root of the stored leaves at its size."""
        for checkpoint in checkpoints:
            where = f"log {self.log!r}, stored checkpoint at size {checkpoint.size}"
            if checkpoint.size > self.stored_size:
                what = f"signs {checkpoint.size} leaves, the log stores {self.stored_size} (truncated or rolled back)"
                self.findings.append(Finding(where, what))
            elif checkpoint.size > self.tree.size:
                self.findings.append(Finding(where, f"not recomputed: the stored leaves break off at {self.tree.size}"))
            elif self.tree.root(checkpoint.size) != checkpoint.root:
                what = f"its signed root is not the root of the stored leaves 0 to {checkpoint.size - 1} (a leaf altered)"
                self.findings.append(Finding(where, what))


def match_rows(leaves: Iterable[StoredLeaf], rows: Iterable[RowLeaf]) -> list[Finding]:
    """The tables against the leaves, by (subject, leaf hash): a row that is no leaf, a leaf that is no row (unless a
    redelivery of one, or a notice revision below the table's latest of that notice)."""
    by_leaf: dict[tuple[str, bytes], RowLeaf] = {}
    latest_revision: dict[tuple[str, str], int] = {}
    for row in rows:
        by_leaf.setdefault((row.subject_id, row.leaf_hash), row)
        if row.notice is not None:
            notice = (row.subject_id, row.notice[0])
            latest_revision[notice] = max(latest_revision.get(notice, -1), row.notice[1])
    findings: list[Finding] = []
    matched: set[tuple[str, bytes]] = set()
    for leaf in leaves:
        key = (leaf.subject_id, leaf.leaf_hash)
        if key in by_leaf:
            matched.add(key)
        elif leaf.notice is None or latest_revision.get((leaf.subject_id, leaf.notice[0]), -1) <= leaf.notice[1]:
            where = f"log {leaf.log!r}, leaf {leaf.index}"
            what = f"{leaf.record} of subject {leaf.subject_id}: no row rebuilds to it (the row deleted or altered)"
            findings.append(Finding(where, what))
    findings.extend(
        Finding(row.name, "is not a leaf of the log (inserted, altered or rewritten after it was logged)")
        for key, row in by_leaf.items()
        if key not in matched
    )
    return findings
