"""The ClickHouse sink on the real engine (chDB): schema, idempotence under redelivery, patience, no values."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consentflow.contracts.eventfile import ReadingStopped, read_events
from consentflow.contracts.timestamp_plan import micros
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.policy.vocabulary import ConsentAction, Purpose
from consentflow.sinks.clickhouse import ClickHouseSink, SinkUnavailable, check_database_name, check_dsn, connect
from consentflow.sinks.tables import TABLES, arrow_type
from consentflow.streams.embedded import run_events


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sink") / "events.avro"
    generate(GeneratorConfig(subjects=200, days=120, seed=11, violation_share=0.03), out, None)
    return out


def _contents(sink: ClickHouseSink) -> dict[str, list[tuple[Any, ...]]]:
    """Every table read with FINAL, in a stable order."""
    return {t.name: sorted(sink.reader.query(f"SELECT * FROM {{db:Identifier}}.`{t.name}` FINAL"), key=repr) for t in TABLES}


def test_schema_has_every_table_and_the_by_recipient_copy(chdb_dsn: str, database: str) -> None:
    sink = ClickHouseSink(chdb_dsn, database)
    names = {row[0] for row in sink.reader.query("SELECT name FROM system.tables WHERE database = {d:String}", {"d": database})}
    assert {t.name for t in TABLES} | {"lineage_by_recipient"} <= names
    ClickHouseSink(chdb_dsn, database)  # creating it again is harmless


def test_a_replayed_run_leaves_query_results_unchanged(chdb_dsn: str, database: str, small_dataset: Path) -> None:
    sink = ClickHouseSink(chdb_dsn, database, max_rows=500)
    events = list(read_events(small_dataset))
    stats = run_events(events, Processor(), sink)
    first = _contents(sink)
    assert len(first["lineage_edges"]) == stats.outputs["lineage"]
    assert len(first["ledger"]) == stats.outputs["ledger"]
    # At-least-once: the whole stream delivered again, through a fresh processor (as after a crash without state).
    run_events(events, Processor(), sink)
    assert _contents(sink) == first
    by_recipient = sink.reader.query("SELECT count() FROM {db:Identifier}.lineage_by_recipient FINAL")[0][0]
    assert by_recipient == len(first["lineage_edges"])


def test_columns_sent_as_arrow_are_stored_as_the_ddl_says_and_read_back_as_written(
    chdb_dsn: str, database: str, small_dataset: Path
) -> None:
    """Inserts send Arrow columns (strings for LowCardinality, timestamps for DateTime64: clickhouse-connect's Python
    conversions were the sink's slowest part); the tables keep their declared types and the values read back as written."""
    sink = ClickHouseSink(chdb_dsn, database)
    events = list(read_events(small_dataset))
    processor = Processor()
    edges = [r for topic, record in events for out, r in processor.process(topic.short_name, record) if out == "lineage"]
    for edge in edges:
        sink.add("lineage", edge)
    sink.flush()
    for table in TABLES:
        assert table.arrow_schema.names == table.column_names
        stored = sink.reader.query(
            "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = {t:String} ORDER BY position",
            {"d": database, "t": table.name},
        )
        assert stored == [(name, kind) for name, kind in table.columns], table.name
    rows = sink.reader.query(
        "SELECT edge_id, recipient_kind, country, transfer_mechanism, categories, toUnixTimestamp64Micro(occurred_at)"
        " FROM {db:Identifier}.lineage_edges"
    )
    assert len(rows) == len(edges) > 1_000
    assert sorted(rows) == sorted(
        (e["edge_id"], e["recipient_kind"], e["country"], e["transfer_mechanism"], e["categories"], micros(e["occurred_at"]))
        for e in edges
    )


def test_a_file_that_breaks_off_leaves_the_outputs_of_every_event_read_before_it(
    chdb_dsn: str, database: str, small_dataset: Path, tmp_path: Path
) -> None:
    """Nothing read is lost: the events decoded before the fault have their outputs in the tables (the run stops
    with the error, before the retention tick), exactly as a run of those events alone writes them."""
    truncated = tmp_path / "truncated.avro"
    data = small_dataset.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    read: list[Any] = []
    with pytest.raises(ReadingStopped):
        read.extend(read_events(truncated))
    assert read
    faulty = ClickHouseSink(chdb_dsn, database, max_rows=10**6)  # nothing flushed by size: all of it waits in the buffers
    with pytest.raises(ReadingStopped):
        run_events(read_events(truncated), Processor(), faulty)
    reference = ClickHouseSink(chdb_dsn, f"{database}_prefix")
    processor = Processor()
    for topic, record in read:
        reference.add_all(processor.process(topic.short_name, record))
        if topic.short_name == "recipients":
            reference.add("recipients", record)
    reference.flush()
    written, expected = _contents(faulty), _contents(reference)
    assert written["ledger"] and written["lineage_edges"]
    assert written == expected


def test_a_statement_lock_is_held_around_each_statement_and_free_between_them(chdb_dsn: str, database: str) -> None:
    """Threads that share one ClickHouse (the HTTP API's replay beside its readers) take turns per statement: the sink
    holds the lock it is given while a statement runs, never while it buffers or between its inserts."""
    lock = threading.Lock()
    statements = []

    class Turn:
        def __enter__(self) -> None:
            lock.acquire()
            statements.append(1)

        def __exit__(self, *exc: object) -> None:
            lock.release()

    sink = ClickHouseSink(chdb_dsn, database, statement_lock=Turn())
    created = len(statements)
    assert created == 1  # the schema's DDL, in one turn
    assert lock.acquire(blocking=False)  # free once the sink is built
    lock.release()
    events = list(read_events_of_a_day())
    processor = Processor()
    for topic, record in events:
        sink.add_all(processor.process(topic.short_name, record))
    assert len(statements) == created and lock.acquire(blocking=False)  # buffering runs no statement
    lock.release()
    sink.flush()
    tables_written = sum(1 for t in TABLES if sink.reader.query(f"SELECT count() FROM {{db:Identifier}}.`{t.name}`")[0][0])
    assert tables_written >= 2
    # an insert per table written, then the count query of each table
    assert len(statements) == created + tables_written + len(TABLES)
    assert lock.acquire(blocking=False)
    lock.release()


def read_events_of_a_day() -> list[Any]:
    """A few subjects' consent and processing events, enough to fill several tables."""
    from tests.support.builders import POSTWAVE, T0, consent, newsletter

    out: list[Any] = []
    for n in range(5):
        subject = f"cand-lock-{n}"
        for event in (
            consent(subject, Purpose.MARKETING, ConsentAction.GRANTED, T0),
            newsletter(subject, T0 + timedelta(hours=1), processor_id=POSTWAVE.recipient_id),
        ):
            out.append((event.topic, event.record))
    return out


_MISSING = object()
_EDGE: dict[str, Any] = {
    "edge_id": "e1",
    "subject_id": "s1",
    "recipient_id": "r1",
    "recipient_kind": "payment_provider",
    "categories": ["banking"],
    "purpose": "contract_introductions",
    "legal_basis": "contract",
    "country": "FR",
    "transfer_mechanism": "within_eea",
    "occurred_at": datetime(2021, 1, 1, tzinfo=UTC),
    "source_event_id": "e1",
    "source_kind": "disclosure",
    "source": None,
}


def test_flush_returns_only_when_rows_are_in_clickhouse_and_buffers_by_size(chdb_dsn: str, database: str) -> None:
    sink = ClickHouseSink(chdb_dsn, database, max_rows=3, max_seconds=3600)
    edge = dict(_EDGE)
    sink.add("lineage", edge)
    sink.add("lineage", dict(edge, edge_id="e2"))
    assert not sink.flush_due()
    assert sink.reader.query("SELECT count() FROM {db:Identifier}.lineage_edges")[0][0] == 0
    sink.add("lineage", dict(edge, edge_id="e3", source={"topic": "consentflow.disclosure", "partition": 2, "offset": 7}))
    assert sink.flush_due()
    assert sink.flush() == 3
    assert sink.pending == 0
    rows = sink.reader.query(
        "SELECT edge_id, source_topic, source_partition, source_offset FROM {db:Identifier}.lineage_edges ORDER BY edge_id"
    )
    assert rows == [("e1", None, None, None), ("e2", None, None, None), ("e3", "consentflow.disclosure", 2, 7)]


@pytest.mark.parametrize(("column", "value", "error"), [("country", _MISSING, "KeyError"), ("occurred_at", "yesterday", "Arrow")])
def test_a_record_that_cannot_fill_its_table_is_named_and_nothing_buffered_is_lost(
    chdb_dsn: str, database: str, column: str, value: Any, error: str
) -> None:
    """Columns are read from the buffered records at insert time: a record that lacks a field, or holds a value of
    the wrong type, fails the insert with its table, its place in the batch and the column; the batch stays buffered."""
    sink = ClickHouseSink(chdb_dsn, database, max_seconds=3600)
    bad = dict(_EDGE, edge_id="e2", **{column: value})
    if value is _MISSING:
        del bad[column]
    for record in (_EDGE, bad, dict(_EDGE, edge_id="e3")):
        sink.add("lineage", record)
    with pytest.raises(ValueError, match=rf"^lineage_edges: record 1 of the batch cannot fill column {column}: {error}"):
        sink.flush()
    assert sink.pending == 3
    assert sink.reader.query("SELECT count() FROM {db:Identifier}.lineage_edges")[0][0] == 0


class _Gated:
    """A client whose inserts wait for ``release``, then fail with ``failure`` if one is set."""

    def __init__(self, real: Any) -> None:
        self.real, self.entered, self.release = real, threading.Event(), threading.Event()
        self.failure: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def insert_arrow(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.release.wait(30)
        if self.failure is not None:
            raise self.failure
        return self.real.insert_arrow(*args, **kwargs)


def _edge_ids(sink: ClickHouseSink) -> list[str]:
    return [row[0] for row in sink.reader.query("SELECT edge_id FROM {db:Identifier}.lineage_edges ORDER BY edge_id")]


def test_flush_behind_returns_while_clickhouse_inserts_and_the_next_flush_waits_for_it(chdb_dsn: str, database: str) -> None:
    gated = _Gated(connect(chdb_dsn))
    sink = ClickHouseSink(chdb_dsn, database, max_seconds=3600, client_factory=lambda _: gated)
    for edge_id in ("e1", "e2", "e3"):
        sink.add("lineage", dict(_EDGE, edge_id=edge_id))
    sink.flush_behind()
    assert gated.entered.wait(10)  # the insert runs on the writer thread, held there
    sink.add("lineage", dict(_EDGE, edge_id="e4"))  # processing goes on meanwhile
    assert sink.pending == 4
    assert _edge_ids(sink) == []
    gated.release.set()
    assert sink.flush() == 4  # the insert behind, then the rest
    assert sink.pending == 0
    assert sink.inserted == 4
    assert _edge_ids(sink) == ["e1", "e2", "e3", "e4"]


def test_an_insert_behind_that_fails_raises_at_the_next_flush_with_its_rows_back_in_the_buffer(
    chdb_dsn: str, database: str
) -> None:
    gated = _Gated(connect(chdb_dsn))
    gated.failure = ValueError("ClickHouse refused the batch")
    gated.release.set()
    sink = ClickHouseSink(chdb_dsn, database, max_seconds=3600, client_factory=lambda _: gated)
    for edge_id in ("e1", "e2"):
        sink.add("lineage", dict(_EDGE, edge_id=edge_id))
    sink.flush_behind()
    sink.add("lineage", dict(_EDGE, edge_id="e3"))
    with pytest.raises(ValueError, match="ClickHouse refused the batch"):
        sink.flush()
    assert sink.pending == 3
    assert _edge_ids(sink) == []
    gated.failure = None
    assert sink.flush() == 3
    assert _edge_ids(sink) == ["e1", "e2", "e3"]


class _Unreachable:
    """A client whose server is down for the first ``failures`` calls."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real, self.failures, self.calls = real, failures, 0

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= self.failures:
                raise ConnectionRefusedError(111, "Connection refused")
            return getattr(self.real, name)(*args, **kwargs)

        return call


def test_an_unreachable_clickhouse_pauses_the_writer_and_loses_nothing(
    chdb_dsn: str, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    from consentflow.sinks.clickhouse import connect

    real = connect(chdb_dsn)
    flaky = _Unreachable(real, failures=0)
    slept: list[float] = []
    sink = ClickHouseSink(chdb_dsn, database, client_factory=lambda _dsn: flaky, sleep=slept.append)
    sink.add(
        "retention",
        {
            "action_id": "a1",
            "subject_id": "s1",
            "action": "archive",
            "categories": ["identity"],
            "due_at": datetime(2024, 1, 1, tzinfo=UTC),
            "policy_section": "2.3.1",
            "basis_event_id": None,
            "reason": "r",
        },
    )
    flaky.failures, flaky.calls = 4, 0
    assert sink.flush() == 1
    assert slept == [0.5, 1.0, 2.0, 4.0]  # backoff, then success
    away, back = [r.getMessage() for r in caplog.records if r.name == "consentflow.outage"]  # not a line per retry
    assert "not answering while inserting into retention_actions" in away and "back after" in back
    assert sink.reader.query("SELECT action_id FROM {db:Identifier}.retention_actions") == [("a1",)]


def test_a_retry_budget_ends_in_a_clear_error_not_a_crash_loop(chdb_dsn: str, database: str) -> None:
    from consentflow.sinks.clickhouse import connect

    flaky = _Unreachable(connect(chdb_dsn), failures=0)
    sink = ClickHouseSink(chdb_dsn, database, client_factory=lambda _dsn: flaky, sleep=lambda _s: None, retry_for=3.0)
    sink.add(
        "retention",
        {
            "action_id": "a2",
            "subject_id": "s1",
            "action": "archive",
            "categories": [],
            "due_at": datetime(2024, 1, 1, tzinfo=UTC),
            "policy_section": "2.3.1",
            "basis_event_id": None,
            "reason": "r",
        },
    )
    flaky.failures, flaky.calls = 10**6, 0
    with pytest.raises(SinkUnavailable, match="unreachable for"):
        sink.flush()
    assert sink.pending == 1  # still buffered: nothing dropped


def test_a_server_dsn_that_nobody_answers_is_reported(database: str) -> None:
    with pytest.raises(SinkUnavailable, match=re.escape("127.0.0.1:9")):
        ClickHouseSink("http://127.0.0.1:9", database, retry_for=0.5, sleep=lambda _s: None)


@pytest.mark.parametrize(
    ("dsn", "message"),
    [("mysql://x", "must be chdb:///path"), ("chdb://relative", "absolute path"), ("chdb:///", "absolute path")],
)
def test_bad_dsns_are_refused_with_the_reason(dsn: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_dsn(dsn)


def test_a_second_chdb_path_in_one_process_is_refused_at_once_not_retried(chdb_dsn: str, database: str) -> None:
    slept: list[float] = []
    with pytest.raises(ValueError, match=re.escape(f"already opened {chdb_dsn}")):
        ClickHouseSink(chdb_dsn + "-other", database, sleep=slept.append)
    assert slept == []  # a configuration error, not an outage to wait out


@pytest.mark.parametrize(
    ("kind", "named"), [("Float64", "Float64"), ("Array(UUID)", "UUID"), ("Nullable(Decimal(9, 2))", "Decimal(9, 2)")]
)
def test_a_column_type_without_an_arrow_form_is_named(kind: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"no Arrow type for ClickHouse type {named!r}")):
        arrow_type(kind)


@pytest.mark.parametrize("name", ["x; DROP TABLE y", "a-b", "1abc", "", "a" * 65, "db`"])
def test_database_names_are_identifiers_only(name: str) -> None:
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        check_database_name(name)


def test_no_personal_value_reaches_any_table(chdb_dsn: str, database: str, small_dataset: Path) -> None:
    """The pipeline tracks metadata, never values: values smuggled into input records never reach a table."""
    leaked = {
        "email": "jane.doe@example.com",
        "phone": "+33 6 12 34 56 78",
        "name": "Jane Doe",
        "iban": "FR7630006000011234567890189",
        "password": "hunter2-secret",
    }
    events = []
    for topic, record in read_events(small_dataset):
        if topic.short_name != "recipients":
            record = dict(record, **leaked)  # an upstream service sending more than the contract allows
        events.append((topic, record))
    sink = ClickHouseSink(chdb_dsn, database)
    stats = run_events(events, Processor(), sink, as_of=datetime(2030, 1, 1, tzinfo=UTC))
    assert stats.outputs["lineage"] > 0 and stats.outputs["ledger"] > 0 and stats.outputs["retention"] > 0
    for table in [t.name for t in TABLES] + ["lineage_by_recipient"]:
        text = repr(sink.reader.query(f"SELECT * FROM {{db:Identifier}}.`{table}`"))
        for value in leaked.values():
            assert value not in text, f"{value!r} leaked into {table}"
        assert not re.search(r"[\w.]+@[\w.]+\.\w+", text), f"an email address reached {table}"


def test_times_come_back_as_the_same_instants(chdb_dsn: str, database: str) -> None:
    sink = ClickHouseSink(chdb_dsn, database)
    when = datetime(2021, 3, 28, 1, 59, 59, 123456, tzinfo=UTC) + timedelta(hours=1)
    sink.add(
        "retention",
        {
            "action_id": "a",
            "subject_id": "s",
            "action": "archive",
            "categories": [],
            "due_at": when,
            "policy_section": "2.3.1",
            "basis_event_id": None,
            "reason": "r",
        },
    )
    sink.flush()
    (stored,) = sink.reader.query("SELECT due_at FROM {db:Identifier}.retention_actions")[0]
    assert stored.replace(tzinfo=UTC) == when


def _holdings(revision: int, categories: list[str], due: datetime) -> dict[str, Any]:
    """A SubjectHoldings record of subject s1 with one planned archive."""
    return {
        "subject_id": "s1",
        "revision": revision,
        "latest_event_at": due - timedelta(days=1095),
        "account_kind": "applicant",
        "categories_held": categories,
        "registered_at": None,
        "last_use": due - timedelta(days=1095),
        "closed_at": None,
        "last_negative": None,
        "suspended_at": None,
        "archive_at": due,
        "archive_section": "2.3.1",
        "archive_reason": "three years after the last use",
        "planned": [
            {
                "action": "archive",
                "categories": categories,
                "due_at": due,
                "policy_section": "2.3.1",
                "reason": "three years after the last use",
                "basis_event_id": None,
            }
        ],
    }


def test_the_holdings_on_the_most_events_win_whatever_arrives_last(chdb_dsn: str, database: str) -> None:
    """subject_holdings keeps one row per subject: the highest revision (events known), even when an older record,
    issued by a worker that knew less, is inserted after it."""
    sink = ClickHouseSink(chdb_dsn, database)
    later, earlier = datetime(2027, 5, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    sink.add("holdings", _holdings(7, ["contact", "identity", "usage_data"], later))
    sink.flush()
    sink.add("holdings", _holdings(3, ["identity"], earlier))  # a crashed worker's record, redelivered late
    sink.flush()
    rows = sink.reader.query(
        "SELECT revision, categories_held, archive_at, planned_actions, planned_categories, planned_due_at, "
        "planned_basis_event_ids FROM {db:Identifier}.subject_holdings FINAL"
    )
    assert len(rows) == 1
    revision, held, archive_at, actions, categories, due, basis = rows[0]
    assert (revision, held, actions, categories, basis) == (7, ["contact", "identity", "usage_data"], ["archive"], [held], [None])
    assert archive_at.replace(tzinfo=UTC) == later and [d.replace(tzinfo=UTC) for d in due] == [later]
