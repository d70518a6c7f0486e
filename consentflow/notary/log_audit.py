"""The consent log's audit read from ClickHouse (issue 22, ``consentflow verify --checkpoint``): the tables read in
bulk, a few queries in all (never one per subject), and handed to ``core.log_audit``'s checks.

Per log: its leaves in index order, streamed once into the tree's fold and kept as (subject, hash) for the tables'
check; its stored nodes; its signed notes (``LogStore``). Then the ledger and the erasure notices, each row rebuilt
into its leaf (``core.log_leaves``), streamed once each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from consentflow.core.checkpoint import Checkpoint, Verifier
from consentflow.core.ledger import HASHED_FIELDS
from consentflow.core.log_audit import (
    Finding,
    RowLeaf,
    StoredLeaf,
    TreeAudit,
    check_saved,
    match_rows,
    open_saved,
    open_stored,
)
from consentflow.core.log_leaves import erasure_notice_leaf, ledger_entry_leaf
from consentflow.core.log_reader import notice_record
from consentflow.core.merkle import leaf_hash
from consentflow.notary.store import NOTICE_KIND, LogStore, log_origin
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import utc
from consentflow.sinks.tables import CHECKPOINTS, ERASURE_NOTICES, LEDGER, LOG_LEAVES, LOG_NODES

_NOTICE_COLUMNS = (
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


@dataclass
class LogAudit:
    """What the audit checked, and what it found."""

    logs: list[str] = field(default_factory=list)
    leaves: int = 0
    checkpoints: int = 0
    ledger_rows: int = 0
    notices: int = 0
    saved: tuple[str, Checkpoint] | None = None  # the saved checkpoint's log and contents, once its signature holds
    latest: dict[str, Checkpoint] = field(default_factory=dict)  # each log's latest checkpoint signed by the key
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing was found."""
        return not self.findings


def _rows(reader: TableReader, sql: str, parameters: dict[str, Any] | None = None) -> Iterator[list[Any]]:
    with reader.blocks(sql, parameters) as stream:
        for block in stream:
            yield from block


def stored_logs(reader: TableReader) -> list[str]:
    """Every log with a leaf or a checkpoint stored, by name."""
    rows = reader.query(
        f"SELECT log_id FROM {{db:Identifier}}.`{LOG_LEAVES.name}` "
        f"UNION DISTINCT SELECT log_id FROM {{db:Identifier}}.`{CHECKPOINTS.name}`"
    )
    return sorted(str(log) for (log,) in rows)


def _log_leaves(reader: TableReader, log: str, tree: TreeAudit) -> list[StoredLeaf]:
    """The log's leaves in (index, hash) order, each folded into ``tree``; a redelivered equal row read once."""
    leaves: list[StoredLeaf] = []
    sql = (
        "SELECT DISTINCT leaf_index, leaf_hash, subject_id, kind, record_id, revision "
        f"FROM {{db:Identifier}}.`{LOG_LEAVES.name}` WHERE log_id = {{log:String}} ORDER BY leaf_index, leaf_hash"
    )
    previous: tuple[int, bytes] | None = None
    for index, digest, subject, kind, record_id, revision in _rows(reader, sql, {"log": log}):
        address = (int(index), bytes(digest))
        if address != previous:  # the same leaf named twice (its metadata rewritten) is one leaf of the tree
            tree.add(*address)
            previous = address
        if kind == NOTICE_KIND:
            notice: tuple[str, int] | None = (str(record_id), int(revision))
            record = f"erasure notice {notice_record(str(record_id), int(revision))}"
        else:
            notice, record = None, f"ledger entry {record_id}"
        leaves.append(StoredLeaf(log, address[0], address[1], str(subject), record, notice))
    return leaves


def _log_nodes(reader: TableReader, log: str) -> Iterator[tuple[int, int, bytes]]:
    sql = f"SELECT DISTINCT level, node_index, hash FROM {{db:Identifier}}.`{LOG_NODES.name}` WHERE log_id = {{log:String}} ORDER BY level, node_index"
    for level, index, digest in _rows(reader, sql, {"log": log}):
        yield int(level), int(index), bytes(digest)


def ledger_row_leaves(reader: TableReader) -> Iterator[RowLeaf]:
    """Every ledger row as the leaf it must be (a redelivered row read once)."""
    columns = ", ".join(f"`{name}`" for name in HASHED_FIELDS)
    sql = f"SELECT DISTINCT {columns}, entry_hash FROM {{db:Identifier}}.`{LEDGER.name}`"
    for row in _rows(reader, sql):
        entry: dict[str, Any] = dict(zip(HASHED_FIELDS, row, strict=False))
        entry["occurred_at"] = utc(entry["occurred_at"])
        name = f"ledger row of subject {entry['subject_id']}, sequence {entry['sequence']} (entry_hash {row[-1]})"
        yield RowLeaf(str(entry["subject_id"]), leaf_hash(ledger_entry_leaf(entry)), name)


def notice_row_leaves(reader: TableReader) -> Iterator[RowLeaf]:
    """Every erasure-notice row (each revision the table still holds) as the leaf it must be."""
    columns = ", ".join(f"`{name}`" for name in _NOTICE_COLUMNS)
    sql = f"SELECT DISTINCT {columns} FROM {{db:Identifier}}.`{ERASURE_NOTICES.name}`"
    for row in _rows(reader, sql):
        notice: dict[str, Any] = dict(zip(_NOTICE_COLUMNS, row, strict=True))
        notice["requested_at"], notice["fulfilled_at"] = utc(notice["requested_at"]), utc(notice["fulfilled_at"])
        notice["revision"] = revision = int(notice["revision"])
        record = notice_record(str(notice["notice_id"]), revision)
        name = f"erasure-notice row {record} of subject {notice['subject_id']}"
        yield RowLeaf(
            str(notice["subject_id"]), leaf_hash(erasure_notice_leaf(notice)), name, (str(notice["notice_id"]), revision)
        )


def audit_log(reader: TableReader, verifier: Verifier, saved_note: str) -> LogAudit:
    """Audit every log in ``reader``'s database against the key ``verifier`` and the checkpoint saved as ``saved_note``."""
    audit = LogAudit(logs=stored_logs(reader))
    leaves: list[StoredLeaf] = []
    sizes: dict[str, int] = {}
    for log in audit.logs:
        store = LogStore(reader, log)
        tree = TreeAudit(log)
        leaves += _log_leaves(reader, log, tree)
        tree.check_nodes(_log_nodes(reader, log))
        notes = store.checkpoints()
        audit.checkpoints += len(notes)
        opened, findings = open_stored(log, log_origin(verifier.name, log), notes, verifier)
        audit.findings += findings
        tree.check_roots(opened)
        audit.findings += tree.findings
        sizes[log] = tree.stored_size
        if opened:
            audit.latest[log] = max(opened, key=lambda checkpoint: checkpoint.size)
    audit.leaves = len(leaves)

    saved = open_saved(saved_note, verifier, {log_origin(verifier.name, log): log for log in audit.logs})
    if isinstance(saved, Finding):
        audit.findings.insert(0, saved)
    else:
        audit.saved = log, checkpoint = saved
        proof = LogStore(reader, log).consistency_proof
        audit.findings[:0] = check_saved(log, checkpoint, sizes[log], audit.latest.get(log), proof)

    rows = [*ledger_row_leaves(reader)]
    audit.ledger_rows = len(rows)
    rows += notice_row_leaves(reader)
    audit.notices = len(rows) - audit.ledger_rows
    audit.findings += match_rows(leaves, rows)
    return audit
