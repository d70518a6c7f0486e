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
from consentflow.sinks.tables import CHECKPOINTS, LOG_LEAVES, LOG_NODES

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
        """Append ``leaves`` in order: the nodes they complete, then the leaves themselves, in one insert. ``offsets``
        are their output messages' Kafka offsets (None: their leaf indices, the embedded log). Returns the new size."""
        if self._sink is None:
            raise RuntimeError(f"log {self.log_id!r} was opened for reading: appending needs a sink")
        if offsets is not None and len(offsets) != len(leaves):
            raise ValueError(f"log {self.log_id!r}: {len(leaves)} leaves but {len(offsets)} offsets")
        if not leaves:
            return self.size
        edge = list(self._right_edge())
        start = sum(1 << level for level, _ in edge)
        when = written_at or datetime.now(UTC)
        leaf_rows: list[dict[str, Any]] = []
        node_rows: list[dict[str, Any]] = []
        for position, leaf in enumerate(leaves):
            index = start + position
            digest = leaf_hash(leaf.data)
            leaf_rows.append(
                {
                    "log_id": self.log_id,
                    "leaf_index": index,
                    "leaf_hash": digest,
                    "subject_id": leaf.subject_id,
                    "kind": leaf.kind,
                    "record_id": leaf.record_id,
                    "revision": leaf.revision,
                    "written_at": when,
                    "source_offset": index if offsets is None else offsets[position],
                }
            )
            edge.append((0, digest))
            count = index + 1
            while not count & 1:  # two complete subtrees of one level side by side: their parent is complete
                (level, right), (_, left) = edge.pop(), edge.pop()
                parent = node_hash(left, right)
                edge.append((level + 1, parent))
                count >>= 1
                node_rows.append(
                    {"log_id": self.log_id, "level": level + 1, "node_index": (index + 1 >> level + 1) - 1, "hash": parent}
                )
        if node_rows:
            self._sink.insert_now(LOG_NODES.name, LOG_NODES.to_arrow(node_rows))
        self._sink.insert_now(LOG_LEAVES.name, LOG_LEAVES.to_arrow(leaf_rows))
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
