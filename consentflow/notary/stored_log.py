"""The consent log as ClickHouse keeps it, read as a ``core.log_reader.LogReader`` (issue 22): what a subject's proof
needs, from the log tables and the rows the leaves stand for.

``log_leaves`` stores each leaf's hash, not its bytes: the bytes are rebuilt (``core.log_leaves``) from the ledger row
(by its ``entry_hash``) or the erasure notice's revision the leaf names, and each rebuilt leaf must hash to the stored
leaf hash. A leaf whose row is gone or no longer hashes to it is a ``StoredLogError`` naming the leaf: the proof is
never built over bytes the log did not sign. An erasure notice's revision below the highest the table holds is left
out: the table may keep only the latest once its parts merge, and the latest is the one proven. A database made
before the log (no ``log_leaves``) holds no leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consentflow.core.ledger import HASHED_FIELDS
from consentflow.core.log_leaves import erasure_notice_leaf, ledger_entry_leaf
from consentflow.core.log_reader import LeafKind, SubjectLeaf, notice_record
from consentflow.core.merkle import ProofError, leaf_hash
from consentflow.notary.store import LEDGER_KIND, NOTICE_KIND, LogStore
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import utc
from consentflow.sinks.tables import CHECKPOINTS, ERASURE_NOTICES, LEDGER, LOG_LEAVES

#: The ledger columns a ledger entry's leaf is rebuilt from (``ledger_row_leaf``), then its entry_hash.
LEDGER_LEAF_COLUMNS = (*HASHED_FIELDS, "entry_hash")
#: The erasure-notice columns a notice's leaf is rebuilt from (``notice_row_leaf``).
NOTICE_LEAF_COLUMNS = (
    "notice_id",
    "subject_id",
    "recipient_id",
    "categories",
    "retained_categories",
    "request_id",
    "requested_at",
    "fulfilled_at",
    "revision",
)


def columns_sql(columns: Sequence[str]) -> str:
    """``columns`` quoted for a SELECT list."""
    return ", ".join(f"`{name}`" for name in columns)


def ledger_row_leaf(row: Sequence[Any]) -> tuple[dict[str, Any], bytes]:
    """A ledger row read as ``LEDGER_LEAF_COLUMNS``: the entry (times as UTC instants) and its leaf bytes."""
    entry: dict[str, Any] = dict(zip(HASHED_FIELDS, row, strict=False))
    entry["occurred_at"] = utc(entry["occurred_at"])
    return entry, ledger_entry_leaf(entry)


def notice_row_leaf(row: Sequence[Any]) -> tuple[dict[str, Any], bytes]:
    """An erasure-notice row read as ``NOTICE_LEAF_COLUMNS``: the notice (times as UTC instants, the revision an int)
    and its leaf bytes."""
    notice: dict[str, Any] = dict(zip(NOTICE_LEAF_COLUMNS, row, strict=True))
    notice["requested_at"], notice["fulfilled_at"] = utc(notice["requested_at"]), utc(notice["fulfilled_at"])
    notice["revision"] = int(notice["revision"])
    return notice, erasure_notice_leaf(notice)


class StoredLogError(ProofError, LookupError):
    """A stored leaf whose record cannot be rebuilt into the bytes the log holds (gone, or altered): no proof of it."""


class StoredLog:
    """Every log in one database, read through ``reader``; a ``LogReader``."""

    def __init__(self, reader: TableReader) -> None:
        self.reader = reader
        self._stores: dict[str, LogStore] = {}

    def _store(self, log: str) -> LogStore:
        return self._stores.setdefault(log, LogStore(self.reader, log))

    def logs(self) -> list[str]:
        """The logs with a signed checkpoint, by name."""
        rows = self.reader.query(f"SELECT DISTINCT log_id FROM {{db:Identifier}}.`{CHECKPOINTS.name}` ORDER BY log_id")
        return [str(log) for (log,) in rows]

    def kept(self) -> bool:
        """Whether the database has the log's tables (one made before the log has none)."""
        rows = self.reader.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String}",
            {"table": LOG_LEAVES.name},
        )
        return bool(rows[0][0])

    def leaves_of(self, subject_id: str) -> Sequence[SubjectLeaf]:
        """The subject's leaves, in each log in index order, each rebuilt and checked against its stored hash; a notice's
        revisions superseded in the table left out."""
        if not self.kept():
            return []
        rows = self.reader.query(
            f"SELECT DISTINCT log_id, leaf_index, leaf_hash, kind, record_id, revision FROM {{db:Identifier}}.`{LOG_LEAVES.name}` "
            "WHERE subject_id = {subject:String} ORDER BY log_id, leaf_index",
            {"subject": subject_id},
        )
        entries = self._ledger_leaves(subject_id, [str(row[4]) for row in rows if row[3] == LEDGER_KIND])
        notices, latest = self._notice_leaves(subject_id, [str(row[4]) for row in rows if row[3] == NOTICE_KIND])
        leaves: list[SubjectLeaf] = []
        for log, index, digest, kind, record_id, revision in rows:
            if kind == LEDGER_KIND:
                leaf_kind, record, data = LeafKind.LEDGER_ENTRY, str(record_id), entries.get(str(record_id))
            elif int(revision) < latest.get(str(record_id), -1):
                continue  # superseded by a revision in the table, which is proven instead (merges keep only the latest)
            else:
                record = notice_record(str(record_id), int(revision))
                leaf_kind, data = LeafKind.ERASURE_NOTICE, notices.get(record)
            name = f"leaf {index} of log {log!r} ({leaf_kind.value} {record})"
            if data is None:
                raise StoredLogError(f"{name}: its record is not in the tables, so its leaf cannot be rebuilt")
            if leaf_hash(data) != bytes(digest):
                raise StoredLogError(f"{name}: its record no longer hashes to the stored leaf hash (the record was altered)")
            leaves.append(SubjectLeaf(str(log), int(index), leaf_kind, data, record))
        return leaves

    def _ledger_leaves(self, subject_id: str, hashes: list[str]) -> dict[str, bytes]:
        """The leaf bytes of the subject's ledger entries among ``hashes``, by entry_hash."""
        if not hashes:
            return {}
        rows = self.reader.query(
            f"SELECT DISTINCT {columns_sql(LEDGER_LEAF_COLUMNS)} FROM {{db:Identifier}}.`{LEDGER.name}` "
            "WHERE subject_id = {subject:String} AND entry_hash IN {hashes:Array(String)}",
            {"subject": subject_id, "hashes": sorted(set(hashes))},
        )
        found: dict[str, bytes] = {}
        for row in rows:
            found[str(row[-1])] = ledger_row_leaf(row)[1]
        return found

    def _notice_leaves(self, subject_id: str, notice_ids: list[str]) -> tuple[dict[str, bytes], dict[str, int]]:
        """The leaf bytes of each stored revision of the subject's notices among ``notice_ids``, by notice record; and
        each notice's highest revision stored, by notice id."""
        if not notice_ids:
            return {}, {}
        rows = self.reader.query(
            f"SELECT DISTINCT {columns_sql(NOTICE_LEAF_COLUMNS)} FROM {{db:Identifier}}.`{ERASURE_NOTICES.name}` "
            "WHERE subject_id = {subject:String} AND notice_id IN {ids:Array(String)}",
            {"subject": subject_id, "ids": sorted(set(notice_ids))},
        )
        found: dict[str, bytes] = {}
        latest: dict[str, int] = {}
        for row in rows:
            notice, data = notice_row_leaf(row)
            revision = notice["revision"]
            found[notice_record(notice["notice_id"], revision)] = data
            latest[notice["notice_id"]] = max(latest.get(notice["notice_id"], -1), revision)
        return found, latest

    def inclusion(self, log: str, index: int, size: int) -> Sequence[bytes]:
        """PATH(index, D[0:size]) of ``log`` from its stored nodes."""
        return self._store(log).inclusion_proof(index, size)

    def latest_checkpoint(self, log: str) -> str | None:
        """The log's latest signed note, or None before its first."""
        return self._store(log).latest_checkpoint()
