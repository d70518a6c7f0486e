"""The sink while ClickHouse or Kafka is away: one line each way, back-off, an exit on what no retry outlives, and a
stop that gives the batch up rather than wait for ClickHouse.

No ClickHouse server can run here, so its going away is played by ``ClickHouseAway``: the real chDB engine behind
it, its calls failing as clickhouse-connect fails when a server is down or refuses a statement. Kafka away is a port
nothing listens on.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from confluent_kafka import KafkaError, KafkaException

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.kafka.quiet_logs import OncePerWindow
from consentflow.runtime.outage import EXIT_NOT_TRANSIENT, Outage
from consentflow.sinks import consumer as sink_consumer
from consentflow.sinks.clickhouse import ClickHouseSink, RetryAbandoned, clickhouse_outage, connect
from consentflow.sinks.consumer import SinkConsumer
from tests.support.clickhouse_away import ClickHouseAway, free_port


def action(action_id: str) -> dict[str, Any]:
    return {
        "action_id": action_id,
        "subject_id": "s1",
        "action": "archive",
        "categories": ["identity"],
        "due_at": datetime(2024, 1, 1, tzinfo=UTC),
        "policy_section": "2.3.1",
        "basis_event_id": None,
        "reason": "r",
    }


def action_ids(sink: ClickHouseSink) -> list[str]:
    return [row[0] for row in sink.reader.query("SELECT action_id FROM {db:Identifier}.retention_actions ORDER BY action_id")]


@pytest.fixture
def away(chdb_dsn: str) -> ClickHouseAway:
    return ClickHouseAway(connect(chdb_dsn))


def test_clickhouse_away_then_back_inserts_each_row_once_and_says_so_once_each_way(
    chdb_dsn: str, database: str, away: ClickHouseAway, caplog: pytest.LogCaptureFixture
) -> None:
    outage = clickhouse_outage(chdb_dsn)
    slept: list[float] = []
    seen_away: list[bool] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        seen_away.append(outage.away)

    sink = ClickHouseSink(chdb_dsn, database, client_factory=lambda _dsn: away, sleep=sleep, outage=outage)
    assert sink.clickhouse_outage is outage
    sink.add("retention", action("a1"))
    sink.add("retention", action("a2"))
    away.failures = 6
    caplog.set_level(logging.INFO)
    assert sink.flush() == 2
    assert action_ids(sink) == ["a1", "a2"], "each row once"
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]  # back-off as before: doubling from 0.5 s
    assert seen_away == [True] * 6 and not sink.clickhouse_outage.away  # what a readiness probe reads
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, f"one line when ClickHouse goes away, one when it is back, none per retry: {lines}"
    assert "not answering while inserting into retention_actions" in lines[0] and "Connection refused" in lines[0]
    assert "back after" in lines[1] and "(6 failed attempts)" in lines[1]


def test_an_error_no_retry_outlives_ends_the_sink_with_one_line_and_status_71(
    chdb_dsn: str, database: str, away: ClickHouseAway, caplog: pytest.LogCaptureFixture
) -> None:
    exits: list[int] = []
    outage = clickhouse_outage(chdb_dsn, end_process=exits.append)
    slept: list[float] = []
    sink = ClickHouseSink(chdb_dsn, database, client_factory=lambda _dsn: away, sleep=slept.append, outage=outage)
    sink.add("retention", action("a1"))
    away.failures = 10**6
    away.error = DatabaseError(
        "HTTPDriver for http://clickhouse:8123 received ClickHouse error code 60\n"
        " Code: 60. DB::Exception: Unknown table expression identifier 'consentflow.retention_actions'.\n"
        "Stack trace:\n0. DB::Exception::Exception(...)"
    )
    with pytest.raises(DatabaseError):  # end_process returned (a test's): the error is not swallowed either
        sink.flush()
    assert exits == [EXIT_NOT_TRANSIENT]
    assert slept == [] and away.calls == 1, "not retried"
    (line,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.levelno == logging.CRITICAL and "\n" not in line.getMessage()
    assert "inserting into retention_actions, not transiently: DatabaseError" in line.getMessage()
    assert sink.pending == 1, "the row stays buffered, uncommitted"


def test_a_dsn_at_a_server_that_is_not_clickhouse_ends_the_sink_process_with_one_line_and_status_71() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as server:  # answers 501 to everything
        threading.Thread(target=server.serve_forever, daemon=True).start()
        dsn = f"http://127.0.0.1:{server.server_port}"
        command = ["consentflow.cli", "sink", "--bootstrap", "127.0.0.1:1", "--dsn", dsn, "--database", "x"]
        done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=60)
        server.shutdown()
    assert done.returncode == EXIT_NOT_TRANSIENT, done.stderr
    (line,) = done.stderr.splitlines()
    assert f"CRITICAL consentflow.outage: ClickHouse at {dsn} failed while creating the schema, not transiently" in line


def test_a_stop_asked_while_clickhouse_is_away_gives_the_flush_up_at_once_with_nothing_written(
    chdb_dsn: str, database: str, away: ClickHouseAway
) -> None:
    stop = threading.Event()
    sink = ClickHouseSink(chdb_dsn, database, client_factory=lambda _dsn: away, should_stop=stop.is_set)
    sink.clickhouse_outage.first_backoff = 20.0  # a back-off far longer than the stop may take
    sink.add("retention", action("a1"))
    away.failures = 10**6
    threading.Timer(0.5, stop.set).start()
    began = time.monotonic()
    with pytest.raises(RetryAbandoned, match=r"stop asked while ClickHouse at .* is away"):
        sink.flush()
    assert time.monotonic() - began < 5, "the back-off noticed the stop"
    assert sink.pending == 1 and action_ids(sink) == [], "given up, not written, still buffered"
    away.failures = 0
    assert sink.flush() == 1 and action_ids(sink) == ["a1"]


def test_a_stop_asked_while_the_schema_waits_for_clickhouse_ends_the_wait(database: str) -> None:
    dsn = f"http://127.0.0.1:{free_port()}"
    outage = clickhouse_outage(dsn)
    outage.first_backoff = 20.0
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    began = time.monotonic()
    with pytest.raises(RetryAbandoned):
        ClickHouseSink(dsn, database, outage=outage, should_stop=stop.is_set)
    assert time.monotonic() - began < 6
    assert outage.away and outage.failures == 1


def test_the_broker_away_is_one_line_for_the_sink_however_many_errors_librdkafka_reports(
    chdb_dsn: str, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    sink = ClickHouseSink(chdb_dsn, database)
    consumer = SinkConsumer(bootstrap, "nobroker", SingleObjectCodec(), sink, group_id="nobroker-sink")
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(OncePerWindow(caplog.handler, window=60))  # as `consentflow sink` filters its handlers
    until = time.monotonic() + 4
    consumer.run(should_stop=lambda: time.monotonic() > until)  # librdkafka reconnects (and reports) every 50 ms
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    lines = [r.getMessage() for r in warnings if r.name.startswith("consentflow")]
    assert len(lines) == 1, lines
    client_lines = [r.getMessage() for r in warnings if r.name == "librdkafka"]
    assert len(client_lines) <= 2, client_lines  # librdkafka's "Connection refused", once, not ~80 times
    assert f"Kafka at {bootstrap} not answering while consuming" in lines[0] and "_TRANSPORT" in lines[0]
    assert consumer.kafka_outage.away and consumer.kafka_outage.failures > 10


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


SCRIPTED = "Kafka at the scripted broker"


class ScriptedBroker:
    """The sink's consumer and its second client (``BrokerCheck``) on a broker the test moves, with librdkafka's
    timing: an error callback waits in the consumer's queue until the next ``consume`` serves it, and a metadata
    request blocks until the broker answers or its timeout passes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.up = False
        self.queued: list[KafkaError] = []
        self.serve: Callable[[KafkaError], None] = lambda _error: None
        self.while_asked: Callable[[], None] | None = None  # what happens while the next metadata request waits

    def refuse(self) -> None:
        """A reconnection refused: librdkafka queues its error for the consumer's next ``consume``."""
        self.queued.append(KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9092/bootstrap: Connection refused"))

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        self.clock.now += timeout
        served, self.queued = self.queued, []
        for error in served:
            self.serve(error)
        return []

    def list_topics(self, topic: str | None = None, timeout: float = 1.0) -> object:
        if self.while_asked is not None:
            self.while_asked, happening = None, self.while_asked
            happening()
        if not self.up:
            self.clock.now += timeout
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
        return object()

    def ask(self) -> None:
        self.list_topics()

    def commit(self, asynchronous: bool = False) -> None:
        raise KafkaException(KafkaError(KafkaError._NO_OFFSET))

    def close(self) -> None:
        pass

    def memberid(self) -> str:
        return "member-1"


def run_scripted(
    broker: ScriptedBroker, turns: list[Callable[[], None]], chdb_dsn: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> SinkConsumer:
    """A sink on ``broker`` for one turn of its loop per entry of ``turns``, each run before its turn."""
    consumer = SinkConsumer(f"127.0.0.1:{free_port()}", "p", SingleObjectCodec(), ClickHouseSink(chdb_dsn, database))
    consumer.consumer.close()  # its close serves its own refusals: the outage the test reads comes after
    consumer.kafka_outage = Outage(SCRIPTED, max_backoff=5.0, clock=broker.clock)
    monkeypatch.setattr(consumer, "consumer", broker)
    monkeypatch.setattr(sink_consumer, "BrokerCheck", lambda _bootstrap, timeout: broker)
    broker.serve = consumer.on_kafka_error
    pending = list(turns)

    def next_turn() -> bool:
        if not pending:
            return True
        pending.pop(0)()
        return False

    consumer.run(should_stop=next_turn)
    return consumer


def nothing() -> None:
    pass


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The lines of the scripted broker's outage (not of the real consumer replaced, whose close reports too)."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(SCRIPTED)]


def test_a_refusal_librdkafka_serves_after_the_probe_saw_the_broker_back_starts_no_second_outage(
    chdb_dsn: str, database: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker starts listening while the probe's request waits: a reconnection refused just before is served by
    the next ``consume``, after the outage ended. It is older than the answer, and no sign of a second outage."""
    clock = Clock()
    broker = ScriptedBroker(clock)

    def comes_back_while_asked() -> None:
        def listens() -> None:
            broker.refuse()  # the last refusal before the port opened, still in the consumer's queue
            broker.up = True

        broker.while_asked = listens

    caplog.set_level(logging.INFO, logger="consentflow.outage")
    consumer = run_scripted(broker, [broker.refuse, comes_back_while_asked, *[nothing] * 20], chdb_dsn, database, monkeypatch)
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines
    assert "not answering while consuming" in lines[0] and "back after" in lines[1]
    assert not consumer.kafka_outage.away


def test_a_broker_that_goes_again_after_it_was_back_is_a_second_outage(
    chdb_dsn: str, database: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    broker = ScriptedBroker(clock)

    def back() -> None:
        broker.up = True

    def gone() -> None:
        broker.up = False
        broker.refuse()

    caplog.set_level(logging.INFO, logger="consentflow.outage")
    turns = [broker.refuse, *[nothing] * 3, back, *[nothing] * 8, gone, *[nothing] * 3, back, *[nothing] * 8]
    consumer = run_scripted(broker, turns, chdb_dsn, database, monkeypatch)
    lines = outage_lines(caplog)
    assert len(lines) == 4, lines
    assert ["not answering" in lines[0], "back after" in lines[1], "not answering" in lines[2], "back after" in lines[3]] == [
        True
    ] * 4
    assert not consumer.kafka_outage.away
