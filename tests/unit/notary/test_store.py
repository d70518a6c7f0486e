"""The consent log's store on chDB (the real ClickHouse engine): what it writes and every proof it answers equal
``core.merkle.MerkleTree`` in memory, over sizes that cross each power of two; a proof is one query; checkpoints
verify with the public key; a rewrite is named; the log's tables stay out of the digests that compare runs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from consentflow.core.checkpoint import Signer, open_checkpoint
from consentflow.core.merkle import MerkleTree, ProofError, verify_consistency, verify_inclusion
from consentflow.notary.store import EMBEDDED_LOG, Leaf, LogStore, log_origin
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.digest import table_digests
from consentflow.sinks.tables import LOG_LEAVES, LOG_NODES, LOG_TABLES

SIGNED_AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _leaf(number: int) -> Leaf:
    data = f"leaf {number}".encode()
    return Leaf(data, f"subject-{number % 7}", "ledger", hashlib.sha256(data).hexdigest())


@pytest.fixture
def sink(chdb_dsn: str, database: str) -> ClickHouseSink:
    return ClickHouseSink(chdb_dsn, database)


class CountingReader:
    """A reader that counts the queries it passes on."""

    def __init__(self, store: LogStore) -> None:
        self.inner = store.reader
        self.queries = 0

    def query(self, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        self.queries += 1
        return self.inner.query(*args, **kwargs)  # type: ignore[arg-type]


def test_appended_batches_store_the_nodes_and_answer_the_proofs_of_the_tree_in_memory(sink: ClickHouseSink) -> None:
    store = LogStore.of_sink(sink, EMBEDDED_LOG)
    tree = MerkleTree()
    sizes = []
    for batch in (1, 2, 5, 8, 1, 16, 30):  # batches that end on and off powers of two
        leaves = [_leaf(tree.size + i) for i in range(batch)]
        assert store.append(leaves, SIGNED_AT) == tree.extend(leaf.data for leaf in leaves)
        sizes.append(tree.size)
        assert store.root() == tree.root()
    stored_nodes = sink.reader.query(
        f"SELECT level, node_index, hash FROM {{db:Identifier}}.`{LOG_NODES.name}` WHERE log_id = {{log:String}}",
        {"log": EMBEDDED_LOG},
    )
    expected = {address: digest for address, digest in tree.nodes_since(0) if address[0] > 0}
    assert {(int(level), int(index)): bytes(digest) for level, index, digest in stored_nodes} == expected
    assert len(stored_nodes) == len(expected)  # each node written once

    reopened = LogStore(sink.reader, EMBEDDED_LOG)  # a reader: the right edge read back from the tables
    assert (reopened.size, reopened.root()) == (tree.size, tree.root())
    for size in sizes:
        assert reopened.root_at(size) == tree.root(size)
        for index in {0, size // 2, size - 1}:
            proof = reopened.inclusion_proof(index, size)
            assert proof == tree.inclusion_proof(index, size)
            verify_inclusion(index, size, reopened.leaf_hash(index), proof, tree.root(size))
        for old in {1, size // 2 or 1, size}:
            proof = reopened.consistency_proof(old, size)
            assert proof == tree.consistency_proof(old, size)
            verify_consistency(old, size, tree.root(old), tree.root(size), proof)


def test_a_proof_is_one_query(sink: ClickHouseSink) -> None:
    store = LogStore.of_sink(sink, EMBEDDED_LOG)
    store.append([_leaf(i) for i in range(1000)], SIGNED_AT)
    counting = CountingReader(store)
    reader = LogStore(counting, EMBEDDED_LOG)  # type: ignore[arg-type]
    reader.inclusion_proof(637, 1000)
    reader.consistency_proof(333, 1000)
    assert counting.queries == 2


def test_the_appender_continues_a_log_another_process_began(sink: ClickHouseSink) -> None:
    tree = MerkleTree()
    for batch in (3, 6, 7):
        leaves = [_leaf(tree.size + i) for i in range(batch)]
        tree.extend(leaf.data for leaf in leaves)
        LogStore.of_sink(sink, "ledger/0").append(leaves, SIGNED_AT)  # each batch by a store opened afresh
    store = LogStore.of_sink(sink, "ledger/0")
    assert (store.size, store.root()) == (tree.size, tree.root())
    assert store.inclusion_proof(15, 16) == tree.inclusion_proof(15, 16)
    assert LogStore.of_sink(sink, "ledger/1").size == 0  # logs are apart


def test_checkpoints_are_signed_stored_and_the_latest_read_back(sink: ClickHouseSink) -> None:
    signer = Signer.generate("consentflow.example/log")
    store = LogStore.of_sink(sink, EMBEDDED_LOG)
    assert store.latest_checkpoint() is None
    store.append([_leaf(i) for i in range(5)], SIGNED_AT)
    first = store.sign(signer, SIGNED_AT)
    store.append([_leaf(5)], SIGNED_AT)
    second = store.sign(signer, SIGNED_AT.replace(minute=1))
    assert store.latest_checkpoint() == second
    assert store.checkpoints() == [first, second]
    checkpoint = open_checkpoint(second, signer.verifier, log_origin(signer.name, EMBEDDED_LOG))
    assert (checkpoint.size, checkpoint.root, checkpoint.time) == (6, store.root(), SIGNED_AT.replace(minute=1))
    old = open_checkpoint(first, signer.verifier)
    verify_consistency(old.size, 6, old.root, checkpoint.root, store.consistency_proof(old.size, 6))


def test_a_node_stored_twice_with_different_hashes_or_missing_is_named(sink: ClickHouseSink) -> None:
    store = LogStore.of_sink(sink, EMBEDDED_LOG)
    store.append([_leaf(i) for i in range(8)], SIGNED_AT)
    forged = {"log_id": EMBEDDED_LOG, "level": 1, "node_index": 2, "hash": bytes(32)}
    sink.insert_now(LOG_NODES.name, LOG_NODES.to_arrow([forged]))
    with pytest.raises(ProofError, match=r"two different hashes at node \(1, 2\): it was rewritten"):
        store.inclusion_proof(7, 8)
    with pytest.raises(ProofError, match=r"lacks the stored node\(s\) \(0, 8\)"):
        store.leaf_hash(8)


def test_the_logs_tables_stay_out_of_the_digests_that_compare_runs(sink: ClickHouseSink) -> None:
    LogStore.of_sink(sink, EMBEDDED_LOG).append([_leaf(0)], SIGNED_AT)
    assert not set(table_digests(sink.reader)) & {t.name for t in LOG_TABLES}


def test_each_leaf_keeps_its_source_offset_and_the_log_its_last(sink: ClickHouseSink) -> None:
    kafka = LogStore.of_sink(sink, "consentflow.ledger/0")
    assert kafka.last_offset() is None  # empty: nothing to skip
    kafka.append([_leaf(i) for i in range(3)], SIGNED_AT, offsets=[4, 9, 17])  # offsets skip other records' messages
    kafka.append([_leaf(3)], offsets=[21])
    assert kafka.last_offset() == 21
    embedded = LogStore.of_sink(sink, EMBEDDED_LOG)
    embedded.append([_leaf(i) for i in range(5)], SIGNED_AT)  # the signature other helpers call: offsets are indices
    assert embedded.last_offset() == 4
    rows = sink.reader.query(
        f"SELECT log_id, leaf_index, source_offset FROM {{db:Identifier}}.`{LOG_LEAVES.name}` ORDER BY log_id, leaf_index"
    )
    assert [(str(log), int(index), int(offset)) for log, index, offset in rows] == [
        ("consentflow.ledger/0", 0, 4),
        ("consentflow.ledger/0", 1, 9),
        ("consentflow.ledger/0", 2, 17),
        ("consentflow.ledger/0", 3, 21),
        *((EMBEDDED_LOG, i, i) for i in range(5)),
    ]
    with pytest.raises(ValueError, match="2 leaves but 1 offsets"):
        kafka.append([_leaf(4), _leaf(5)], offsets=[30])
