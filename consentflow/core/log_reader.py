"""What a subject's proof needs from wherever the consent log is kept (issue 22): the interface, no I/O.

``LogReader`` is the small read side of the log's store: a subject's leaves, an inclusion path, a log's latest signed
checkpoint. ``consentflow.core.log_proof`` builds the proof document from it; the ClickHouse store answers it, and the
tests answer it from memory (``tests/support/memory_log.py``), so the proof and its commands never see a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class LeafKind(StrEnum):
    """What a leaf records: a ledger entry or an erasure notice (each revision of a notice is a leaf)."""

    LEDGER_ENTRY = "ledger-entry"
    ERASURE_NOTICE = "erasure-notice"


@dataclass(frozen=True)
class SubjectLeaf:
    """One leaf of a subject's: the log it is in, its index there, its bytes (``consentflow.core.log_leaves``) and the
    record it stands for, named as the tables name it.

    ``record`` is the ledger row's ``entry_hash`` (hex) for an entry, ``<notice_id>@<revision>`` for a notice; a
    ledger row's ``entry_hash`` comes from the row, not from the leaf, so a proof can show the two agree.
    """

    log: str
    index: int
    kind: LeafKind
    data: bytes
    record: str


class LogReader(Protocol):
    """The read side of the consent log's store that proofs need."""

    def leaves_of(self, subject_id: str) -> Sequence[SubjectLeaf]:
        """Every leaf of the subject's, in each log in index order (redelivered records included: each is a leaf)."""
        ...

    def inclusion(self, log: str, index: int, size: int) -> Sequence[bytes]:
        """PATH(index, D[0:size]) of ``log`` (RFC 9162 §2.1.3.1): the hashes, the one nearest the leaf first."""
        ...

    def latest_checkpoint(self, log: str) -> str | None:
        """The latest signed checkpoint of ``log`` (the signed note's text), or None before its first."""
        ...


def notice_record(notice_id: str, revision: int) -> str:
    """How a ``SubjectLeaf`` names an erasure notice's revision."""
    return f"{notice_id}@{revision}"
