"""The consent log in memory, a ``LogReader`` for the proof tests: ``merkle.MerkleTree`` per log, the leaves of each
subject, and each log's checkpoints as signed notes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from consentflow.core.checkpoint import Checkpoint, Signer, sign_checkpoint, time_extension
from consentflow.core.ledger import append_entry
from consentflow.core.log_leaves import erasure_notice_leaf, ledger_entry_leaf
from consentflow.core.log_reader import LeafKind, SubjectLeaf, notice_record
from consentflow.core.merkle import MerkleTree
from consentflow.core.state import SubjectState

SIGNED_AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class MemoryLog:
    """Logs by id, each a tree with its subjects' leaves and its signed checkpoints, latest last."""

    def __init__(self) -> None:
        self.trees: dict[str, MerkleTree] = {}
        self.leaves: dict[str, list[SubjectLeaf]] = {}
        self.notes: dict[str, list[str]] = {}

    def append(self, log: str, subject_id: str, kind: LeafKind, data: bytes, record: str) -> SubjectLeaf:
        """Append a leaf of ``subject_id``'s to ``log``."""
        index = self.trees.setdefault(log, MerkleTree()).append(data)
        leaf = SubjectLeaf(log, index, kind, data, record)
        self.leaves.setdefault(subject_id, []).append(leaf)
        return leaf

    def append_entry(self, log: str, entry: Mapping[str, Any]) -> SubjectLeaf:
        """Append a ledger entry's leaf."""
        return self.append(log, entry["subject_id"], LeafKind.LEDGER_ENTRY, ledger_entry_leaf(entry), entry["entry_hash"])

    def append_notice(self, log: str, notice: Mapping[str, Any]) -> SubjectLeaf:
        """Append an erasure notice's leaf."""
        record = notice_record(notice["notice_id"], notice["revision"])
        return self.append(log, notice["subject_id"], LeafKind.ERASURE_NOTICE, erasure_notice_leaf(notice), record)

    def sign(self, log: str, signer: Signer, origin: str | None = None) -> str:
        """Sign a checkpoint of ``log`` as it stands (origin: the key's name and the log's id)."""
        tree = self.trees[log]
        checkpoint = Checkpoint(origin or f"{signer.name}/{log}", tree.size, tree.root(), (time_extension(SIGNED_AT),))
        note = sign_checkpoint(checkpoint, signer)
        self.notes.setdefault(log, []).append(note)
        return note

    def leaves_of(self, subject_id: str) -> Sequence[SubjectLeaf]:
        """The subject's leaves, in each log in index order."""
        return sorted(self.leaves.get(subject_id, ()), key=lambda leaf: (leaf.log, leaf.index))

    def inclusion(self, log: str, index: int, size: int) -> Sequence[bytes]:
        """The inclusion path of a leaf in the tree of ``size`` leaves."""
        return self.trees[log].inclusion_proof(index, size)

    def latest_checkpoint(self, log: str) -> str | None:
        """The log's latest signed note."""
        notes = self.notes.get(log)
        return notes[-1] if notes else None


def ledger_entries(subject_id: str, count: int, purpose: str = "newsletter") -> list[dict[str, Any]]:
    """A subject's chain of ``count`` ledger entries, granted and withdrawn in turn, an hour apart."""
    state = SubjectState(subject_id)
    entries: list[dict[str, Any]] = []
    for n in range(count):
        event = {
            "event_id": f"{subject_id}-consent-{n}",
            "subject_id": subject_id,
            "occurred_at": datetime(2026, 1, 1, n % 24, tzinfo=UTC),
            "purpose": purpose,
            "action": "withdrawn" if n % 2 else "granted",
            "channel": "web",
            "policy_version": "2026-01-01",
            "source_service": "signup",
            "notice_id": None,
        }
        entries.append(dict(append_entry(state, event, None)))  # type: ignore[arg-type]
    return entries


def erasure_notice(subject_id: str, notice_id: str, revision: int = 0) -> dict[str, Any]:
    """An erasure notice of the subject's to one recipient (metadata only)."""
    return {
        "notice_id": notice_id,
        "subject_id": subject_id,
        "recipient_id": "postwave",
        "categories": ["email", "name"],
        "retained_categories": [],
        "request_id": f"{subject_id}-erasure",
        "requested_at": datetime(2026, 2, 1, tzinfo=UTC),
        "fulfilled_at": datetime(2026, 2, 2, tzinfo=UTC),
        "revision": revision,
    }
