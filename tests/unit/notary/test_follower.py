"""The Kafka notary's follower on chDB, with no broker: one log per output partition, leaves in offset order; a
message delivered again (a restart from the last commit) is skipped by offset, a worker's re-produced output at a
new offset is a leaf; checkpoints every ``every`` leaves or ``interval`` seconds, each stored, published and
verified with the public key; a restarted follower signs the leaves its predecessor left unsigned."""

from __future__ import annotations

import pytest

from consentflow.core.checkpoint import Signer, open_checkpoint
from consentflow.core.merkle import MerkleTree, verify_consistency
from consentflow.notary.follower import LogFollower, log_id_of
from consentflow.notary.store import LogStore, leaf_of, log_origin
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.tables import LOG_LEAVES
from tests.support.memory_log import erasure_notice, ledger_entries

LEDGER_TOPIC = "consentflow.ledger"
NOTICES_TOPIC = "consentflow.erasure-notices"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sink(chdb_dsn: str, database: str) -> ClickHouseSink:
    return ClickHouseSink(chdb_dsn, database)


@pytest.fixture
def signer() -> Signer:
    return Signer.generate("consentflow.example/log")


def _stored(sink: ClickHouseSink, log_id: str) -> list[tuple[int, bytes, int]]:
    rows = sink.reader.query(
        f"SELECT leaf_index, leaf_hash, source_offset FROM {{db:Identifier}}.`{LOG_LEAVES.name}` "
        "WHERE log_id = {log:String} ORDER BY leaf_index",
        {"log": log_id},
    )
    return [(int(index), bytes(digest), int(offset)) for index, digest, offset in rows]


def test_each_partition_is_a_log_of_its_records_in_offset_order(sink: ClickHouseSink, signer: Signer) -> None:
    published: list[tuple[str, str]] = []
    follower = LogFollower(sink, signer, every=1000, publish=lambda log, note: published.append((log, note)))
    alice, bob = ledger_entries("alice", 4), ledger_entries("bob", 3)
    notice = erasure_notice("alice", "n-1")
    # Partition 0 delivers offsets out of order within a batch (a rebalance's redelivery): the log keeps offset order.
    for offset, entry in ((2, alice[1]), (0, alice[0]), (5, alice[2]), (9, alice[3])):
        follower.note(LEDGER_TOPIC, 0, offset, "ledger", entry)
    for offset, entry in enumerate(bob):
        follower.note(LEDGER_TOPIC, 1, offset, "ledger", entry)
    follower.note(NOTICES_TOPIC, 0, 0, "erasure-notices", notice)
    follower.note("consentflow.lineage", 0, 3, "lineage", {"edge_id": "e"})  # not a leaf
    assert follower.write() == 8
    assert [offset for _, _, offset in _stored(sink, log_id_of(LEDGER_TOPIC, 0))] == [0, 2, 5, 9]
    for log, records in ((log_id_of(LEDGER_TOPIC, 0), alice), (log_id_of(LEDGER_TOPIC, 1), bob)):
        tree = MerkleTree()
        tree.extend(leaf.data for leaf in (leaf_of("ledger", r) for r in records) if leaf is not None)
        assert [digest for _, digest, _ in _stored(sink, log)] == [tree.leaf_hash(i) for i in range(tree.size)]
        assert LogStore(sink.reader, log).root() == tree.root()
    assert len(_stored(sink, log_id_of(NOTICES_TOPIC, 0))) == 1
    assert published == []  # 8 leaves, not yet 1,000 nor 10 s


def test_a_redelivered_message_is_skipped_and_a_reproduced_output_is_a_leaf(sink: ClickHouseSink, signer: Signer) -> None:
    entries = ledger_entries("carol", 3)
    first = LogFollower(sink, signer)
    for offset, entry in enumerate(entries):
        first.note(LEDGER_TOPIC, 2, offset, "ledger", entry)
    first.write()
    # A restart from an older commit: offsets 0..2 again, then a worker that re-produced entry 2 at offset 3.
    restarted = LogFollower(sink, signer)
    for offset, entry in (*enumerate(entries), (3, entries[2])):
        restarted.note(LEDGER_TOPIC, 2, offset, "ledger", entry)
    restarted.note(LEDGER_TOPIC, 2, 3, "ledger", entries[2])  # the same message twice in one batch: one leaf
    assert restarted.write() == 1
    assert restarted.skipped == 3
    stored = _stored(sink, log_id_of(LEDGER_TOPIC, 2))
    assert [offset for _, _, offset in stored] == [0, 1, 2, 3]
    assert stored[3][1] == stored[2][1]  # the re-produced entry: the same leaf hash, a leaf of its own


def test_checkpoints_every_leaves_and_after_the_interval_are_stored_published_and_verify(
    sink: ClickHouseSink, signer: Signer
) -> None:
    clock = Clock()
    published: list[tuple[str, str]] = []
    follower = LogFollower(sink, signer, every=4, interval=10.0, clock=clock, publish=lambda *p: published.append(p))
    entries = ledger_entries("dave", 11)
    for offset, entry in enumerate(entries[:10]):
        follower.note(LEDGER_TOPIC, 0, offset, "ledger", entry)
    follower.write()  # 10 leaves: signed at 4 and 8, two wait
    log = log_id_of(LEDGER_TOPIC, 0)
    sizes = [open_checkpoint(note, signer.verifier, log_origin(signer.name, log)).size for _, note in published]
    assert sizes == [4, 8] and {name for name, _ in published} == {log}
    clock.now += 9.9
    assert follower.sign_due() == 0
    clock.now += 0.1  # the oldest unsigned leaf has waited 10 s
    assert follower.sign_due() == 1
    assert follower.sign_due() == 0  # nothing new: nothing signed again
    store = LogStore(sink.reader, log)
    assert store.checkpoints() == [note for _, note in published]
    notes = [open_checkpoint(note, signer.verifier) for note in store.checkpoints()]
    assert [note.size for note in notes] == [4, 8, 10]
    for old in notes[:-1]:
        verify_consistency(old.size, 10, old.root, notes[-1].root, store.consistency_proof(old.size, 10))
    # A leaf noted now waits from when it was noted, through a write that does not sign it.
    follower.note(LEDGER_TOPIC, 0, 10, "ledger", entries[10])
    clock.now += 6
    follower.write()
    assert len(published) == 3
    clock.now += 4
    assert follower.sign_due() == 1 and open_checkpoint(published[-1][1], signer.verifier).size == 11


def test_a_restarted_follower_signs_what_its_predecessor_left_unsigned(sink: ClickHouseSink, signer: Signer) -> None:
    clock = Clock()
    crashed = LogFollower(sink, signer, every=100, clock=clock)
    for offset, entry in enumerate(ledger_entries("erin", 5)):
        crashed.note(LEDGER_TOPIC, 0, offset, "ledger", entry)
    crashed.write()  # appended, not signed: then the process is killed
    published: list[tuple[str, str]] = []
    restarted = LogFollower(sink, signer, every=100, clock=clock, publish=lambda *p: published.append(p))
    restarted.note(LEDGER_TOPIC, 0, 4, "ledger", ledger_entries("erin", 5)[4])  # redelivered: opens the log
    clock.now += 10
    assert restarted.sign_due() == 1
    assert open_checkpoint(published[0][1], signer.verifier).size == 5


def test_write_is_due_on_leaves_or_age(sink: ClickHouseSink, signer: Signer) -> None:
    clock = Clock()
    follower = LogFollower(sink, signer, clock=clock)
    assert not follower.write_due(2, 1.0)
    entries = ledger_entries("fay", 2)
    follower.note(LEDGER_TOPIC, 0, 0, "ledger", entries[0])
    assert not follower.write_due(2, 1.0)
    clock.now += 1
    assert follower.write_due(2, 1.0)
    follower.note(LEDGER_TOPIC, 0, 1, "ledger", entries[1])
    assert follower.write_due(2, 60.0) and follower.pending == 2
    follower.write()
    assert follower.pending == 0 and not follower.write_due(2, 0.0)


def test_a_revoked_partitions_log_is_forgotten_and_read_afresh_when_it_comes_back(sink: ClickHouseSink, signer: Signer) -> None:
    entries = ledger_entries("gus", 4)
    first, other = LogFollower(sink, signer), LogFollower(sink, signer)
    first.note(LEDGER_TOPIC, 0, 0, "ledger", entries[0])
    first.write()
    first.note(LEDGER_TOPIC, 0, 1, "ledger", entries[1])  # noted, then the partition is revoked: not written here
    first.forget([(LEDGER_TOPIC, 0)])
    assert first.pending == 0
    for offset in (1, 2):  # the partition's next owner appends from the uncommitted offset
        other.note(LEDGER_TOPIC, 0, offset, "ledger", entries[offset])
    other.write()
    first.note(LEDGER_TOPIC, 0, 2, "ledger", entries[2])  # back to the first: the log's end read afresh
    first.note(LEDGER_TOPIC, 0, 3, "ledger", entries[3])
    assert first.write() == 1
    assert [offset for _, _, offset in _stored(sink, log_id_of(LEDGER_TOPIC, 0))] == [0, 1, 2, 3]
    tree = MerkleTree()
    tree.extend(leaf.data for leaf in (leaf_of("ledger", entry) for entry in entries) if leaf is not None)
    assert LogStore(sink.reader, log_id_of(LEDGER_TOPIC, 0)).root() == tree.root()


def test_a_clean_stop_signs_every_log_to_its_end(sink: ClickHouseSink, signer: Signer) -> None:
    published: list[tuple[str, str]] = []
    follower = LogFollower(sink, signer, publish=lambda *p: published.append(p))
    follower.note(LEDGER_TOPIC, 0, 0, "ledger", ledger_entries("hal", 1)[0])
    follower.note(NOTICES_TOPIC, 1, 0, "erasure-notices", erasure_notice("hal", "n-2"))
    follower.write()
    assert published == []
    assert follower.sign_unsigned() == 2
    assert sorted(log for log, _ in published) == sorted([log_id_of(LEDGER_TOPIC, 0), log_id_of(NOTICES_TOPIC, 1)])
    assert follower.sign_unsigned() == 0
