"""The consent log's notary with its I/O (issue 22): (a) leaves appended a second by the notary alone over a prepared
topic, (b) proof times from the log's tables at 10 million leaves, (c) bytes stored a leaf; each beside its raw limit
measured in the same run.

    python bench/notary.py --bootstrap 127.0.0.1:PORT [--records N] [--leaves N] [--proofs P] [--dsn chdb:///PATH]
    python bench/notary.py --skip-kafka [--leaves N] ...      (b) and (c) only

(a) ``--records`` ledger entries (real records, encoded by ``contracts.codec`` as the workers write them) are produced
onto the ledger topic of a fresh prefix (6 partitions, as ``topics create``); then ``NotaryConsumer(...).run`` (the
standalone notary: ``LogFollower`` appending with ``LogStore.append``, signing every 10,000 leaves, checkpoints to the
table and topic) follows it into a chDB database of its own. The rate runs from the first message noted to the last
leaf appended (the group join before it is printed apart). Raw limits over the same topic: read and decoded with no
appends, and the leaves' hashing alone (``leaf_of`` + ``leaf_hash``, no I/O). Then ``--notaries`` notaries in one
consumer group (child processes, each on a chDB folder of its own) over the same topic: the partitions split between
them, each log still one partition's.
(b) ``--leaves`` leaves appended to one log through ``LogStore.append`` in batches of ``--batch`` (the time it took is
printed), then ``--proofs`` inclusion proofs of random leaves and consistency proofs from random sizes, against the
whole log; raw limit: the same point-lookup query with the same addresses, alone.
(c) ``system.parts`` bytes on disk (compressed, active parts) of log_leaves + log_nodes + checkpoints over (b)'s log,
divided by its leaves. (b) and (c) again once ``OPTIMIZE ... FINAL`` has merged each table's parts.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import LEDGER
from consentflow.core.checkpoint import Signer
from consentflow.core.log_leaves import ledger_entry_leaf
from consentflow.core.merkle import consistency_addresses, inclusion_addresses, leaf_hash
from consentflow.notary.store import EMBEDDED_LOG, LEDGER_KIND, Leaf, LogStore, leaf_of
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.tables import LOG_LEAVES, LOG_NODES, LOG_TABLES, log_schema_ddl

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECTS = 50_000
PARTITIONS = 6
KEY_NAME = "bench.consentflow.example/log"
# The query LogStore.inclusion_proof sends (store.py), for the raw limit: the same point lookup without the Python
# around it.
POINT_LOOKUP = (
    f"SELECT level, node_index, hash FROM {{db:Identifier}}.`{LOG_NODES.name}` "
    "WHERE log_id = {log:String} AND (level, node_index) IN {nodes:Array(Tuple(UInt8, UInt64))} "
    f"UNION ALL SELECT toUInt8(0), leaf_index, leaf_hash FROM {{db:Identifier}}.`{LOG_LEAVES.name}` "
    "WHERE log_id = {log:String} AND leaf_index IN {leaves:Array(UInt64)}"
)


def ledger_entry(i: int) -> dict[str, Any]:
    """Ledger entry ``i`` of a made-up subject, as a worker writes it (hash chained per subject, Kafka source)."""
    entry: dict[str, Any] = {
        "subject_id": f"cand-{i % SUBJECTS:06d}",
        "sequence": i // SUBJECTS + 1,
        "event_id": str(uuid.UUID(int=i, version=4)),
        "occurred_at": T0 + timedelta(seconds=i),
        "purpose": "marketing",
        "action": "granted",
        "channel": "registration_form",
        "policy_version": "2020-11-14",
        "source_service": "registration",
        "notice_id": "notice-2020-11-14",
        "previous_hash": hashlib.sha256(str(i).encode()).hexdigest(),
    }
    entry["entry_hash"] = hashlib.sha256(ledger_entry_leaf(entry)).hexdigest()
    entry["source"] = {"topic": "consentflow.consent", "partition": i % PARTITIONS, "offset": i // PARTITIONS}
    return entry


def percentile_ms(seconds: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``seconds``, in milliseconds."""
    return round(statistics.quantiles(seconds, n=100)[round(q * 100) - 1] * 1000, 3)


def timed(calls: Iterator[Callable[[], Any]]) -> list[float]:
    """Seconds each call took."""
    spent = []
    for call in calls:
        started = time.perf_counter()
        call()
        spent.append(time.perf_counter() - started)
    return spent


# -- (a) the notary over a topic -------------------------------------------------------------


def prepare_topic(bootstrap: str, prefix: str, records: int) -> float:
    """Create the pipeline's topics under ``prefix`` and produce ``records`` encoded ledger entries; seconds taken."""
    from confluent_kafka import Producer

    from consentflow.kafka.admin import create_topics

    create_topics(bootstrap, partitions=PARTITIONS, prefix=prefix)
    codec = SingleObjectCodec()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10_000, "acks": "all"})
    topic = LEDGER.name(prefix)
    started = time.perf_counter()
    for i in range(records):
        entry = ledger_entry(i)
        while True:
            try:
                producer.produce(topic, codec.encode(LEDGER, entry), key=entry["subject_id"].encode())
                break
            except BufferError:  # the client's queue is full: let it send
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("the prepared topic was not all delivered within 120 s")
    return time.perf_counter() - started


def read_topic(bootstrap: str, prefix: str, records: int, each: Callable[[dict[str, Any]], Any]) -> float:
    """Read the ledger topic from its start with a consumer of its own and decode every message (then ``each``);
    seconds from the first message to the last."""
    from confluent_kafka import Consumer, TopicPartition

    codec = SingleObjectCodec()
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    topic = LEDGER.name(prefix)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen, first = 0, None
    try:
        while seen < records:
            for message in consumer.consume(num_messages=5_000, timeout=1.0):
                if message.error() is not None:
                    continue
                if first is None:
                    first = time.perf_counter()
                value = message.value()
                assert value is not None
                each(codec.decode(LEDGER, value))
                seen += 1
    finally:
        consumer.close()
    assert first is not None
    return time.perf_counter() - first


def follow_topic(bootstrap: str, prefix: str, records: int, dsn: str) -> dict[str, Any]:
    """The standalone notary over the prepared topic until every record is a leaf; its figures."""
    from consentflow.cli.pipeline import kafka_notary
    from consentflow.notary.consumer import NotaryConsumer
    from consentflow.notary.follower import CHECKPOINT_INTERVAL

    database = f"bench_notary_follow_{uuid.uuid4().hex[:8]}"
    sink = ClickHouseSink(dsn, database, schema=log_schema_ddl())
    follower = kafka_notary(sink, Signer.generate(KEY_NAME), bootstrap, prefix, CHECKPOINT_INTERVAL)
    noted: list[float] = []
    note = follower.note

    def timed_note(topic_name: str, partition: int, offset: int, short_name: str, record: Mapping[str, Any]) -> None:
        if not noted:
            noted.append(time.perf_counter())
        note(topic_name, partition, offset, short_name, record)

    follower.note = timed_note  # type: ignore[method-assign]  # the first message's instant, nothing else changed
    consumer = NotaryConsumer(bootstrap, prefix, SingleObjectCodec(), sink, follower, group_id=f"bench-{uuid.uuid4().hex}")
    started = time.perf_counter()
    consumer.run(should_stop=lambda: follower.appended >= records, idle_exit=30.0)
    ended = time.perf_counter()
    assert follower.appended == records, f"{follower.appended} of {records} leaves appended"
    return {
        "leaves_per_second": round(records / (ended - noted[0])),
        "seconds": round(ended - noted[0], 2),
        "group_join_seconds": round(noted[0] - started, 2),
        "checkpoints_signed": follower.signed,
    }


def _group_member(bootstrap: str, prefix: str, group: str, folder: str, results: Any) -> None:
    """One notary of a group (a child process, a chDB folder of its own: one process opens a chDB path), until the
    group has noted nothing for a while; puts (first message noted, last leaf appended, leaves) as wall-clock times."""
    from consentflow.cli.pipeline import kafka_notary
    from consentflow.notary.consumer import NotaryConsumer
    from consentflow.notary.follower import CHECKPOINT_INTERVAL

    sink = ClickHouseSink(f"chdb://{folder}", "bench_notary_group", schema=log_schema_ddl())
    follower = kafka_notary(sink, Signer.generate(KEY_NAME), bootstrap, prefix, CHECKPOINT_INTERVAL)
    times = {"first": 0.0, "last": 0.0}
    note, write = follower.note, follower.write

    def timed_note(topic_name: str, partition: int, offset: int, short_name: str, record: Mapping[str, Any]) -> None:
        if not times["first"]:
            times["first"] = time.time()
        note(topic_name, partition, offset, short_name, record)

    def timed_write() -> int:
        appended = write()
        if appended:
            times["last"] = time.time()
        return appended

    follower.note = timed_note  # type: ignore[method-assign]  # the instants only, nothing else changed
    follower.write = timed_write  # type: ignore[method-assign]
    NotaryConsumer(bootstrap, prefix, SingleObjectCodec(), sink, follower, group_id=group).run(idle_exit=8.0)
    results.put((times["first"], times["last"], follower.appended))


def group_over_topic(bootstrap: str, prefix: str, records: int, notaries: int) -> dict[str, Any]:
    """``notaries`` notaries in one consumer group over the prepared topic (each log is one partition's: they split
    the partitions with no coordination); leaves a second from the first message any noted to the last leaf any
    appended."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    group = f"bench-group-{uuid.uuid4().hex}"
    members = [
        context.Process(
            target=_group_member, args=(bootstrap, prefix, group, tempfile.mkdtemp(prefix="bench-notary-member-"), results)
        )
        for _ in range(notaries)
    ]
    for member in members:
        member.start()
    ended = [results.get(timeout=900) for _ in members]
    for member in members:
        member.join()
    first = min(start for start, _, leaves in ended if leaves)
    last = max(end for _, end, _ in ended)
    appended = sum(leaves for _, _, leaves in ended)
    assert appended == records, f"{appended} of {records} leaves appended by the group"
    return {
        "notaries": notaries,
        "leaves_per_second": round(records / (last - first)),
        "seconds": round(last - first, 2),
        "leaves_each": sorted(leaves for _, _, leaves in ended),
    }


def notary_over_topic(bootstrap: str, records: int, dsn: str, notaries: int = 1) -> dict[str, Any]:
    """(a): the notary's rate over a prepared topic, and the raw limits over the same topic."""
    prefix = f"bench-notary-{uuid.uuid4().hex[:8]}"
    produced = prepare_topic(bootstrap, prefix, records)
    decoded = read_topic(bootstrap, prefix, records, lambda record: None)
    held: list[dict[str, Any]] = []
    hashing = [0.0]

    def leaf_and_hash(record: dict[str, Any]) -> None:
        """Time the leaves of the decoded records a thousand at a time, outside the read."""
        held.append(record)
        if len(held) == 1_000:
            started = time.perf_counter()
            for each in held:
                leaf = leaf_of(LEDGER.short_name, each)
                assert leaf is not None
                leaf_hash(leaf.data)
            hashing[0] += time.perf_counter() - started
            held.clear()

    read_topic(bootstrap, prefix, records - records % 1_000, leaf_and_hash)
    notary = follow_topic(bootstrap, prefix, records, dsn)
    group = group_over_topic(bootstrap, prefix, records, notaries) if notaries > 1 else None
    return {
        "records": records,
        "partitions": PARTITIONS,
        "produce_seconds": round(produced, 2),
        "notary": notary,
        "notaries_in_one_group": group,
        "raw_read_and_decode_per_second": round(records / decoded),
        "raw_leaf_and_hash_per_second": round((records - records % 1_000) / hashing[0]),
    }


# -- (b) proofs at 10 million leaves, (c) bytes a leaf -----------------------------------------


def build_log(dsn: str, database: str, leaves: int, batch: int) -> tuple[LogStore, float]:
    """One log of ``leaves`` ledger-entry leaves appended through ``LogStore.append``; the seconds the appends took
    (the leaves' bytes are made outside the clock)."""
    sink = ClickHouseSink(dsn, database, schema=log_schema_ddl())
    store = LogStore.of_sink(sink, EMBEDDED_LOG)
    spent = 0.0
    for start in range(0, leaves, batch):
        chunk = []
        for i in range(start, min(start + batch, leaves)):
            data = ledger_entry_leaf(ledger_entry(i))
            chunk.append(Leaf(data, f"cand-{i % SUBJECTS:06d}", LEDGER_KIND, hashlib.sha256(data).hexdigest()))
        started = time.perf_counter()
        store.append(chunk)
        spent += time.perf_counter() - started
    store.sign(Signer.generate(KEY_NAME))
    return store, spent


def active_parts(store: LogStore, database: str) -> int:
    """The log tables' active parts: a point lookup reads each part's index."""
    rows = store.reader.query(
        "SELECT count() FROM system.parts WHERE database = {d:String} AND active AND table IN {tables:Array(String)}",
        {"d": database, "tables": [t.name for t in LOG_TABLES]},
    )
    return int(rows[0][0])


def proofs(store: LogStore, database: str, count: int) -> dict[str, Any]:
    """Inclusion and consistency proofs against the whole log, each followed by the same point lookup alone (so
    both see the same load), and a ``SELECT 1``: the engine's floor for any query."""
    rng = random.Random(1)
    size = store.size

    def lookup(groups: list[tuple[tuple[int, int], ...]]) -> Callable[[], Any]:
        wanted = {address for group in groups for address in group}
        nodes = sorted(a for a in wanted if a[0] > 0)
        leaves = sorted(i for level, i in wanted if level == 0)
        parameters = {"log": store.log_id, "nodes": nodes, "leaves": leaves}
        return lambda: store.reader.query(POINT_LOOKUP, parameters)

    spent: dict[str, list[float]] = {
        name: [] for name in ("inclusion", "raw_inclusion", "consistency", "raw_consistency", "select_1")
    }
    for _ in range(count):
        index, old = rng.randrange(size), rng.randrange(1, size)
        calls: dict[str, Callable[[], Any]] = {
            "inclusion": partial(store.inclusion_proof, index, size),
            "raw_inclusion": lookup(inclusion_addresses(index, size)),
            "consistency": partial(store.consistency_proof, old, size),
            "raw_consistency": lookup(consistency_addresses(old, size)),
            "select_1": partial(store.reader.query, "SELECT 1"),
        }
        for name, took in zip(calls, timed(iter(calls.values())), strict=True):
            spent[name].append(took)
    figures: dict[str, Any] = {"proofs": count, "active_parts": active_parts(store, database)}
    for name, times in spent.items():
        figures[f"{name}_ms_p50"] = percentile_ms(times, 0.50)
        figures[f"{name}_ms_p95"] = percentile_ms(times, 0.95)
    return figures


def bytes_per_leaf(store: LogStore, database: str) -> dict[str, Any]:
    """(c): the log's tables on disk (active parts, compressed) over its leaves, per table and in all."""
    rows = store.reader.query(
        "SELECT table, sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE database = {d:String} AND active AND table IN {tables:Array(String)} GROUP BY table",
        {"d": database, "tables": [t.name for t in LOG_TABLES]},
    )
    on_disk = {str(table): int(size) for table, size, _ in rows}
    return {
        "bytes_on_disk_per_leaf": round(sum(on_disk.values()) / store.size, 2),
        "uncompressed_bytes_per_leaf": round(sum(int(raw) for _, _, raw in rows) / store.size, 2),
        "by_table_per_leaf": {table: round(size / store.size, 2) for table, size in sorted(on_disk.items())},
    }


def main() -> None:
    """Run (a) unless ``--skip-kafka``, then (b) and (c); print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka for (a): a broker of the bench's own")
    parser.add_argument("--skip-kafka", action="store_true", help="(b) and (c) only")
    parser.add_argument("--records", type=int, default=1_000_000, help="(a): ledger entries on the prepared topic")
    parser.add_argument("--leaves", type=int, default=10_000_000, help="(b), (c): leaves in the log proved against")
    parser.add_argument("--batch", type=int, default=100_000, help="(b): leaves a LogStore.append")
    parser.add_argument("--proofs", type=int, default=1_000)
    parser.add_argument("--dsn", default=None, help="chDB path or ClickHouse server (default: a fresh chDB folder)")
    parser.add_argument("--notaries", type=int, default=2, help="(a) again with this many notaries in one group (1: not again)")
    args = parser.parse_args()
    dsn = args.dsn or f"chdb://{tempfile.mkdtemp(prefix='bench-notary-')}"
    figures: dict[str, Any] = {"dsn": dsn}
    if not args.skip_kafka:
        figures["a_notary_over_topic"] = notary_over_topic(args.bootstrap, args.records, dsn, args.notaries)
    database = f"bench_notary_log_{uuid.uuid4().hex[:8]}"
    store, append_seconds = build_log(dsn, database, args.leaves, args.batch)
    figures["b_proofs"] = {
        "leaves": store.size,
        "prepare_append_seconds": round(append_seconds, 1),
        "prepare_leaves_per_second": round(store.size / append_seconds),
        **proofs(store, database, args.proofs),
    }
    figures["c_storage"] = bytes_per_leaf(store, database)
    # The same after the parts are merged into one a table, as ClickHouse's background merges tend to.
    started = time.perf_counter()
    for table in LOG_TABLES:
        store.reader.query(f"OPTIMIZE TABLE {{db:Identifier}}.`{table.name}` FINAL")
    figures["b_proofs_merged"] = {
        "optimize_seconds": round(time.perf_counter() - started, 1),
        **proofs(store, database, args.proofs),
    }
    figures["c_storage_merged"] = bytes_per_leaf(store, database)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
