"""The consent log in ClickHouse (issue 22): leaves, the complete subtrees above them, and signed checkpoints, in the
tables ``sinks.tables.LOG_TABLES`` declares.

A log is named by its ``log_id`` (an output topic's partition, ``"<topic>/<partition>"``, or ``"embedded"``).
Appending a batch writes the nodes it completes (``log_nodes``, level 1 up), then its leaves (``log_leaves``, level
0): the leaves say the log's size, so every node a proof of that size needs is stored before the size grows. A batch
lost to a crash between the two is appended again from the same size; the nodes it wrote before are the same ones
(the same leaves in the same order: Kafka's offsets, the file's order) and collapse with the new.

The store keeps only the log's right edge in memory (the complete subtrees whose fold is the root, at most one a
level), read in one query when it opens; a proof is one query for the addresses ``core.merkle`` names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consentflow.contracts.topics import ERASURE_NOTICES, LEDGER
from consentflow.core.checkpoint import Checkpoint, Signer, sign_checkpoint, time_extension
from consentflow.core.log_leaves import erasure_notice_leaf, ledger_entry_leaf
from consentflow.core.merkle import (
    NodeAddress,
    ProofError,
    assemble,
    consistency_addresses,
    fold,
    inclusion_addresses,
    leaf_hash,
    node_hash,
    root_addresses,
)
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.reader import TableReader
from consentflow.sinks.tables import CHECKPOINTS, LOG_LEAVES, LOG_NODES, Table

#: The embedded runner's one log, in file order.
EMBEDDED_LOG = "embedded"
LEDGER_KIND = "ledger"
NOTICE_KIND = "notice"


@dataclass(frozen=True)
class Leaf:
    """One record as a leaf: its bytes (``core.log_leaves``) and the metadata that ties it to its table row."""

    data: bytes
    subject_id: str
    kind: str  # LEDGER_KIND or NOTICE_KIND
    record_id: str  # a ledger entry's entry_hash, a notice's notice_id
    revision: int = 0  # a notice's revision; 0 for a ledger entry


def leaf_of(topic: str, record: Mapping[str, Any]) -> Leaf | None:
    """The leaf of an output record of ``topic`` (short name): ledger entries and erasure notices; None for others."""
    if topic == LEDGER.short_name:
        return Leaf(ledger_entry_leaf(record), record["subject_id"], LEDGER_KIND, record["entry_hash"])
    if topic == ERASURE_NOTICES.short_name:
        notice = erasure_notice_leaf(record)
        return Leaf(notice, record["subject_id"], NOTICE_KIND, record["notice_id"], record["revision"])
    return None


def log_origin(key_name: str, log_id: str) -> str:
    """A checkpoint's origin line: the key's name, then the log, so each log's checkpoints name their own log."""
    return f"{key_name}/{log_id}"


def _address_list(addresses: Iterable[NodeAddress]) -> str:
    return ", ".join(f"({level}, {index})" for level, index in addresses)


class LogStore:
    """One log's tables: appends with ``sink`` (a writer), proofs and checkpoints with ``reader`` (anyone)."""

    def __init__(self, reader: TableReader, log_id: str, sink: ClickHouseSink | None = None) -> None:
        self.reader = reader
        self.log_id = log_id
        self._sink = sink
        self._edge: list[tuple[int, bytes]] | None = None  # (level, hash) of the right edge, left to right

    @classmethod
    def of_sink(cls, sink: ClickHouseSink, log_id: str) -> LogStore:
        """The log ``log_id`` in the sink's database, read and written on the sink's connection."""
        return cls(sink.reader, log_id, sink)

    # -- size and right edge -------------------------------------------------------------

    def stored_size(self) -> int:
        """The number of leaves stored (the highest leaf index, plus one), read now."""
        count, highest = self.reader.query(
            f"SELECT count(), max(leaf_index) FROM {{db:Identifier}}.`{LOG_LEAVES.name}` WHERE log_id = {{log:String}}",
            {"log": self.log_id},
        )[0]
        return 0 if not count else int(highest) + 1

    def _right_edge(self) -> list[tuple[int, bytes]]:
        if self._edge is None:
            size = self.stored_size()
            addresses = root_addresses(size)
            found = self._nodes(addresses)
            self._edge = [(level, found[level, index]) for level, index in addresses]
        return self._edge

    @property
    def size(self) -> int:
        """The number of leaves in the log."""
        return sum(1 << level for level, _ in self._right_edge())

    def root(self) -> bytes:
        """The root hash of the whole log."""
        return fold([digest for _, digest in self._right_edge()])

    # -- appending -----------------------------------------------------------------------

    def append(self, leaves: Sequence[Leaf], written_at: datetime | None = None, *, offsets: Sequence[int] | None = None) -> int:
        """Append ``leaves`` in order: the nodes they complete, then the leaves themselves in one insert (the log's size
        never counts part of a batch). ``offsets`` are their output messages' Kafka offsets (None: their leaf indices,
        the embedded log). Returns the new size."""
        if self._sink is None:
            raise RuntimeError(f"log {self.log_id!r} was opened for reading: appending needs a sink")
        if offsets is not None and len(offsets) != len(leaves):
            raise ValueError(f"log {self.log_id!r}: {len(leaves)} leaves but {len(offsets)} offsets")
        if not leaves:
            return self.size
        edge = list(self._right_edge())
        start = sum(1 << level for level, _ in edge)
        when = written_at or datetime.now(UTC)
        leaf_table, node_table, edge = _appended_tables(self.log_id, start, edge, leaves, when, offsets)
        if node_table is not None:
            self._sink.insert_now(LOG_NODES.name, node_table)
        self._sink.insert_now(LOG_LEAVES.name, leaf_table)
        self._edge = edge
        return start + len(leaves)

    def last_offset(self) -> int | None:
        """The highest source offset in the log (one query), or None while it is empty: a restarted notary skips the
        messages at or below it, which the log already holds."""
        count, highest = self.reader.query(
            f"SELECT count(), max(source_offset) FROM {{db:Identifier}}.`{LOG_LEAVES.name}` WHERE log_id = {{log:String}}",
            {"log": self.log_id},
        )[0]
        return int(highest) if count else None

    # -- proofs ----------------------------------------------------------------------------

    def _nodes(self, addresses: Iterable[NodeAddress]) -> dict[NodeAddress, bytes]:
        """The stored hashes of ``addresses``, in one query; raises ``ProofError`` naming one missing or stored twice
        with different hashes (a rewrite)."""
        wanted = set(addresses)
        if not wanted:
            return {}
        leaves = sorted(index for level, index in wanted if level == 0)
        nodes = sorted((level, index) for level, index in wanted if level > 0)
        rows = self.reader.query(
            f"SELECT level, node_index, hash FROM {{db:Identifier}}.`{LOG_NODES.name}` "
            "WHERE log_id = {log:String} AND (level, node_index) IN {nodes:Array(Tuple(UInt8, UInt64))} "
            f"UNION ALL SELECT toUInt8(0), leaf_index, leaf_hash FROM {{db:Identifier}}.`{LOG_LEAVES.name}` "
            "WHERE log_id = {log:String} AND leaf_index IN {leaves:Array(UInt64)}",
            {"log": self.log_id, "nodes": nodes, "leaves": leaves},
        )
        found: dict[NodeAddress, bytes] = {}
        for level, index, digest in rows:
            address = (int(level), int(index))
            if found.setdefault(address, bytes(digest)) != digest:
                raise ProofError(f"log {self.log_id!r} holds two different hashes at node {address}: it was rewritten")
        missing = wanted - found.keys()
        if missing:
            raise ProofError(f"log {self.log_id!r} lacks the stored node(s) {_address_list(sorted(missing))}")
        return found

    def _proof(self, groups: list[tuple[NodeAddress, ...]]) -> list[bytes]:
        found = self._nodes(address for group in groups for address in group)
        return assemble(groups, found.__getitem__)

    def root_at(self, size: int) -> bytes:
        """The root of the log's first ``size`` leaves, read from the stored nodes."""
        return fold(list(self._nodes_in_order(root_addresses(size))))

    def _nodes_in_order(self, addresses: Sequence[NodeAddress]) -> list[bytes]:
        found = self._nodes(addresses)
        return [found[address] for address in addresses]

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf ``index``."""
        return self._nodes([(0, index)])[0, index]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1) from the stored nodes, in one query."""
        return self._proof(inclusion_addresses(index, size))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1) from the stored nodes, in one query."""
        return self._proof(consistency_addresses(old_size, new_size))

    # -- checkpoints ---------------------------------------------------------------------

    def sign(self, signer: Signer, at: datetime | None = None) -> str:
        """Sign the log's current size and root, store the signed note in ``checkpoints`` and return it."""
        if self._sink is None:
            raise RuntimeError(f"log {self.log_id!r} was opened for reading: storing a checkpoint needs a sink")
        when = at or datetime.now(UTC)
        checkpoint = Checkpoint(log_origin(signer.name, self.log_id), self.size, self.root(), (time_extension(when),))
        note = sign_checkpoint(checkpoint, signer)
        row = {"log_id": self.log_id, "size": checkpoint.size, "root": checkpoint.root, "note": note, "signed_at": when}
        self._sink.insert_now(CHECKPOINTS.name, CHECKPOINTS.to_arrow([row]))
        return note

    def latest_checkpoint(self) -> str | None:
        """The signed note of the log's latest checkpoint (largest size, then latest), or None when none is stored."""
        rows = self.reader.query(
            f"SELECT note FROM {{db:Identifier}}.`{CHECKPOINTS.name}` WHERE log_id = {{log:String}} "
            "ORDER BY size DESC, signed_at DESC LIMIT 1",
            {"log": self.log_id},
        )
        return str(rows[0][0]) if rows else None

    def checkpoints(self) -> list[str]:
        """Every signed note stored for the log, oldest first (for the audit to check each signature)."""
        rows = self.reader.query(
            f"SELECT note FROM {{db:Identifier}}.`{CHECKPOINTS.name}` WHERE log_id = {{log:String}} ORDER BY size, signed_at",
            {"log": self.log_id},
        )
        return [str(note) for (note,) in rows]


def _arrow(table: Table, columns: Mapping[str, Sequence[Any]]) -> Any:
    """``columns`` (every column of ``table``, by name) as a ``pyarrow.Table`` of its schema: a batch built column by
    column, with no row per record (a dict a leaf cost half the append's time)."""
    import pyarrow

    schema = table.arrow_schema
    return pyarrow.Table.from_arrays([pyarrow.array(columns[f.name], type=f.type) for f in schema], schema=schema)


def _appended_tables(
    log_id: str,
    start: int,
    edge: list[tuple[int, bytes]],
    leaves: Sequence[Leaf],
    when: datetime,
    offsets: Sequence[int] | None,
) -> tuple[Any, Any | None, list[tuple[int, bytes]]]:
    """The rows of appending ``leaves`` to a log of ``start`` leaves whose right edge is ``edge``: the leaves' table,
    the table of the nodes they complete (None: none), and the new right edge.

    Level by level: the nodes completed at a level pair up (the first with the edge's node of that level when it
    starts at an odd index) into the next level's; the last one of an odd count is the new edge's at that level.
    """
    count = len(leaves)
    end = start + count
    hashes = [leaf_hash(leaf.data) for leaf in leaves]
    leaf_table = _arrow(
        LOG_LEAVES,
        {
            "log_id": [log_id] * count,
            "leaf_index": range(start, end),
            "leaf_hash": hashes,
            "subject_id": [leaf.subject_id for leaf in leaves],
            "kind": [leaf.kind for leaf in leaves],
            "record_id": [leaf.record_id for leaf in leaves],
            "revision": [leaf.revision for leaf in leaves],
            "written_at": [when] * count,
            "source_offset": range(start, end) if offsets is None else offsets,
        },
    )
    old_edge = dict(edge)
    last: dict[int, bytes] = {}  # per level, the node left over from pairing: the new edge's, if it is complete
    levels: list[int] = []
    indices: list[int] = []
    node_hashes: list[bytes] = []
    level, first, done = 0, start, hashes  # the nodes completed at ``level``, from index ``first``
    while done:
        items = [old_edge[level], *done] if first & 1 else done
        first -= first & 1
        if len(items) & 1:
            last[level] = items[-1]
        parents = [node_hash(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        level, first, done = level + 1, first >> 1, parents
        levels += [level] * len(parents)
        indices += range(first, first + len(parents))
        node_hashes += parents
    new_edge = [
        (height, last[height] if height in last else old_edge[height])
        for height in range(end.bit_length() - 1, -1, -1)
        if end >> height & 1
    ]
    node_table = None
    if node_hashes:
        columns: dict[str, Sequence[Any]] = {
            "log_id": [log_id] * len(node_hashes),
            "level": levels,
            "node_index": indices,
            "hash": node_hashes,
        }
        node_table = _arrow(LOG_NODES, columns)
    return leaf_table, node_table, new_edge
