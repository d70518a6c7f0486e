"""The consent log's audit read from ClickHouse (issue 22, ``consentflow verify --checkpoint``): the tables read in
bulk, a few queries in all (never one per subject), and handed to ``core.log_audit``'s checks.

Per log: its leaves in index order, streamed once into the tree's fold and kept as (subject, hash) for the tables'
check; its stored nodes; its signed notes (``LogStore``). Then the ledger and the erasure notices, each row rebuilt
into its leaf (``core.log_leaves``), streamed once each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from consentflow.core.checkpoint import Checkpoint, Verifier
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
from consentflow.core.log_reader import notice_record
from consentflow.core.merkle import leaf_hash
from consentflow.notary.store import NOTICE_KIND, LogStore, log_origin
from consentflow.notary.stored_log import (
    LEDGER_LEAF_COLUMNS,
    NOTICE_LEAF_COLUMNS,
    columns_sql,
    ledger_row_leaf,
    notice_row_leaf,
)
from consentflow.sinks.reader import TableReader
from consentflow.sinks.tables import CHECKPOINTS, ERASURE_NOTICES, LEDGER, LOG_LEAVES, LOG_NODES


@dataclass
class LogAudit:
    """What the audit checked, and what it found."""

    logs: list[str] = field(default_factory=list)
    leaves: int = 0
    checkpoints: int = 0
    ledger_rows: int = 0
    notices: int = 0
    saved: list[tuple[str, Checkpoint]] = field(default_factory=list)  # each saved note's log and checkpoint, signature held
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
    sql = f"SELECT DISTINCT {columns_sql(LEDGER_LEAF_COLUMNS)} FROM {{db:Identifier}}.`{LEDGER.name}`"
    for row in _rows(reader, sql):
        entry, data = ledger_row_leaf(row)
        name = f"ledger row of subject {entry['subject_id']}, sequence {entry['sequence']} (entry_hash {row[-1]})"
        yield RowLeaf(str(entry["subject_id"]), leaf_hash(data), name)


def notice_row_leaves(reader: TableReader) -> Iterator[RowLeaf]:
    """Every erasure-notice row (each revision the table still holds) as the leaf it must be."""
    sql = f"SELECT DISTINCT {columns_sql(NOTICE_LEAF_COLUMNS)} FROM {{db:Identifier}}.`{ERASURE_NOTICES.name}`"
    for row in _rows(reader, sql):
        notice, data = notice_row_leaf(row)
        revision = notice["revision"]
        record = notice_record(str(notice["notice_id"]), revision)
        name = f"erasure-notice row {record} of subject {notice['subject_id']}"
        yield RowLeaf(str(notice["subject_id"]), leaf_hash(data), name, (str(notice["notice_id"]), revision))


def audit_log(reader: TableReader, verifier: Verifier, saved_notes: Sequence[str]) -> LogAudit:
    """Audit every log in ``reader``'s database against the key ``verifier`` and the checkpoints saved as ``saved_notes``
    (one or more signed notes, one a log: on Kafka, a log per output partition)."""
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

    origins = {log_origin(verifier.name, log): log for log in audit.logs}
    first: list[Finding] = []
    for number, note in enumerate(saved_notes, 1):
        name = "the saved checkpoint" if len(saved_notes) == 1 else f"saved checkpoint {number} of {len(saved_notes)}"
        saved = open_saved(note, verifier, origins, name)
        if isinstance(saved, Finding):
            first.append(saved)
            continue
        audit.saved.append(saved)
        log, checkpoint = saved
        first += check_saved(log, checkpoint, sizes[log], audit.latest.get(log), LogStore(reader, log).consistency_proof)
    audit.findings[:0] = first

    rows = [*ledger_row_leaves(reader)]
    audit.ledger_rows = len(rows)
    rows += notice_row_leaves(reader)
    audit.notices = len(rows) - audit.ledger_rows
    audit.findings += match_rows(leaves, rows)
    return audit
