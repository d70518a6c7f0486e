"""The auditor's ``replay`` (input topics -> a fresh database) and ``verify`` (hash chains, digests, comparison).

A small generated dataset goes to fresh topics in two batches with an instant
between them; replays from the beginning must leave the same tables as each
other and as the embedded run of the file; a replay from that instant must hold
exactly the later batch's consent events, chained from sequence 0, which the
test works out from the file itself. ``verify`` must name a tampered ledger
entry, and ``--against`` the first row that differs.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Producer

from consentflow.cli import main
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.contracts.topics import CONSENT, RECIPIENTS, Topic
from consentflow.core.ledger import entry_hash
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.kafka.producer import EventProducer
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.digest import table_digests
from consentflow.sinks.tables import LEDGER
from consentflow.streams.embedded import run_events
from tests.support.kafka_topics import assert_topics_hold, fresh_topics

SUBJECTS, DAYS, SEED = 200, 90, 41
GARBAGE = b"\xc3\x01neither a fingerprint nor avro"

Events = list[tuple[Topic, dict[str, Any]]]


def cli(*args: str) -> Result:
    """Run the ``consentflow`` command in-process (the test's one chDB engine is shared)."""
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "events.avro"
    generate(GeneratorConfig(subjects=SUBJECTS, days=DAYS, seed=SEED, violation_share=0.03), out, None)
    return out


@pytest.fixture(scope="module")
def events(dataset: Path) -> Events:
    return list(read_events(dataset))


def embedded_run(dataset: Path, chdb_dsn: str) -> str:
    """The dataset through the embedded runner into a new database; returns its name."""
    database = f"emb_{uuid.uuid4().hex[:8]}"
    stats = run_events(read_events(dataset), Processor(), ClickHouseSink(chdb_dsn, database))
    assert stats.dead_letters == 0
    return database


@pytest.fixture(scope="module")
def embedded(dataset: Path, chdb_dsn: str) -> str:
    """The reference database: the file through the embedded runner, never modified."""
    database = embedded_run(dataset, chdb_dsn)
    digests = table_digests(ClickHouseSink(chdb_dsn, database).reader)
    assert digests["ledger"][0] > 100 and digests["lineage_edges"][0] > 100 and digests["violations"][0] > 0
    return database


def consent_chains(events: Events) -> dict[tuple[str, int], str]:
    """``(subject, sequence) -> event id`` as the ledger must chain them: each subject's consent events in order."""
    chains: dict[str, list[str]] = defaultdict(list)
    for topic, record in events:
        if topic is CONSENT:
            chains[record["subject_id"]].append(record["event_id"])
    return {(subject, index): event_id for subject, ids in chains.items() for index, event_id in enumerate(ids)}


def ledger_rows(chdb_dsn: str, database: str) -> dict[tuple[str, int], str]:
    sink = ClickHouseSink(chdb_dsn, database)
    return {
        (s, int(n)): e for s, n, e in sink.reader.query("SELECT subject_id, sequence, event_id FROM {db:Identifier}.ledger FINAL")
    }


# -- Kafka: the input topics replayed ---------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    """Fresh input topics holding the dataset: batch ``before`` produced before ``cut``, ``after`` after it."""

    prefix: str
    cut: datetime
    before: Events
    after: Events
    registry: Events


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str, events: Events) -> Iterator[Topics]:
    registry = [(t, r) for t, r in events if t is RECIPIENTS]
    rest = [(t, r) for t, r in events if t is not RECIPIENTS]
    before, after = rest[: len(rest) // 2], rest[len(rest) // 2 :]
    with fresh_topics(kafka_bootstrap, "rv") as prefix:
        sent = Counter(topic.name(prefix) for topic, _ in events)
        with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            for topic, record in registry + before:
                producer.send(Event(topic, record))
        time.sleep(0.05)  # Kafka timestamps are milliseconds: keep the batches apart
        cut = datetime.now(UTC)
        time.sleep(0.05)
        with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            for topic, record in after:
                producer.send(Event(topic, record))
        # One message that is not Avro at all, among the later batch: it must become a dead letter.
        raw = Producer({"bootstrap.servers": kafka_bootstrap})
        raw.produce(CONSENT.name(prefix), key=b"subj-garbage", value=GARBAGE, partition=1)
        assert raw.flush(10) == 0
        sent[CONSENT.name(prefix)] += 1
        # The replays are compared with the file's embedded run: the topics must hold the whole file.
        assert_topics_hold(kafka_bootstrap, sent)
        yield Topics(prefix, cut, before, after, registry)


def replay(kafka_bootstrap: str, topics: Topics, chdb_dsn: str, *window: str) -> str:
    """``consentflow replay`` into a new database; returns its name."""
    database = f"rep_{uuid.uuid4().hex[:8]}"
    result = cli(
        "replay", *window, "--into", chdb_dsn, "--database", database, "--bootstrap", kafka_bootstrap, "--prefix", topics.prefix
    )
    assert result.exit_code == 0, result.output
    return database


@pytest.mark.kafka
def test_two_replays_leave_identical_tables_equal_to_the_embedded_run(
    kafka_bootstrap: str, topics: Topics, chdb_dsn: str, embedded: str
) -> None:
    first = replay(kafka_bootstrap, topics, chdb_dsn, "--from-beginning")
    second = replay(kafka_bootstrap, topics, chdb_dsn, "--from-beginning")
    first_digests = table_digests(ClickHouseSink(chdb_dsn, first).reader)
    assert table_digests(ClickHouseSink(chdb_dsn, second).reader) == first_digests
    reference = table_digests(ClickHouseSink(chdb_dsn, embedded).reader)
    assert first_digests.pop("dead_letters")[0] == 1
    assert first_digests == {k: v for k, v in reference.items() if k != "dead_letters"}

    # The undecodable message is kept with its coordinates and original bytes, the stream went on.
    ((topic, partition, key, value, reason),) = ClickHouseSink(chdb_dsn, first).reader.query(
        "SELECT topic, partition, key_hex, value_hex, reason FROM {db:Identifier}.dead_letters FINAL"
    )
    assert (topic, partition, bytes.fromhex(key), bytes.fromhex(value)) == (
        CONSENT.name(topics.prefix),
        1,
        b"subj-garbage",
        GARBAGE,
    )
    assert "unknown schema fingerprint" in reason

    # The auditor's check: chains verify, the two replays are equal table by table.
    result = cli("verify", "--dsn", chdb_dsn, "--database", first, "--against-database", second)
    assert result.exit_code == 0, result.output
    assert "every chain verifies" in result.output and "equal, table by table" in result.output
    assert f"{reference['ledger'][0]:,} entries of" in result.output


@pytest.mark.kafka
def test_from_time_replays_only_the_events_emitted_from_then_on(
    kafka_bootstrap: str, topics: Topics, chdb_dsn: str, events: Events
) -> None:
    later = replay(kafka_bootstrap, topics, chdb_dsn, "--from-time", topics.cut.isoformat())
    # Every consent event of the later batch, and none of the earlier, chained per subject from sequence 0.
    assert ledger_rows(chdb_dsn, later) == consent_chains(topics.after)
    sink = ClickHouseSink(chdb_dsn, later)
    earlier_ids = {r["event_id"] for _, r in topics.before}
    later_ids = {r["event_id"] for _, r in topics.after}
    sources = {e for (e,) in sink.reader.query("SELECT source_event_id FROM {db:Identifier}.lineage_edges FINAL")}
    assert sources and sources <= later_ids and not sources & earlier_ids
    # The registry is read whole whatever the window: processors need every recipient [7].
    registry_ids = {e for (e,) in sink.reader.query("SELECT event_id FROM {db:Identifier}.recipients FINAL")}
    assert registry_ids == {r["event_id"] for _, r in topics.registry}
    result = cli("verify", "--dsn", chdb_dsn, "--database", later)
    assert result.exit_code == 0, result.output

    # And up to that instant: the earlier batch only.
    earlier = replay(kafka_bootstrap, topics, chdb_dsn, "--from-beginning", "--to-time", topics.cut.isoformat())
    assert ledger_rows(chdb_dsn, earlier) == consent_chains(topics.before)
    assert ClickHouseSink(chdb_dsn, earlier).reader.query("SELECT count() FROM {db:Identifier}.dead_letters")[0][0] == 0


# -- the command's edges (no broker needed) ---------------------------------------------------------


def test_replay_refuses_a_database_that_already_holds_rows(chdb_dsn: str, embedded: str) -> None:
    before = table_digests(ClickHouseSink(chdb_dsn, embedded).reader)
    result = cli("replay", "--from-beginning", "--into", chdb_dsn, "--database", embedded, "--bootstrap", "127.0.0.1:1")
    assert result.exit_code != 0
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and "not fresh" in message and embedded in message
    assert table_digests(ClickHouseSink(chdb_dsn, embedded).reader) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "exactly one of --from-beginning and --from-time"),
        (["--from-beginning", "--from-time", "2024-01-01"], "exactly one of --from-beginning and --from-time"),
        (["--from-time", "2024-05-01T12:00:00Z", "--to-time", "2024-05-01T11:00:00Z"], "is not after --from-time"),
        (["--from-time", "yesterday"], "'yesterday' is not an ISO-8601 time"),
    ],
)
def test_replay_options_are_checked_before_anything_is_read(chdb_dsn: str, database: str, args: list[str], expected: str) -> None:
    result = cli("replay", *args, "--into", chdb_dsn, "--database", database, "--bootstrap", "127.0.0.1:1")
    assert result.exit_code != 0
    assert expected in result.output


def test_verify_refuses_two_chdb_paths_and_missing_databases(chdb_dsn: str, database: str) -> None:
    result = cli("verify", "--dsn", chdb_dsn, "--database", database, "--against", "chdb:///somewhere/else")
    assert result.exit_code != 0 and "one engine per process" in result.output
    result = cli("verify", "--dsn", chdb_dsn, "--database", database)
    assert result.exit_code != 0 and "lacks the consentflow tables" in result.output


# -- verify: tampering is found where it happened ----------------------------------------------------


def _long_chain(events: Events) -> tuple[str, list[str]]:
    """A subject with at least three consent events, and their event ids in chain order."""
    chains: dict[str, list[str]] = defaultdict(list)
    for (subject, _), event_id in sorted(consent_chains(events).items()):
        chains[subject].append(event_id)
    subject = next(s for s, ids in sorted(chains.items()) if len(ids) >= 3)
    return subject, chains[subject]


def test_verify_names_an_entry_altered_in_place(dataset: Path, events: Events, chdb_dsn: str) -> None:
    database = embedded_run(dataset, chdb_dsn)
    subject, chain = _long_chain(events)
    sink = ClickHouseSink(chdb_dsn, database)
    sink.reader.query(
        "ALTER TABLE {db:Identifier}.ledger UPDATE channel = 'tampered' WHERE subject_id = {s:String} AND sequence = 1 "
        "SETTINGS mutations_sync = 2",
        {"s": subject},
    )
    assert sink.reader.query(
        "SELECT channel FROM {db:Identifier}.ledger FINAL WHERE subject_id = {s:String} AND sequence = 1", {"s": subject}
    ) == [("tampered",)]
    result = cli("verify", "--dsn", chdb_dsn, "--database", database)
    assert result.exit_code != 0
    broken = [line for line in result.output.splitlines() if "BROKEN" in line]
    assert broken == [
        f"  BROKEN subject {subject}, entry 1 (event {chain[1]}): event {chain[1]}: contents do not match entry_hash (entry altered)"
    ]
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: 1 of ") and f"subject {subject}, entry 1" in last


def test_verify_names_a_forged_row_and_against_shows_the_first_difference(
    dataset: Path, events: Events, chdb_dsn: str, embedded: str
) -> None:
    database = embedded_run(dataset, chdb_dsn)
    subject, chain = _long_chain(events)
    sink = ClickHouseSink(chdb_dsn, database)
    columns = [
        c
        for c, _ in sink.reader.query(
            "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'ledger' ORDER BY position",
            {"d": database},
        )
    ]
    (row,) = sink.reader.query(
        "SELECT * FROM {db:Identifier}.ledger FINAL WHERE subject_id = {s:String} AND sequence = 2", {"s": subject}
    )
    original = dict(zip(columns, row, strict=True))
    forged_action = "withdrawn" if original["action"] != "withdrawn" else "granted"
    # A forged row under the same key, hashes copied from the genuine one: FINAL now reads the forgery.
    forged = {**original, "action": forged_action, "occurred_at": original["occurred_at"].replace(tzinfo=UTC), "source": None}
    sink.add("ledger", forged)
    sink.flush()

    result = cli("verify", "--dsn", chdb_dsn, "--database", database, "--against-database", embedded)
    assert result.exit_code != 0
    assert f"BROKEN subject {subject}, entry 2 (event {chain[2]})" in result.output
    key = f"subject_id='{subject}', sequence=2, entry_hash='{original['entry_hash']}'"
    expected = f"first difference: table ledger, key ({key}): action: '{forged_action}' vs '{original['action']}'"
    assert expected in result.output
    last = result.output.strip().splitlines()[-1]
    assert "ledger chains do not verify" in last and "the databases differ: table ledger" in last


def test_a_fork_stays_in_the_ledger_and_verify_names_it(dataset: Path, events: Events, chdb_dsn: str) -> None:
    """A second entry at a chain's last sequence, its hash honestly recomputed: under the old key (subject, sequence)
    FINAL kept one of the two and every chain verified; now both stay, a redelivery still collapses, and verify
    names the fork."""
    database = embedded_run(dataset, chdb_dsn)
    subject, chain = _long_chain(events)
    last = len(chain) - 1
    sink = ClickHouseSink(chdb_dsn, database)
    columns = [
        c
        for c, _ in sink.reader.query(
            "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'ledger' ORDER BY position",
            {"d": database},
        )
    ]
    (row,) = sink.reader.query(
        "SELECT * FROM {db:Identifier}.ledger FINAL WHERE subject_id = {s:String} AND sequence = {n:UInt64}",
        {"s": subject, "n": last},
    )
    genuine = {**dict(zip(columns, row, strict=True)), "source": None}
    genuine["occurred_at"] = genuine["occurred_at"].replace(tzinfo=UTC)
    forged = {**genuine, "action": "granted" if genuine["action"] != "granted" else "withdrawn"}
    forged["entry_hash"] = entry_hash(forged)  # a well-formed second history from the same previous entry
    sink.add("ledger", forged)
    sink.add("ledger", genuine)  # a redelivery of the genuine entry: it collapses with itself
    sink.flush()

    kept = sink.reader.query(
        "SELECT entry_hash FROM {db:Identifier}.ledger FINAL WHERE subject_id = {s:String} AND sequence = {n:UInt64}",
        {"s": subject, "n": last},
    )
    assert sorted(h for (h,) in kept) == sorted([genuine["entry_hash"], forged["entry_hash"]])
    result = cli("verify", "--dsn", chdb_dsn, "--database", database)
    assert result.exit_code != 0
    broken = [line.strip() for line in result.output.splitlines() if "BROKEN" in line]
    assert len(broken) == 1 and broken[0].startswith(f"BROKEN subject {subject}, entry {last} ")
    assert f"fork at sequence {last}: two entries, event {chain[last]}" in broken[0]


def test_a_ledger_table_an_older_version_keyed_is_refused_naming_the_migration(chdb_dsn: str) -> None:
    """CREATE TABLE IF NOT EXISTS would keep the old key, under which a fork silently collapses: the sink says so."""
    database = f"old_{uuid.uuid4().hex[:8]}"
    fresh = ClickHouseSink(chdb_dsn, database)
    fresh.reader.query("DROP TABLE {db:Identifier}.ledger")
    fresh.reader.query(LEDGER.ddl().replace("ORDER BY (subject_id, sequence, entry_hash)", "ORDER BY (subject_id, sequence)"))
    with pytest.raises(ValueError, match=rf"table {database}.ledger is sorted by \(subject_id, sequence\), this version needs"):
        ClickHouseSink(chdb_dsn, database)


def test_against_reports_a_row_missing_from_one_side(dataset: Path, events: Events, chdb_dsn: str, embedded: str) -> None:
    database = embedded_run(dataset, chdb_dsn)
    sink = ClickHouseSink(chdb_dsn, database)
    # The first lineage edge in key order: what the comparison must name.
    subject, when, edge = min(
        sink.reader.query("SELECT subject_id, occurred_at, edge_id FROM {db:Identifier}.lineage_edges FINAL")
    )
    sink.reader.query(
        "ALTER TABLE {db:Identifier}.lineage_edges DELETE WHERE edge_id = {e:String} SETTINGS mutations_sync = 2", {"e": edge}
    )

    result = cli("verify", "--dsn", chdb_dsn, "--database", embedded, "--against-database", database)
    assert result.exit_code != 0
    assert "every chain verifies" in result.output  # the ledger is untouched: the lineage is where they differ
    stamp = when.replace(tzinfo=UTC).isoformat()
    assert (
        f"first difference: table lineage_edges, key (subject_id='{subject}', occurred_at={stamp}, edge_id='{edge}'): only in the first database"
        in result.output
    )
    assert f"{database} at {chdb_dsn}: absent" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: the databases differ: table lineage_edges")
